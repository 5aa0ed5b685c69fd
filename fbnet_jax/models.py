"""Standalone networks: a discrete architecture of a space as a Flax model.

- :class:`FBNetModel`: one architecture of the FBNet space (22 op indices)
  in its CIFAR or ImageNet macro network (``spaces.fbnet.MACROS``).
- :class:`OFAModel`: one subnet of the OFA MobileNetV3 space (20 block slots
  and the resolution, ``spaces.ofa.OFASpace``), as OFA builds it.
- :func:`standalone`: either of them by space name, what retraining, export
  and the timing harness build.
- :func:`mobilenet_v3_large`, :func:`mobilenet_v3_small`: the fixed reference
  networks of the MobileNetV3 paper (Howard et al., 2019, Tables 1 and 2).
- :func:`count_params` and :func:`count_macs`: what a built network really
  holds and computes, to check the analytic costs of ``fbnet_jax.spaces``.

The models are built from :mod:`fbnet_jax.blocks` and take NHWC images:
``model.apply(variables, x, train=False) -> logits``; training mode needs
``mutable=['batch_stats']``. Dropout is left to the training code.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from fbnet_jax import blocks
from fbnet_jax import errors
from fbnet_jax import spaces
from fbnet_jax.spaces import fbnet
from fbnet_jax.spaces import ofa

Dtype = Any


def _conv_bn_act(x: jax.Array, features: int, kernel: int, stride: int,
                 train: bool, act: Callable[[jax.Array], jax.Array],
                 name: str, dtype: Dtype) -> jax.Array:
  """kxk conv (SAME, no bias) -> BN -> act, as submodules of the caller."""
  x = nn.Conv(features, (kernel, kernel), strides=stride, padding='SAME',
              use_bias=False, dtype=dtype, name=name)(x)
  return act(blocks.batch_norm(train, dtype, f'{name}_bn')(x))


def _global_pool(x: jax.Array) -> jax.Array:
  return jnp.mean(x, axis=(1, 2))


# ----------------------------------------------------------------- FBNet
class FBNetModel(nn.Module):
  """One architecture of the FBNet space in its macro network.

  Stem conv3x3 (macro stride, no bias) -> BN -> ReLU; the 22 searchable
  layers of ``fbnet.layer_shapes(macro)`` with the chosen ops; head conv1x1
  to ``macro.head_channels`` -> BN -> ReLU; global average pool; linear
  classifier. Its parameter count is ``get_space('fbnet', macro).params``.

  Attributes:
    arch: 22 indices into ``fbnet.OP_NAMES`` (or the op names themselves);
      validated by the space on construction and stored as a tuple of ints.
    macro: ``'cifar'`` or ``'imagenet'``.
    num_classes: classifier width; the macro's own when None.
    dtype: computation dtype (parameters stay float32).
  """
  arch: tuple[int, ...]
  macro: str = 'cifar'
  num_classes: Optional[int] = None
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    space = spaces.get_space('fbnet', macro=self.macro)
    arch = space.validate(self.arch, where='FBNetModel.arch')
    object.__setattr__(self, 'arch', tuple(int(a) for a in arch))
    super().__post_init__()

  @property
  def space(self) -> spaces.FBNetSpace:
    return spaces.get_space('fbnet', macro=self.macro)

  @property
  def input_size(self) -> int:
    return self.space.macro.input_size

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    macro = self.space.macro
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'FBNetModel: expected NHWC RGB images, got shape '
                       f'{tuple(x.shape)}.')
    x = _conv_bn_act(x, macro.stem_channels, 3, macro.stem_stride, train,
                     nn.relu, 'stem', self.dtype)
    for i, (op, shape) in enumerate(zip(self.arch, self.space.layers)):
      x = blocks.fbnet_candidate(fbnet.OP_NAMES[op], shape, dtype=self.dtype,
                                 name=f'layer{i}')(x, train)
    x = _conv_bn_act(x, macro.head_channels, 1, 1, train, nn.relu, 'head',
                     self.dtype)
    num_classes = self.num_classes or macro.num_classes
    return nn.Dense(num_classes, dtype=self.dtype,
                    name='classifier')(_global_pool(x))


# ------------------------------------------------------ MobileNetV3 / OFA
class Bneck(NamedTuple):
  """One row of the MobileNetV3 tables: an inverted-residual block."""
  kernel: int
  expanded: int  # "exp size": the hidden width
  out_channels: int
  se: bool
  hswish: bool
  stride: int


_T, _F = True, False

# Howard et al. 2019, Table 1 (MobileNetV3-Large), rows after the stem.
LARGE_BLOCKS = (
    Bneck(3, 16, 16, _F, _F, 1), Bneck(3, 64, 24, _F, _F, 2),
    Bneck(3, 72, 24, _F, _F, 1), Bneck(5, 72, 40, _T, _F, 2),
    Bneck(5, 120, 40, _T, _F, 1), Bneck(5, 120, 40, _T, _F, 1),
    Bneck(3, 240, 80, _F, _T, 2), Bneck(3, 200, 80, _F, _T, 1),
    Bneck(3, 184, 80, _F, _T, 1), Bneck(3, 184, 80, _F, _T, 1),
    Bneck(3, 480, 112, _T, _T, 1), Bneck(3, 672, 112, _T, _T, 1),
    Bneck(5, 672, 160, _T, _T, 2), Bneck(5, 960, 160, _T, _T, 1),
    Bneck(5, 960, 160, _T, _T, 1),
)

# Table 2 (MobileNetV3-Small). The table also marks SE on the last 1x1 conv
# (576); the paper's TF code and torchvision have none there, nor here.
SMALL_BLOCKS = (
    Bneck(3, 16, 16, _T, _F, 2), Bneck(3, 72, 24, _F, _F, 2),
    Bneck(3, 88, 24, _F, _F, 1), Bneck(5, 96, 40, _T, _T, 2),
    Bneck(5, 240, 40, _T, _T, 1), Bneck(5, 240, 40, _T, _T, 1),
    Bneck(5, 120, 48, _T, _T, 1), Bneck(5, 144, 48, _T, _T, 1),
    Bneck(5, 288, 96, _T, _T, 2), Bneck(5, 576, 96, _T, _T, 1),
    Bneck(5, 576, 96, _T, _T, 1),
)


def _mobilenet_v3_head(x: jax.Array, train: bool, final_channels: int,
                       mix_channels: int, mix_bias: bool, num_classes: int,
                       dtype: Dtype) -> jax.Array:
  """Final 1x1 -> BN -> h-swish; pool; 1x1 (no BN) -> h-swish; classifier."""
  x = _conv_bn_act(x, final_channels, 1, 1, train, blocks.hard_swish,
                   'final_expand', dtype)
  x = _global_pool(x)
  x = blocks.hard_swish(nn.Dense(mix_channels, use_bias=mix_bias, dtype=dtype,
                                 name='feature_mix')(x))
  return nn.Dense(num_classes, dtype=dtype, name='classifier')(x)


class MobileNetV3(nn.Module):
  """A MobileNetV3 from its table of bneck rows.

  Stem conv3x3/2 (16 ch) -> BN -> h-swish; the rows as :class:`MBConvBlock`s
  (hidden width = the row's expanded size); final 1x1 to ``final_channels``
  -> BN -> h-swish; global pool; 1x1 to ``mix_channels`` (bias, no BN) ->
  h-swish; linear classifier.
  """
  rows: tuple[Bneck, ...]
  final_channels: int
  mix_channels: int
  num_classes: int = 1000
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = _conv_bn_act(x, 16, 3, 2, train, blocks.hard_swish, 'stem',
                     self.dtype)
    cin = 16
    for i, row in enumerate(self.rows):
      x = blocks.MBConvBlock(cin, row.out_channels, row.stride, row.kernel,
                             se=row.se, hswish=row.hswish,
                             mid_channels=row.expanded, dtype=self.dtype,
                             name=f'block{i}')(x, train)
      cin = row.out_channels
    return _mobilenet_v3_head(x, train, self.final_channels,
                              self.mix_channels, True, self.num_classes,
                              self.dtype)


def mobilenet_v3_large(num_classes: int = 1000, **kwargs) -> MobileNetV3:
  """MobileNetV3-Large 1.0 (Table 1): about 5.48M parameters, 224x224 input."""
  return MobileNetV3(LARGE_BLOCKS, 960, 1280, num_classes, **kwargs)


def mobilenet_v3_small(num_classes: int = 1000, **kwargs) -> MobileNetV3:
  """MobileNetV3-Small 1.0 (Table 2): about 2.54M parameters, 224x224 input."""
  return MobileNetV3(SMALL_BLOCKS, 576, 1024, num_classes, **kwargs)


class OFAModel(nn.Module):
  """One subnet of the OFA MobileNetV3 space, as OFA builds it.

  Stem conv3x3/2 (16 ch) -> BN -> h-swish; the fixed first block
  ``MBConvBlock(16, 16, 1, 3, 1)`` (ReLU, residual); the present blocks of
  the five stages (skipped slots left out; the first block of a stage has
  the stage stride); final 1x1 to 960 -> BN -> h-swish; global pool; 1x1 to
  1280 -> h-swish; linear classifier. As in OFA's ``MobileNetV3`` (and
  ``OFASpace.params``), the 1280-wide feature-mix layer has no bias.

  The input resolution belongs to the architecture (:attr:`input_size`);
  the network itself accepts any size.

  Attributes:
    arch: 21 unit indices of ``OFASpace``: 20 block slots (index into
      ``ofa.BLOCK_OPS``, or the skip index) then the resolution index;
      validated on construction and stored as a tuple of ints.
    num_classes: classifier width.
    dtype: computation dtype (parameters stay float32).
  """
  arch: tuple[int, ...]
  num_classes: int = ofa.NUM_CLASSES
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    arch = spaces.get_space('ofa').validate(self.arch, where='OFAModel.arch')
    object.__setattr__(self, 'arch', tuple(int(a) for a in arch))
    super().__post_init__()

  @property
  def input_size(self) -> int:
    """The input resolution chosen by the architecture's last unit."""
    return ofa.RESOLUTIONS[self.arch[-1]]

  def present_blocks(self) -> list[tuple[str, ofa.BlockShape, int, int]]:
    """(unit name, shape, kernel, expansion) of each block that is present."""
    space = spaces.get_space('ofa')
    out = []
    for unit, shape, op in zip(space.units, space.blocks, self.arch):
      if op == space.skip_index:
        continue
      kernel, expansion = ofa.decode_op(op)
      out.append((unit.name, shape, kernel, expansion))
    return out

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'OFAModel: expected NHWC RGB images, got shape '
                       f'{tuple(x.shape)}.')
    c = ofa.STEM_CHANNELS
    x = _conv_bn_act(x, c, 3, 2, train, blocks.hard_swish, 'stem', self.dtype)
    x = blocks.MBConvBlock(c, c, 1, 3, 1, se=False, hswish=False,
                           dtype=self.dtype, name='first_block')(x, train)
    for name, shape, kernel, expansion in self.present_blocks():
      x = blocks.MBConvBlock(shape.in_channels, shape.out_channels,
                             shape.stride, kernel, expansion, se=shape.se,
                             hswish=shape.hswish, dtype=self.dtype,
                             name=name)(x, train)
    return _mobilenet_v3_head(x, train, ofa.FINAL_EXPAND, ofa.FEATURE_MIX,
                              False, self.num_classes, self.dtype)


