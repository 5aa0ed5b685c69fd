"""Flax building blocks of the FBNet and OFA / MobileNetV3 networks.

The blocks here are the concrete layers behind the search spaces of
``fbnet_jax.spaces``: their channel counts, strides (SAME padding) and op
order are those that ``spaces.fbnet`` and ``spaces.ofa`` count MACs and
parameters for, so that the analytic costs describe the real networks.

- FBNet (Wu et al., 2019): :class:`FBNetBlock` (1x1 group conv -> BN -> ReLU
  -> channel shuffle -> kxk depthwise -> BN -> ReLU -> 1x1 group conv -> BN,
  residual when shapes agree), :class:`SkipBlock`, and
  :func:`fbnet_candidate`, which builds any of ``fbnet.OP_NAMES`` at a layer.
- MobileNetV3 (Howard et al., 2019) / OFA: :func:`hard_sigmoid`,
  :func:`hard_swish`, :class:`SqueezeExcite` and :class:`MBConvBlock`.

Every block is an ordinary ``flax.linen`` module called as
``block(x, train)`` on NHWC inputs; none of them holds global state, so a
supernet may instantiate several candidates per layer and mix their outputs.
Convolutions that are followed by BatchNorm carry no bias.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fbnet_jax import initializers
from fbnet_jax.spaces import fbnet
from fbnet_jax.spaces import ofa

Dtype = Any

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


def batch_norm(train: bool, dtype: Dtype = jnp.float32,
               name: Optional[str] = None) -> nn.BatchNorm:
  """The BatchNorm used by every block (running averages at eval time).

  A name ending in ``initializers.ZERO_INIT_SUFFIX`` ('_res') marks the last
  BN of a residual branch: its scale starts at zero, so every residual block
  starts as the identity (Goyal et al., 2017). Without it the 22-layer FBNet
  networks start with gradient norms of ~100 at the stem and barely train
  from scratch on small data; with it they do (measured on the digits).
  """
  zero = name is not None and name.endswith(initializers.ZERO_INIT_SUFFIX)
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPSILON, dtype=dtype, name=name,
                      scale_init=(nn.initializers.zeros if zero
                                  else nn.initializers.ones))


def last_bn_name(base: str, residual: bool) -> str:
  """Name of a branch's last BN: ``base``, or ``base + '_res'`` (zero-init
  scale) when the branch is added to a residual."""
  return base + initializers.ZERO_INIT_SUFFIX if residual else base


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
  """ShuffleNet's channel shuffle on an NHWC tensor.

  Channels are viewed as ``[groups, C // groups]``, transposed and flattened,
  so that output channel ``j * groups + i`` is input channel
  ``i * (C // groups) + j``: every group of the next group conv sees channels
  from every group of the previous one.

  Args:
    x: ``[..., C]`` with ``C`` divisible by ``groups``.
    groups: number of groups.

  Returns:
    ``x`` with its channels permuted.
  """
  channels = x.shape[-1]
  if groups < 1 or channels % groups:
    raise ValueError(f'channel_shuffle: {channels} channels cannot be split '
                     f'into {groups} groups.')
  if groups == 1:
    return x
  x = x.reshape(x.shape[:-1] + (groups, channels // groups))
  x = jnp.swapaxes(x, -1, -2)
  return x.reshape(x.shape[:-2] + (channels,))


def hard_sigmoid(x: jax.Array) -> jax.Array:
  """``relu6(x + 3) / 6`` (MobileNetV3's h-sigmoid)."""
  return jax.nn.hard_sigmoid(x)


def hard_swish(x: jax.Array) -> jax.Array:
  """``x * relu6(x + 3) / 6`` (MobileNetV3's h-swish)."""
  return jax.nn.hard_swish(x)


def _check_input(module: str, x: jax.Array, in_channels: int) -> None:
  if x.ndim != 4 or x.shape[-1] != in_channels:
    raise ValueError(f'{module}: expected an NHWC input with {in_channels} '
                     f'channels, got shape {tuple(x.shape)}.')


# ----------------------------------------------------------------- FBNet
def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


_CONV_OVERRIDE: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    'fbnet_jax_conv', default=None)


@contextlib.contextmanager
def conv_implementation(choice: str) -> Iterator[None]:
  """Within this block (this thread), models trace with ``choice``'s
  convolutions: ``'xla'`` (native convolution ops) or ``'fast'``.

  The ONNX exporter traces with ``'xla'``, so that the exported graph holds
  ``Conv`` nodes that deployment runtimes optimise, not the matmuls and
  shifted sums that are fast under XLA's CPU backend.
  """
  if choice not in ('xla', 'fast'):
    raise ValueError(f"conv_implementation: expected 'xla' or 'fast', got "
                     f'{choice!r}.')
  token = _CONV_OVERRIDE.set(choice)
  try:
    yield
  finally:
    _CONV_OVERRIDE.reset(token)


def fast_conv_enabled() -> bool:
  """Whether :class:`Conv` computes pointwise and depthwise convolutions
  with matmuls and shifted sums instead of XLA's convolution.

  XLA's CPU convolution is 3-8x slower than these for the 1x1, grouped 1x1
  and depthwise shapes of mobile blocks (fwd + bwd, measured in
  ``benchmarks/supernet_speed.py``); on GPU/TPU the native convolution is
  used by :class:`Conv` (standalone networks, stems, heads and skip
  projections). The supernet's fused FBNet mixed layers always use the
  matmul and shifted-sum forms, on every backend (so the H100 supernet
  timings did not use cuDNN for the block convolutions).
  ``FBNET_JAX_CONV=xla`` or ``=fast`` forces either, and so does
  :func:`conv_implementation` for the code it wraps.
  """
  choice = _CONV_OVERRIDE.get() or os.environ.get('FBNET_JAX_CONV', 'auto')
  if choice == 'auto':
    return jax.default_backend() == 'cpu'
  return choice == 'fast'


def pointwise_conv(x: jax.Array, kernel: jax.Array, stride: int = 1,
                   groups: int = 1) -> jax.Array:
  """1x1 (group) convolution as a matmul; ``kernel [1, 1, cin/g, cout]``."""
  x = x[:, ::stride, ::stride, :]
  cin, cout = x.shape[-1], kernel.shape[-1]
  xs = x.reshape(x.shape[:-1] + (groups, cin // groups))
  ws = kernel[0, 0].reshape(cin // groups, groups, cout // groups)
  return jnp.einsum('...gi,igo->...go', xs, ws).reshape(x.shape[:-1] +
                                                        (cout,))


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int = 1
                   ) -> jax.Array:
  """Depthwise kxk convolution (SAME) as a sum of k*k shifted products;
  ``kernel [k, k, 1, C]``. Equals XLA's convolution (tested)."""
  k = kernel.shape[0]
  (ph0, ph1), (pw0, pw1) = (_same_pads(x.shape[1], k, stride),
                            _same_pads(x.shape[2], k, stride))
  oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  xp = jnp.pad(x, ((0, 0), (ph0, ph1), (pw0, pw1), (0, 0)))
  y = 0.0
  for i in range(k):
    for j in range(k):
      y = y + xp[:, i:i + stride * (oh - 1) + 1:stride,
                 j:j + stride * (ow - 1) + 1:stride, :] * kernel[i, j, 0]
  return y


class Conv(nn.Module):
  """A square convolution with ``nn.Conv``'s parameters and SAME padding.

  Pointwise (1x1, any groups) and depthwise (groups == channels) shapes take
  a matmul / shifted-sum path on CPU (:func:`fast_conv_enabled`); the result
  equals ``jax.lax.conv_general_dilated`` (tested).
  """
  features: int
  kernel_size: int = 1
  strides: int = 1
  groups: int = 1
  use_bias: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array,
               kernel_mask: Optional[jax.Array] = None) -> jax.Array:
    """``kernel_mask``: multiplies the kernel (broadcast to ``[k, k, cin /
    groups, features]``), e.g. to use only its centre."""
    cin = x.shape[-1]
    k, s, g = self.kernel_size, self.strides, self.groups
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, cin // g, self.features), jnp.float32)
    if kernel_mask is not None:
      kernel = kernel * kernel_mask
    kernel = kernel.astype(self.dtype)
    x = x.astype(self.dtype)
    depthwise = g == cin == self.features
    if fast_conv_enabled() and (k == 1 or depthwise):
      y = (pointwise_conv(x, kernel, s, g) if k == 1 else
           depthwise_conv(x, kernel, s))
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, (s, s), 'SAME', dimension_numbers=('NHWC', 'HWIO',
                                                        'NHWC'),
          feature_group_count=g)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y


class FBNetBlock(nn.Module):
  """FBNet's block (kernel k, expansion e, groups g).

  1x1 group conv (g) -> BN -> ReLU -> channel shuffle if g > 1 -> kxk
  depthwise conv (stride, SAME) -> BN -> ReLU -> 1x1 group conv (g) -> BN,
  plus the input when the stride is 1 and ``in_channels == out_channels``.
  The hidden width is ``in_channels * expansion``; the first 1x1 conv is
  present for ``expansion == 1`` too (it is what ``spaces.fbnet`` counts).
  """
  in_channels: int
  out_channels: int
  stride: int
  kernel: int
  expansion: int
  groups: int = 1
  dtype: Dtype = jnp.float32

  @property
  def mid_channels(self) -> int:
    return self.in_channels * self.expansion

  @property
  def has_residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    _check_input('FBNetBlock', x, self.in_channels)
    mid, g = self.mid_channels, self.groups
    for what, channels in (('in', self.in_channels), ('hidden', mid),
                           ('out', self.out_channels)):
      if channels % g:
        raise ValueError(f'FBNetBlock: {what} channels {channels} are not '
                         f'divisible by groups={g}.')
    y = Conv(mid, 1, groups=g, dtype=self.dtype, name='pw1')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    if g > 1:
      y = channel_shuffle(y, g)
    y = Conv(mid, self.kernel, self.stride, groups=mid, dtype=self.dtype,
             name='dw')(y)
    y = nn.relu(batch_norm(train, self.dtype, 'bn2')(y))
    y = Conv(self.out_channels, 1, groups=g, dtype=self.dtype,
             name='pw2')(y)
    y = batch_norm(train, self.dtype,
                   last_bn_name('bn3', self.has_residual))(y)
    return x + y if self.has_residual else y


class SkipBlock(nn.Module):
  """FBNet's ``skip``: identity, or 1x1 conv (stride) -> BN -> ReLU.

  The convolution is there only where the stride or the channel count
  changes, which is where an identity cannot be.
  """
  in_channels: int
  out_channels: int
  stride: int = 1
  dtype: Dtype = jnp.float32

  @property
  def is_identity(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    _check_input('SkipBlock', x, self.in_channels)
    if self.is_identity:
      return x
    y = Conv(self.out_channels, 1, self.stride, dtype=self.dtype,
             name='conv')(x)
    return nn.relu(batch_norm(train, self.dtype, 'bn')(y))


def fbnet_candidate(op_name: str, shape: fbnet.LayerShape,
                    **module_kwargs) -> nn.Module:
  """The block of FBNet op ``op_name`` at a searchable layer of shape ``shape``.

  Args:
    op_name: one of ``fbnet.OP_NAMES`` (``"k5_e1_g2"``, ``"skip"``, ...).
    shape: the layer, e.g. an entry of ``fbnet.layer_shapes(macro)``.
    **module_kwargs: passed to the module (``name``, ``dtype``).

  Returns:
    An unbound :class:`FBNetBlock` or :class:`SkipBlock`.
  """
  if op_name not in fbnet.OP_NAMES:
    raise ValueError(f'Unknown FBNet op {op_name!r}; expected one of '
                     f'{", ".join(fbnet.OP_NAMES)}.')
  spec = fbnet.parse_op(op_name)
  if spec is None:
    return SkipBlock(shape.in_channels, shape.out_channels, shape.stride,
                     **module_kwargs)
  return FBNetBlock(shape.in_channels, shape.out_channels, shape.stride,
                    spec.kernel, spec.expansion, spec.groups, **module_kwargs)


# ------------------------------------------------------ MobileNetV3 / OFA
class SqueezeExcite(nn.Module):
  """Squeeze-and-excite of MobileNetV3.

  Global average pool -> 1x1 conv (bias) to ``reduced`` -> ReLU -> 1x1 conv
  (bias) back to ``channels`` -> h-sigmoid -> scale the input.
  """
  channels: int
  reduced: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array,
               reduced_mask: Optional[jax.Array] = None) -> jax.Array:
    """``reduced_mask`` ``[reduced]``: zeroes reduced channels (OFA's
    elastic width uses the first ones)."""
    _check_input('SqueezeExcite', x, self.channels)
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.relu(Conv(self.reduced, 1, use_bias=True, dtype=self.dtype,
                     name='reduce')(s))
    if reduced_mask is not None:
      s = s * reduced_mask
    s = hard_sigmoid(Conv(self.channels, 1, use_bias=True, dtype=self.dtype,
                          name='expand')(s))
    return x * s


class MBConvBlock(nn.Module):
  """MobileNetV3's inverted-residual block (OFA's MBConvLayer).

  Expand 1x1 -> BN -> act -> kxk depthwise (stride, SAME) -> BN -> act ->
  [squeeze-excite] -> project 1x1 -> BN, plus the input when the stride is 1
  and ``in_channels == out_channels``; act is h-swish or ReLU.

  The hidden width is ``ofa.make_divisible(round(in_channels * expansion))``
  (``in_channels`` for ``expansion == 1``), or ``mid_channels`` where given
  (MobileNetV3's tables list the expanded size itself). The expand conv is
  left out when the hidden width equals ``in_channels``. The squeeze-excite
  width is ``ofa.make_divisible(mid // 4)``, as in ``ofa.mbconv_cost``.
  """
  in_channels: int
  out_channels: int
  stride: int
  kernel: int
  expansion: float = 1
  se: bool = False
  hswish: bool = False
  mid_channels: Optional[int] = None
  dtype: Dtype = jnp.float32

  @property
  def mid(self) -> int:
    if self.mid_channels is not None:
      return self.mid_channels
    if self.expansion == 1:
      return self.in_channels
    return ofa.make_divisible(round(self.in_channels * self.expansion))

  @property
  def has_residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    _check_input('MBConvBlock', x, self.in_channels)
    act = hard_swish if self.hswish else nn.relu
    mid = self.mid
    y = x
    if mid != self.in_channels:
      y = Conv(mid, 1, dtype=self.dtype, name='expand')(y)
      y = act(batch_norm(train, self.dtype, 'expand_bn')(y))
    y = Conv(mid, self.kernel, self.stride, groups=mid, dtype=self.dtype,
             name='dw')(y)
    y = act(batch_norm(train, self.dtype, 'dw_bn')(y))
    if self.se:
      y = SqueezeExcite(mid, ofa.make_divisible(mid // 4), dtype=self.dtype,
                        name='se')(y)
    y = Conv(self.out_channels, 1, dtype=self.dtype, name='project')(y)
    y = batch_norm(train, self.dtype,
                   last_bn_name('project_bn', self.has_residual))(y)
    return x + y if self.has_residual else y


class ElasticMBConvBlock(nn.Module):
  """OFA's elastic block slot: one set of weights for every kernel size and
  expansion of :class:`MBConvBlock`, plus skipping the slot.

  The parameters are the largest candidate's (``k7``, ``e6``). Candidate
  ``k{k}_e{e}`` uses the centre ``k x k`` of each depthwise kernel, the
  first ``mid(e)`` hidden channels and the first
  ``make_divisible(mid(e) // 4)`` squeeze-excite channels: OFA's elastic
  kernel and width (without OFA's learned kernel transformations); ``skip``
  is the identity (elastic depth). Masks instead of slices keep one
  compiled program for every sub-network: the block always does the
  largest candidate's work, and its output is exactly the chosen
  candidate's, batch-norm statistics of the used channels included (tested
  against :class:`MBConvBlock` holding the sliced weights).

  Call with ``choice``: one-hot ``[len(choices)]`` over ``choices`` (the
  slot's unit choices, ``'k{k}_e{e}'`` and optionally ``'skip'``), shared
  by the whole batch; or ``[batch, len(choices)]``, one (soft) choice per
  example: FBNetV2's masked DNAS (DMaskingNAS), where every mask is the
  probability-weighted sum of the candidates' masks. The depthwise
  convolution is linear in its kernel, so its masked kernel mix is computed
  as one convolution per kernel size, weighted per example. For one-hot
  rows this is exactly the chosen candidate; for soft rows it is FBNetV2's
  approximation of the mixture (one set of channels, softly masked), not
  the sum of the candidates' outputs.
  """
  in_channels: int
  out_channels: int
  stride: int
  choices: tuple[str, ...]
  se: bool = False
  hswish: bool = False
  dtype: Dtype = jnp.float32

  def mid(self, expansion: int) -> int:
    return ofa.make_divisible(round(self.in_channels * expansion))

  @property
  def has_residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels

  def masks(self) -> dict[str, np.ndarray]:
    """Per choice: 'kernel' ``[C, kmax, kmax]``, 'hidden' ``[C, mid_max]``,
    'reduced' ``[C, reduced_max]`` and 'skip' ``[C]`` (host constants)."""
    kmax, mid_max = max(ofa.KERNELS), self.mid(max(ofa.EXPANSIONS))
    red_max = ofa.make_divisible(mid_max // 4)
    n = len(self.choices)
    out = {'kernel': np.zeros((n, kmax, kmax), np.float32),
           'hidden': np.zeros((n, mid_max), np.float32),
           'reduced': np.zeros((n, red_max), np.float32),
           'skip': np.zeros((n,), np.float32)}
    for c, op in enumerate(self.choices):
      if op == ofa.SKIP:
        if not self.has_residual:
          raise ValueError(f'ElasticMBConvBlock: skip needs stride 1 and '
                           f'in == out channels, got stride {self.stride}, '
                           f'{self.in_channels} -> {self.out_channels}.')
        out['skip'][c] = 1.0
        continue
      kernel, expansion = (int(t[1:]) for t in op.split('_'))
      lo = (kmax - kernel) // 2
      out['kernel'][c, lo:lo + kernel, lo:lo + kernel] = 1.0
      mid = self.mid(expansion)
      out['hidden'][c, :mid] = 1.0
      out['reduced'][c, :ofa.make_divisible(mid // 4)] = 1.0
    return out

  @nn.compact
  def __call__(self, x: jax.Array, choice: jax.Array,
               train: bool) -> jax.Array:
    _check_input('ElasticMBConvBlock', x, self.in_channels)
    masks = self.masks()
    m = jax.tree.map(lambda t: jnp.tensordot(choice, t, 1), masks)
    per_example = choice.ndim == 2
    if per_example:  # [B, n] -> broadcast over [B, H, W, n]
      m = {k: v.reshape(v.shape[:1] + (1,) * (4 - v.ndim) + v.shape[1:])
           for k, v in m.items() if k != 'kernel'}
    act = hard_swish if self.hswish else nn.relu
    mid, kmax = m['hidden'].shape[-1], masks['kernel'].shape[-1]
    y = Conv(mid, 1, dtype=self.dtype, name='expand')(x)
    y = act(batch_norm(train, self.dtype, 'expand_bn')(y)) * m['hidden']
    dw = Conv(mid, kmax, self.stride, groups=mid, dtype=self.dtype,
              name='dw')
    if per_example:
      # One convolution per distinct kernel mask, weighted per example by
      # the total probability of the choices that use it.
      flat = masks['kernel'].reshape(len(self.choices), -1)
      kernels = np.unique(flat, axis=0)
      out = 0.0
      for kernel in kernels[kernels.sum(-1) > 0]:
        uses = (flat == kernel).all(-1).astype(np.float32)
        p = (choice @ uses)[:, None, None, None]
        out = out + p * dw(y, kernel_mask=kernel.reshape(
            kmax, kmax)[:, :, None, None])
      y = out
    else:
      y = dw(y, kernel_mask=m['kernel'][:, :, None, None])
    y = act(batch_norm(train, self.dtype, 'dw_bn')(y)) * m['hidden']
    if self.se:
      y = SqueezeExcite(mid, m['reduced'].shape[-1], dtype=self.dtype,
                        name='se')(y, reduced_mask=m['reduced'])
    y = Conv(self.out_channels, 1, dtype=self.dtype, name='project')(y)
    y = batch_norm(train, self.dtype,
                   last_bn_name('project_bn', self.has_residual))(y)
    if not self.has_residual:
      return y
    return x + (1.0 - m['skip']) * y
