"""The Once-for-All MobileNetV3 space (Cai et al., ICLR 2020).

Five stages of up to four inverted-residual blocks (kernel 3/5/7, expansion
3/4/6), stage depth 2/3/4, input resolution 128..224 in steps of 4: the space
of the bundled ``ofa_latency.npz``. Units: the 20 block slots (the first two
of each stage are always present; slots 3 and 4 may be ``skip``, and a stage
is a prefix: slot 4 can only be present when slot 3 is), then the resolution.

Macro network (OFA's MobileNetV3-Large, width 1.0): stem conv3x3/2 16 ch
(h-swish); a fixed k3 e1 block 16->16; stages with [24, 40, 80, 112, 160]
channels, strides [2, 2, 2, 1, 2], activations [relu, relu, h-swish, h-swish,
h-swish], squeeze-excite in stages [2, 4, 5]; final 1x1 to 960, pool, 1x1 to
1280 (h-swish), linear to 1000 classes.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from fbnet_jax.spaces import base

KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
DEPTHS = (2, 3, 4)
RESOLUTIONS = tuple(range(128, 225, 4))
BLOCK_OPS = tuple(f'k{k}_e{e}' for k, e in itertools.product(KERNELS, EXPANSIONS))
SKIP = 'skip'

STAGE_CHANNELS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_HSWISH = (False, False, True, True, True)
STAGE_SE = (False, True, False, True, True)
MAX_DEPTH = 4
STEM_CHANNELS = 16
FINAL_EXPAND = 960
FEATURE_MIX = 1280
NUM_CLASSES = 1000


def decode_op(op) -> tuple[int, int]:
  """A block choice (an index into :data:`BLOCK_OPS`, arrays too) ->
  ``(kernel, expansion)``."""
  if np.ndim(op) == 0:  # the per-block loops: no array round trip
    return KERNELS[op // len(EXPANSIONS)], EXPANSIONS[op % len(EXPANSIONS)]
  op = np.asarray(op)
  return (np.asarray(KERNELS)[op // len(EXPANSIONS)],
          np.asarray(EXPANSIONS)[op % len(EXPANSIONS)])


def make_divisible(v: float, divisor: int = 8) -> int:
  """OFA's / MobileNet's channel rounding."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


class BlockShape(NamedTuple):
  in_channels: int
  out_channels: int
  stride: int
  se: bool
  hswish: bool


def block_shapes() -> list[BlockShape]:
  shapes = []
  cin = STEM_CHANNELS
  for cout, stride, hs, se in zip(STAGE_CHANNELS, STAGE_STRIDES, STAGE_HSWISH,
                                  STAGE_SE):
    for j in range(MAX_DEPTH):
      shapes.append(BlockShape(cin, cout, stride if j == 0 else 1, se, hs))
      cin = cout
  return shapes