def _fbnet_model(arch, *, macro, num_classes, dtype) -> nn.Module:
  return FBNetModel(arch, macro=macro, num_classes=num_classes, dtype=dtype)


def _ofa_model(arch, *, macro, num_classes, dtype) -> nn.Module:
  del macro  # one macro network; the resolution is part of the architecture
  return OFAModel(arch, num_classes=num_classes or ofa.NUM_CLASSES,
                  dtype=dtype)


#: The spaces with standalone networks (to retrain, export, time on a
#: device): ``build(arch, macro=, num_classes=, dtype=)`` by space name.
#: NAS-Bench-201 cells are only searched here.
STANDALONE: dict[str, Callable[..., nn.Module]] = {
    'fbnet': _fbnet_model,
    'ofa': _ofa_model,
}


def standalone(space: str, arch: Sequence[int], *, macro: str = 'cifar',
               num_classes: Optional[int] = None,
               dtype: Dtype = jnp.float32) -> nn.Module:
  """The standalone network of one architecture of ``space`` (FBNet in its
  ``macro`` network, or OFA, whose resolution is part of the architecture);
  ``num_classes`` None: the macro's or OFA's own. Its input size is
  ``model.input_size``.

  Raises:
    errors.InputError: naming ``config.space`` for a space without
      standalone networks (not in :data:`STANDALONE`).
  """
  if space not in STANDALONE:
    raise errors.InputError(
        f'config.space: cannot build a standalone {space!r} network (to '
        'retrain, export or time); standalone networks are built for '
        f'{errors.and_list(STANDALONE)}.')
  return STANDALONE[space](tuple(int(a) for a in arch), macro=macro,
                           num_classes=num_classes, dtype=dtype)


