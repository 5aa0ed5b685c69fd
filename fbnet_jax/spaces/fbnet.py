"""The FBNet space (Wu et al., CVPR 2019): 22 searchable layers x 9 blocks.

The CIFAR macro network is HW-NAS-Bench's, so that the bundled latency data
and lookup tables describe exactly these networks (see ``meta/data/README.md``):
stem conv3x3 (16 ch), 7 stages of [1,4,4,4,4,4,1] searchable layers with
[16,24,32,64,112,184,352] channels, head conv1x1 to 1504 channels, global
pool, linear classifier. The ImageNet setting is the paper's (input 224, stem
stride 2, head 1984 ch).

Block (e, k, g): 1x1 group conv (g) -> BN -> ReLU -> channel shuffle if g>1 ->
kxk depthwise (stride) -> BN -> ReLU -> 1x1 group conv (g) -> BN, with a
residual add when the stride is 1 and channels in == out. ``skip`` is the
identity, or 1x1 conv -> BN -> ReLU where the stride or channel count changes.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import numpy as np

from fbnet_jax import errors
from fbnet_jax.spaces import base

OP_NAMES = ('k3_e1', 'k3_e1_g2', 'k3_e3', 'k3_e6', 'k5_e1', 'k5_e1_g2',
            'k5_e3', 'k5_e6', 'skip')


class BlockSpec(NamedTuple):
  """What one candidate op is: kernel, expansion, group; None for skip."""
  kernel: int
  expansion: int
  groups: int


def parse_op(name: str) -> Optional[BlockSpec]:
  """``"k5_e1_g2"`` -> BlockSpec(5, 1, 2); ``"skip"`` -> None."""
  if name == 'skip':
    return None
  parts = name.split('_')
  groups = int(parts[2][1:]) if len(parts) > 2 else 1
  return BlockSpec(int(parts[0][1:]), int(parts[1][1:]), groups)


@dataclasses.dataclass(frozen=True)
class Macro:
  """Macro network around the searchable layers."""
  name: str
  input_size: int
  stem_channels: int
  stem_stride: int
  stage_channels: tuple[int, ...]
  stage_layers: tuple[int, ...]
  stage_strides: tuple[int, ...]
  head_channels: int
  num_classes: int


MACROS = {
    'cifar': Macro('cifar', 32, 16, 1, (16, 24, 32, 64, 112, 184, 352),
                   (1, 4, 4, 4, 4, 4, 1), (1, 1, 2, 2, 1, 2, 1), 1504, 100),
    'imagenet': Macro('imagenet', 224, 16, 2, (16, 24, 32, 64, 112, 184, 352),
                      (1, 4, 4, 4, 4, 4, 1), (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
}


class LayerShape(NamedTuple):
  """Shape of one searchable layer in a given macro network."""
  in_channels: int
  out_channels: int
  stride: int
  in_size: int  # spatial size of the input feature map

  @property
  def out_size(self) -> int:
    return -(-self.in_size // self.stride)  # SAME padding: ceil


def layer_shapes(macro: Macro) -> list[LayerShape]:
  size = -(-macro.input_size // macro.stem_stride)
  cin = macro.stem_channels
  shapes = []
  for cout, n, stride in zip(macro.stage_channels, macro.stage_layers,
                             macro.stage_strides):
    for j in range(n):
      s = stride if j == 0 else 1
      shapes.append(LayerShape(cin, cout, s, size))
      size = -(-size // s)
      cin = cout
  return shapes


def _op_cost(shape: LayerShape, op: Optional[BlockSpec]) -> dict[str, float]:
  """MACs, parameters and activation sizes of one candidate at one layer."""
  cin, cout, s, h = shape
  ho = shape.out_size
  if op is None:
    if s == 1 and cin == cout:
      return dict(macs_pw1=0., macs_dw=0., macs_pw2=0., params=0., act_in=0.,
                  act_mid_in=0., act_mid_out=0., act_out=0., convs=0.)
    return dict(macs_pw1=0., macs_dw=0., macs_pw2=ho * ho * cin * cout,
                params=cin * cout + 2 * cout, act_in=h * h * cin,
                act_mid_in=0., act_mid_out=0., act_out=ho * ho * cout,
                convs=1.)
  mid = cin * op.expansion
  params = (cin * mid / op.groups + mid * op.kernel ** 2 +
            mid * cout / op.groups + 2 * (mid + mid + cout))
  return dict(macs_pw1=h * h * cin * mid / op.groups,
              macs_dw=ho * ho * mid * op.kernel ** 2,
              macs_pw2=ho * ho * mid * cout / op.groups, params=params,
              act_in=h * h * cin, act_mid_in=h * h * mid,
              act_mid_out=ho * ho * mid, act_out=ho * ho * cout, convs=3.)


class FBNetSpace(base.SearchSpace):
  """FBNet's layer-wise space in a CIFAR or ImageNet macro network."""

  name = 'fbnet'
  MACROS = tuple(MACROS)

  def __init__(self, macro: str = 'cifar'):
    if macro not in MACROS:
      raise errors.InputError(
          f'config.macro: unknown FBNet macro {macro!r}; expected one of '
          f'{", ".join(MACROS)}.')
    self.macro = MACROS[macro]
    self.layers = layer_shapes(self.macro)
    self.ops = tuple(parse_op(n) for n in OP_NAMES)
    super().__init__([base.Unit(f'layer{i}', OP_NAMES)
                      for i in range(len(self.layers))])
    costs = [[_op_cost(l, op) for op in self.ops] for l in self.layers]
    self._macs_table = np.array(
        [[c['macs_pw1'] + c['macs_dw'] + c['macs_pw2'] for c in row]
         for row in costs])
    self._params_table = np.array([[c['params'] for c in row] for row in costs])
    self._costs = costs

  @property
  def macro_name(self) -> str:
    return self.macro.name

  # MACs and params are exact sums over layers, so they come as tables too.
  def flops_table(self) -> tuple[float, np.ndarray]:
    """(fixed MACs of stem + head + classifier, per-(layer, op) MACs)."""
    m = self.macro
    stem_out = -(-m.input_size // m.stem_stride)
    final = self.layers[-1].out_size
    fixed = (stem_out ** 2 * 3 * m.stem_channels * 9 +
             final ** 2 * m.stage_channels[-1] * m.head_channels +
             m.head_channels * m.num_classes)
    return float(fixed), self._macs_table

  def params_table(self) -> tuple[float, np.ndarray]:
    m = self.macro
    fixed = (3 * m.stem_channels * 9 + 2 * m.stem_channels +
             m.stage_channels[-1] * m.head_channels + 2 * m.head_channels +
             m.head_channels * m.num_classes + m.num_classes)
    return float(fixed), self._params_table

  def flops(self, arch) -> float:
    arch = self.validate(arch)
    fixed, table = self.flops_table()
    return fixed + float(table[np.arange(self.num_units), arch].sum())

  def params(self, arch) -> float:
    arch = self.validate(arch)
    fixed, table = self.params_table()
    return fixed + float(table[np.arange(self.num_units), arch].sum())

  def unit_features(self):
    cost_names = ('macs_pw1', 'macs_dw', 'macs_pw2', 'params', 'act_in',
                  'act_mid_in', 'act_mid_out', 'act_out', 'convs')
    names = cost_names + ('kernel5', 'expansion', 'grouped', 'skip',
                          'stride2', 'out_size')
    rows = []
    for layer, row in zip(self.layers, self._costs):
      for op, c in zip(self.ops, row):
        rows.append([c[k] for k in cost_names] + [
            float(op is not None and op.kernel == 5),
            0. if op is None else op.expansion / 6.,
            float(op is not None and op.groups > 1),
            float(op is None), float(layer.stride == 2),
            layer.out_size / self.macro.input_size])
    feats = np.array(rows, np.float64).reshape(self.num_units, 9, len(names))
    feats /= np.maximum(np.abs(feats).max(axis=(0, 1)), 1e-12)
    return feats.astype(np.float32), names