def mbconv_cost(shape: BlockShape, kernel: int, expansion: int,
                in_size: int) -> dict[str, float]:
  """MACs / params / activations of one inverted-residual block."""
  cin, cout, stride, se, _ = shape
  out = -(-in_size // stride)
  mid = make_divisible(round(cin * expansion))
  macs = in_size ** 2 * cin * mid if expansion != 1 else 0.
  params = cin * mid + 2 * mid if expansion != 1 else 0.
  macs += out ** 2 * mid * kernel ** 2
  params += mid * kernel ** 2 + 2 * mid
  if se:
    red = make_divisible(mid // 4)
    macs += 2 * mid * red
    params += 2 * mid * red + mid + red
  macs += out ** 2 * mid * cout
  params += mid * cout + 2 * cout
  return dict(macs=macs, params=params, act_in=in_size ** 2 * cin,
              act_mid=in_size ** 2 * mid + out ** 2 * mid,
              act_out=out ** 2 * cout, out_size=out)


class OFASpace(base.SearchSpace):
  """OFA MobileNetV3: 20 block slots + the input resolution."""

  name = 'ofa'

  def __init__(self):
    self.blocks = block_shapes()
    units = []
    for i in range(len(self.blocks)):
      optional = i % MAX_DEPTH >= min(DEPTHS)
      units.append(base.Unit(f'stage{i // MAX_DEPTH + 1}_block{i % MAX_DEPTH + 1}',
                             BLOCK_OPS + ((SKIP,) if optional else ())))
    units.append(base.Unit('resolution', tuple(f'r{r}' for r in RESOLUTIONS)))
    super().__init__(units)
    self.skip_index = len(BLOCK_OPS)
    self.num_blocks = len(self.blocks)

  # ------------------------------------------------------------ validity
  def _depth_violations(self, archs: np.ndarray) -> np.ndarray:
    blocks = archs[:, :self.num_blocks].reshape(len(archs), 5, MAX_DEPTH)
    skip = blocks == self.skip_index
    # A skipped slot followed by a present one breaks the stage's prefix.
    return (skip[:, :, :-1] & ~skip[:, :, 1:]).any(axis=(1, 2))

  def _check_constraints(self, arch, where):
    if self._depth_violations(arch[None])[0]:
      raise base.ArchitectureError(
          f'{where}: a stage of OFA is a prefix of blocks; a block after a '
          f'skipped one must be skipped too (got {self.names_unchecked(arch)}).')

  def _constraint_violations(self, archs):
    return np.nonzero(self._depth_violations(archs))[0]

  def most_probable(self, log_probs) -> np.ndarray:
    """The most probable valid architecture: per stage, the depth ``d``
    whose first ``d`` slots at their best block choice and the rest
    skipped is most probable (the plain argmax may skip a slot and keep a
    later one)."""
    log_probs = np.asarray(log_probs, np.float64)
    arch = np.argmax(log_probs, -1).astype(np.int32)
    blocks = log_probs[:self.num_blocks].reshape(5, MAX_DEPTH, -1)
    best = blocks[:, :, :self.skip_index].argmax(-1)
    best_lp = np.take_along_axis(blocks, best[..., None], -1)[..., 0]
    skip_lp = blocks[:, :, self.skip_index]
    for stage in range(5):
      scores = [best_lp[stage, :d].sum() + skip_lp[stage, d:].sum()
                for d in DEPTHS]
      depth = DEPTHS[int(np.argmax(scores))]
      rows = np.arange(stage * MAX_DEPTH, (stage + 1) * MAX_DEPTH)
      arch[rows] = np.where(np.arange(MAX_DEPTH) < depth, best[stage],
                            self.skip_index)
    return arch

  def names_unchecked(self, arch) -> list[str]:
    return [u.choices[c] if 0 <= c < u.num_choices else str(c)
            for u, c in zip(self.units, arch)]

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    """OFA's own sampler: kernel, expansion, depth, resolution uniform."""
    ks = rng.choice(KERNELS, (n, 20))
    e = rng.choice(EXPANSIONS, (n, 20))
    d = rng.choice(DEPTHS, (n, 5))
    r = rng.choice(RESOLUTIONS, n)
    return self.from_native(ks, e, d, r)

  def _repair(self, archs, rng):
    del rng
    archs = archs.copy()
    blocks = archs[:, :self.num_blocks].reshape(len(archs), 5, MAX_DEPTH)
    skipped = np.cumsum(blocks == self.skip_index, axis=2) > 0
    blocks[skipped] = self.skip_index
    archs[:, :self.num_blocks] = blocks.reshape(len(archs), -1)
    return archs

  # -------------------------------------------------------- native format
  def from_native(self, ks, e, d, r) -> np.ndarray:
    """OFA's (ks [N,20], e [N,20], d [N,5], r [N]) -> architectures [N, 21]."""
    for key, arr in (('ks', ks), ('e', e), ('d', d), ('r', r)):
      base.check_whole(arr, f'OFA field {key!r}')
    ks, e, d, r = (np.asarray(a).astype(np.int64) for a in (ks, e, d, r))
    # d first: it decides which ks and e slots are checked.
    for key, arr, allowed in (('d', d, DEPTHS), ('r', r, RESOLUTIONS),
                              ('ks', ks, KERNELS), ('e', e, EXPANSIONS)):
      bad = ~np.isin(arr, allowed)
      if key in ('ks', 'e'):  # inactive slots may hold anything
        active = np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]
        bad &= active.reshape(bad.shape)
      if bad.any():
        row = int(np.nonzero(bad.reshape(len(bad), -1).any(1))[0][0])
        raise base.ArchitectureError(
            f'OFA field {key!r}, row {row}: values must be in {allowed}, got '
            f'{arr[row].tolist()}.')
    op = (np.searchsorted(KERNELS, np.clip(ks, 3, 7)) * len(EXPANSIONS) +
          np.searchsorted(EXPANSIONS, np.clip(e, 3, 6)))
    active = (np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]).reshape(
        len(d), -1)
    op = np.where(active, op, self.skip_index)
    res = np.searchsorted(RESOLUTIONS, r)
    return np.concatenate([op, res[:, None]], axis=1).astype(np.int32)

  def to_native(self, archs) -> dict[str, np.ndarray]:
    archs = self.validate_batch(np.atleast_2d(archs))
    ops = archs[:, :self.num_blocks]
    present = ops != self.skip_index
    op = np.where(present, ops, 0)
    ks, e = decode_op(op)
    d = present.reshape(len(archs), 5, MAX_DEPTH).sum(-1)
    r = np.asarray(RESOLUTIONS)[archs[:, -1]]
    return dict(ks=ks.astype(np.int8), e=e.astype(np.int8),
                d=d.astype(np.int8), r=r.astype(np.int16))

  def from_data(self, npz):
    return self.from_native(npz['ks'], npz['e'], npz['d'], npz['r'])

  def data_shapes(self):
    stages = len(STAGE_CHANNELS)
    return {'ks': (stages * MAX_DEPTH,), 'e': (stages * MAX_DEPTH,),
            'd': (stages,), 'r': ()}

  def to_data(self, archs):
    return self.to_native(archs)

  # ---------------------------------------------------------------- costs
  def _walk(self, arch) -> tuple[float, float]:
    arch = self.validate(arch)
    r = RESOLUTIONS[arch[-1]]
    size = -(-r // 2)
    macs = size ** 2 * 3 * STEM_CHANNELS * 9
    params = 3 * STEM_CHANNELS * 9 + 2 * STEM_CHANNELS
    # The fixed first block: depthwise k3 + project 16->16.
    macs += size ** 2 * STEM_CHANNELS * (9 + STEM_CHANNELS)
    params += STEM_CHANNELS * (9 + STEM_CHANNELS) + 4 * STEM_CHANNELS
    for shape, op in zip(self.blocks, arch[:self.num_blocks]):
      if op == self.skip_index:
        continue
      kernel, expansion = decode_op(op)
      c = mbconv_cost(shape, kernel, expansion, size)
      macs += c['macs']
      params += c['params']
      size = c['out_size']
    macs += size ** 2 * STAGE_CHANNELS[-1] * FINAL_EXPAND + FINAL_EXPAND * (
        FEATURE_MIX) + FEATURE_MIX * NUM_CLASSES
    params += (STAGE_CHANNELS[-1] * FINAL_EXPAND + 2 * FINAL_EXPAND +
               FINAL_EXPAND * FEATURE_MIX + FEATURE_MIX * NUM_CLASSES +
               NUM_CLASSES)
    return float(macs), float(params)

  def flops(self, arch) -> float:
    return self._walk(arch)[0]

  def params(self, arch) -> float:
    return self._walk(arch)[1]

  def unit_features(self):
    """Block costs at the reference resolution 224; resolution as scale."""
    names = ('macs', 'params', 'act_in', 'act_mid', 'act_out', 'kernel',
             'expansion', 'se', 'hswish', 'stride2', 'skip', 'resolution',
             'resolution_sq')
    feats = np.zeros((self.num_units, self.max_choices, len(names)))
    size = 112
    for b, shape in enumerate(self.blocks):
      for o in range(len(BLOCK_OPS)):
        k, e = KERNELS[o // 3], EXPANSIONS[o % 3]
        c = mbconv_cost(shape, k, e, size)
        feats[b, o, :11] = [c['macs'], c['params'], c['act_in'], c['act_mid'],
                            c['act_out'], k / 7, e / 6, shape.se, shape.hswish,
                            shape.stride == 2, 0.]
      if self.units[b].num_choices > len(BLOCK_OPS):
        feats[b, self.skip_index, 10] = 1.
      size = -(-size // shape.stride)
    for i, r in enumerate(RESOLUTIONS):
      feats[-1, i, 11:] = [r / 224, (r / 224) ** 2]
    feats /= np.maximum(np.abs(feats).max(axis=(0, 1)), 1e-12)
    return feats.astype(np.float32), names