# --------------------------------------------------------------- counting
def count_params(variables) -> int:
  """Number of entries in the ``'params'`` collection (weights, BN scale/bias).

  Accepts real variables or the ``jax.ShapeDtypeStruct`` tree of
  ``jax.eval_shape(model.init, ...)``; BN running statistics are not counted.
  """
  if 'params' not in variables:
    raise ValueError(f'count_params: expected a variables dict with a '
                     f'"params" collection, got keys {list(variables)}.')
  return int(sum(math.prod(leaf.shape)
                 for leaf in jax.tree_util.tree_leaves(variables['params'])))


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Multiply-accumulates of the convolutions and dense layers of ``model``.

  Counted by tracing ``model.init`` abstractly (nothing is computed), at the
  batch size of ``input_shape``: the NAS convention, which leaves out BN,
  activations, pooling, squeeze-excite scaling and residual additions.

  Args:
    model: a module called as ``model(x, train=...)``.
    input_shape: NHWC shape of the input, e.g. ``(1, 32, 32, 3)``.
  """
  macs = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and isinstance(
        module, (nn.Conv, blocks.Conv, nn.Dense)):
      inputs = args[0] if args else kwargs['inputs']
      cin = inputs.shape[-1]
      if isinstance(module, nn.Conv):
        kernel = module.kernel_size
        kernel = (kernel,) if isinstance(kernel, int) else tuple(kernel)
        per_output = math.prod(kernel) * cin // module.feature_group_count
      elif isinstance(module, blocks.Conv):
        per_output = module.kernel_size ** 2 * cin // module.groups
      else:
        per_output = cin
      macs.append(math.prod(out.shape) * per_output)
    return out

  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  init = functools.partial(model.init, train=False)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(init, jax.random.key(0), x)
  return int(sum(macs))
