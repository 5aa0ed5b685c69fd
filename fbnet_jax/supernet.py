"""Supernets: every candidate of every searchable unit, mixed per example.

A searchable layer computes all its candidate blocks and sums their outputs
weighted by that example's architecture weights (``weights [B, C]``, a
Gumbel-softmax sample, soft or straight-through hard). Each candidate owns
its parameters and batch-norm statistics, so the weights that a derived
architecture inherits are exactly its own blocks'.

- :class:`FBNetSupernet`: the FBNet macro network (CIFAR or ImageNet), 22
  mixed layers of 9 candidates (``fbnet_jax.spaces.fbnet``).
- :class:`OFASupernet`: the MobileNetV3 space, 20 mixed slots of 9 inverted-
  residual candidates (k3/5/7 x e3/4/6, with squeeze-excite and h-swish where
  MobileNetV3-Large places them) plus identity for the optional slots (depth
  searched as skippable blocks). The input resolution is the config's (the
  resolution unit is fixed, not searched, in DNAS).
- :class:`OFAElasticSupernet`: the same space with OFA's own weight sharing:
  one elastic block per slot (:class:`blocks.ElasticMBConvBlock`) serves
  every kernel, expansion and skip; the batch runs one sub-network. One
  compiled program of 20 blocks instead of 190 candidates: what makes OFA
  searches feasible on a CPU (``config.search.supernet = 'elastic'``).
  With ``per_example`` (``config.search.supernet = 'masked'``) each example
  runs its own soft choice through the same elastic weights: FBNetV2's
  masked DNAS (DMaskingNAS), the DNAS supernet of OFA on a CPU.
- :class:`NASBench201Supernet`: the NAS-Bench-201 macro network, every cell
  the same soft cell: 6 mixed edges of the 5 candidate operations
  (``fbnet_jax.spaces.nasbench201``), ``cells_per_stage`` cells per stage
  (5 in the benchmark).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fbnet_jax import blocks
from fbnet_jax import errors
from fbnet_jax import models
from fbnet_jax import spaces as spaces_lib
from fbnet_jax.spaces import fbnet
from fbnet_jax.spaces import nasbench201
from fbnet_jax.spaces import ofa


class Identity(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    del train
    return x


class MixedLayer(nn.Module):
  """``sum_c weights[:, c] * candidate_c(x)`` over a unit's candidates."""
  candidates: Sequence[nn.Module]

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray, train: bool):
    out = 0.0
    for c, block in enumerate(self.candidates):
      out = out + weights[:, c, None, None, None] * block(x, train)
    return out


def _dense_from_grouped(kernel: jnp.ndarray, groups: int) -> jnp.ndarray:
  """``[cin/g, cout]`` group-conv kernel -> the equivalent dense
  block-diagonal ``[cin, cout]`` matrix."""
  if groups == 1:
    return kernel
  cin_g, cout = kernel.shape
  cout_g = cout // groups
  dense = jnp.zeros((cin_g * groups, cout), kernel.dtype)
  for g in range(groups):
    dense = dense.at[g * cin_g:(g + 1) * cin_g,
                     g * cout_g:(g + 1) * cout_g].set(
                         kernel[:, g * cout_g:(g + 1) * cout_g])
  return dense


class FBNetMixedLayer(nn.Module):
  """One FBNet searchable layer, all candidates fused; scannable.

  Mathematically ``sum_c weights[:, c] * block_c(x)`` over the candidate
  blocks of :mod:`fbnet_jax.blocks` (tested against it), computed with one
  matmul for every candidate's first 1x1 convolution, one batch norm over
  all their hidden channels, one depthwise convolution per kernel size over
  the concatenated hidden channels, and one batch norm over every
  candidate's output. Per-channel operations on concatenated channels are
  exact, and the fused graph compiles and runs several times faster than
  nine separate blocks.

  Only the candidates in ``ops`` are built (a subset of the space's ops, for
  small tests and the step-time vs. candidates benchmark); ``weights`` has a
  column per op of the space, the others ignored. Call: ``(x, weights) ->
  (x, None)`` (the scan signature).
  """
  shape: fbnet.LayerShape
  ops: tuple[str, ...]
  train: bool

  @nn.compact
  def __call__(self, x, weights):
    cin, cout, stride, _ = self.shape
    residual = stride == 1 and cin == cout
    convs = [(op, fbnet.parse_op(op)) for op in self.ops if op != 'skip']
    out = 0.0
    if convs:
      init = nn.initializers.lecun_normal()
      mids = [cin * spec.expansion for _, spec in convs]
      w1 = [self.param(f'{op}_pw1_kernel', init,
                       (1, 1, cin // spec.groups, mid))
            for (op, spec), mid in zip(convs, mids)]
      dense = jnp.concatenate(
          [_dense_from_grouped(w[0, 0], spec.groups)
           for w, (_, spec) in zip(w1, convs)], axis=1)
      h = jnp.einsum('bhwi,io->bhwo', x, dense)
      h = nn.relu(blocks.batch_norm(self.train, name='bn1')(h))
      splits = np.cumsum(mids)[:-1]
      parts = jnp.split(h, splits, axis=-1)
      parts = [blocks.channel_shuffle(p, spec.groups) if spec.groups > 1
               else p for p, (_, spec) in zip(parts, convs)]
      w_dw = [self.param(f'{op}_dw_kernel', init, (spec.kernel, spec.kernel, 1, mid))
              for (op, spec), mid in zip(convs, mids)]
      outs = [None] * len(convs)
      for kernel in sorted({spec.kernel for _, spec in convs}):
        idx = [i for i, (_, spec) in enumerate(convs) if spec.kernel == kernel]
        y = blocks.depthwise_conv(
            jnp.concatenate([parts[i] for i in idx], -1),
            jnp.concatenate([w_dw[i] for i in idx], -1), stride)
        for i, y_i in zip(idx, jnp.split(
            y, np.cumsum([mids[i] for i in idx])[:-1], axis=-1)):
          outs[i] = y_i
      h = nn.relu(blocks.batch_norm(self.train, name='bn2')(
          jnp.concatenate(outs, -1)))
      parts = jnp.split(h, splits, axis=-1)
      ys = [blocks.pointwise_conv(
          p, self.param(f'{op}_pw2_kernel', init,
                        (1, 1, mid // spec.groups, cout)), 1, spec.groups)
            for p, (op, spec), mid in zip(parts, convs, mids)]
      y = blocks.batch_norm(self.train, name=blocks.last_bn_name(
          'bn3', residual))(jnp.concatenate(ys, -1))
      y = y.reshape(y.shape[:-1] + (len(convs), cout))
      cols = jnp.asarray([fbnet.OP_NAMES.index(op) for op, _ in convs])
      w = weights[:, cols]
      out = jnp.einsum('bhwnc,bn->bhwc', y, w)
      if residual:
        out = out + x * w.sum(-1)[:, None, None, None]
    if 'skip' in self.ops:
      skip = blocks.fbnet_candidate('skip', self.shape, name='skip')
      c = fbnet.OP_NAMES.index('skip')
      out = out + weights[:, c, None, None, None] * skip(x, self.train)
    return out, None


class FBNetSupernet(nn.Module):
  """FBNet supernet: ``(images, weights [B, 22, 9], train) -> logits``.

  The layers after the first of each stage share their shape, so they run
  under ``nn.scan`` (stacked parameters): one compiled body per stage, which
  halves XLA compile time without changing the computation.
  """
  macro: str = 'cifar'
  num_classes: int = 100
  ops: tuple[str, ...] = fbnet.OP_NAMES

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray, train: bool):
    # The mixed layers pick their columns by the index of each op in
    # fbnet.OP_NAMES; JAX would clamp an index past a narrower array.
    if weights.shape[-1] != len(fbnet.OP_NAMES):
      raise ValueError(f'FBNetSupernet: weights of shape {weights.shape}; '
                       f'expected a last axis of {len(fbnet.OP_NAMES)}, one '
                       'column per op of fbnet.OP_NAMES.')
    m = fbnet.MACROS[self.macro]
    x = nn.Conv(m.stem_channels, (3, 3), (m.stem_stride,) * 2, use_bias=False,
                name='stem')(x)
    x = nn.relu(blocks.batch_norm(train, name='stem_bn')(x))
    shapes = fbnet.layer_shapes(m)
    l = 0
    for stage, n in enumerate(m.stage_layers):
      x, _ = FBNetMixedLayer(shapes[l], self.ops, train,
                             name=f'layer{l}')(x, weights[:, l])
      if n > 1:
        rest = nn.scan(FBNetMixedLayer,
                       variable_axes={'params': 0, 'batch_stats': 0},
                       split_rngs={'params': True}, in_axes=1, length=n - 1)
        x, _ = rest(shapes[l + 1], self.ops, train,
                    name=f'stage{stage}_layers{l + 1}-{l + n - 1}')(
                        x, weights[:, l + 1:l + n])
      l += n
    x = nn.Conv(m.head_channels, (1, 1), use_bias=False, name='head')(x)
    x = nn.relu(blocks.batch_norm(train, name='head_bn')(x))
    return nn.Dense(self.num_classes, name='classifier')(x.mean(axis=(1, 2)))


def _ofa_stem(x: jnp.ndarray, train: bool) -> jnp.ndarray:
  """MobileNetV3's fixed stem and first block (called from a supernet's
  compact ``__call__``: the modules are the caller's children)."""
  x = nn.Conv(ofa.STEM_CHANNELS, (3, 3), (2, 2), use_bias=False,
              name='stem')(x)
  x = blocks.hard_swish(blocks.batch_norm(train, name='stem_bn')(x))
  return blocks.MBConvBlock(ofa.STEM_CHANNELS, ofa.STEM_CHANNELS, 1, 3, 1,
                            name='first_block')(x, train)


def _ofa_head(x: jnp.ndarray, train: bool, num_classes: int) -> jnp.ndarray:
  """MobileNetV3's fixed head: final 1x1 conv, pool, feature mix (no
  bias, as in OFA and :class:`fbnet_jax.models.OFAModel`), classifier (the
  caller's children, like :func:`_ofa_stem`)."""
  x = nn.Conv(ofa.FINAL_EXPAND, (1, 1), use_bias=False, name='final')(x)
  x = blocks.hard_swish(blocks.batch_norm(train, name='final_bn')(x))
  x = x.mean(axis=(1, 2))
  x = blocks.hard_swish(nn.Dense(ofa.FEATURE_MIX, use_bias=False,
                                 name='feature_mix')(x))
  return nn.Dense(num_classes, name='classifier')(x)


class OFASupernet(nn.Module):
  """MobileNetV3 supernet: ``(images, weights [B, 21, C], train) -> logits``.

  The last unit (resolution) of ``weights`` is ignored: the images' size is
  the resolution.
  """
  num_classes: int = 1000

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray, train: bool):
    space = spaces_lib.get_space('ofa')
    x = _ofa_stem(x, train)
    for b, shape in enumerate(space.blocks):
      cands = []
      for op in space.units[b].choices:
        if op == ofa.SKIP:
          cands.append(Identity(name=f'block{b}_skip'))
          continue
        kernel, expansion = ofa.decode_op(ofa.BLOCK_OPS.index(op))
        cands.append(blocks.MBConvBlock(
            shape.in_channels, shape.out_channels, shape.stride, kernel,
            expansion, se=shape.se, hswish=shape.hswish,
            name=f'block{b}_{op}'))
      x = MixedLayer(cands, name=f'block{b}')(x, weights[:, b], train)
    return _ofa_head(x, train, self.num_classes)


class OFAElasticSupernet(nn.Module):
  """OFA's weight-sharing MobileNetV3 supernet: ``(images, weights [B, 21,
  C], train) -> logits`` for the one sub-network ``weights[0]`` (one-hot
  rows; the whole batch runs it, as in OFA's and SPOS's training and in
  evaluating one architecture). The resolution unit is ignored, as in
  :class:`OFASupernet`; stem, first block and head are those of
  :class:`OFASupernet`.

  ``per_example``: every example runs its own row of ``weights`` (soft
  choices too: FBNetV2's masked mixture, see
  :class:`blocks.ElasticMBConvBlock`), for DNAS.
  """
  num_classes: int = 1000
  per_example: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray, train: bool):
    space = spaces_lib.get_space('ofa')
    x = _ofa_stem(x, train)
    for b, shape in enumerate(space.blocks):
      choices = space.units[b].choices
      x = blocks.ElasticMBConvBlock(
          shape.in_channels, shape.out_channels, shape.stride, choices,
          se=shape.se, hswish=shape.hswish, name=f'block{b}')(
              x, (weights[:, b, :len(choices)] if self.per_example
                  else weights[0, b, :len(choices)]), train)
    return _ofa_head(x, train, self.num_classes)


# OFAModel's names for the fixed layers that the supernets call otherwise.
_OFA_HEAD_NAMES = {'final_expand': 'final', 'final_expand_bn': 'final_bn'}


def ofa_subnet_variables(variables: dict, arch: Sequence[int]) -> dict:
  """The weights that :class:`OFAElasticSupernet` ``variables`` hold for
  sub-network ``arch``, as variables of the standalone
  :class:`fbnet_jax.models.OFAModel` ``(arch)``: OFA's promise, a
  sub-network deployed (exported, fine-tuned) with its inherited weights.

  Each present block slot gives the centre ``k x k`` of its depthwise
  kernels and its first hidden and squeeze-excite channels (what
  :class:`blocks.ElasticMBConvBlock` masks to), batch-norm statistics
  included; recalibrate them for the sub-network first
  (``Searcher.recalibrate``) where it matters. The standalone network then
  computes exactly what the supernet computes for a one-hot ``arch``
  (tested).

  Raises:
    ValueError: ``variables`` are not an elastic OFA supernet's.
  """
  space = spaces_lib.get_space('ofa')
  arch = space.validate(arch, where='ofa_subnet_variables: arch')
  model = models.OFAModel(tuple(int(a) for a in arch),
                          num_classes=variables['params']['classifier'][
                              'kernel'].shape[-1])
  target = jax.eval_shape(
      lambda: model.init(jax.random.key(0),
                         jnp.zeros((1, 32, 32, 3)), train=False))
  slots = {u.name: f'block{b}' for b, u in enumerate(space.units)}

  def take(path, want):
    keys = [k.key for k in path]
    keys[1] = _OFA_HEAD_NAMES.get(keys[1], slots.get(keys[1], keys[1]))
    leaf = variables
    for k in keys:
      if k not in leaf:
        raise ValueError(
            f'ofa_subnet_variables: no {"/".join(map(str, keys))} in the '
            'variables; expected an OFAElasticSupernet\'s variables.')
      leaf = leaf[k]
    index = []
    for axis, (have, need) in enumerate(zip(leaf.shape, want.shape)):
      # A depthwise kernel's spatial axes: the centre; others: a prefix.
      lo = ((have - need) // 2 if keys[-2] == 'dw' and axis < 2 else 0)
      index.append(slice(lo, lo + need))
    if len(leaf.shape) != len(want.shape) or any(
        i.stop > h for i, h in zip(index, leaf.shape)):
      raise ValueError(
          f'ofa_subnet_variables: {"/".join(map(str, keys))} has shape '
          f'{tuple(leaf.shape)}, cannot hold {tuple(want.shape)}; expected '
          "an OFAElasticSupernet's variables.")
    return jnp.asarray(leaf[tuple(index)], want.dtype)

  return jax.tree_util.tree_map_with_path(take, target)


class ReLUConvBN(nn.Module):
  """NAS-Bench-201's ReLU -> kxk conv (padding k // 2, no bias) -> BN."""
  channels: int
  kernel: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    pad = self.kernel // 2
    x = nn.Conv(self.channels, (self.kernel, self.kernel),
                (self.stride, self.stride), padding=((pad, pad), (pad, pad)),
                use_bias=False, name='conv')(nn.relu(x))
    return blocks.batch_norm(train, name='bn')(x)


def nb201_avg_pool(x: jnp.ndarray) -> jnp.ndarray:
  """3x3 average pool, stride 1, padding 1, padded pixels not counted
  (PyTorch's ``AvgPool2d(3, 1, 1, count_include_pad=False)``)."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


class NASBench201Cell(nn.Module):
  """A mixed NAS-Bench-201 cell, its edges fused per source node; scannable.

  Mathematically: node 0 is the input, node ``j`` sums ``sum_c weights[:,
  e, c] * op_c(node_i)`` over its incoming edges ``e = i->j`` (``EDGES``
  order, ops in ``OP_NAMES`` order: ``none`` is zeros, ``skip_connect`` the
  identity, ``nor_conv_kxk`` ReLU -> kxk conv -> BN, ``avg_pool_3x3`` a 3x3
  average not counting the padding); the output is node 3. With a one-hot
  it is the discrete cell (tested against one written out with lax ops).

  Computed per source node: one 1x1 convolution (a matmul) and one 3x3
  convolution for all its outgoing edges (their kernels concatenated on the
  output axis), one BN over all those channels (per-channel, so exact), one
  pool shared by the edges. Parameters: ``edge_{i}_{j}_nor_conv_1x1_kernel``
  ``[1, 1, C, C]`` and ``edge_{i}_{j}_nor_conv_3x3_kernel`` ``[3, 3, C, C]``;
  BN ``node{i}_bn`` over the 1x1 outputs of node i's edges in ``EDGES``
  order, then their 3x3 outputs. Call: ``(x, weights [B, 6, 5]) -> (x,
  None)`` (the scan signature).
  """
  channels: int
  train: bool

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray):
    c = self.channels
    col = {op: nasbench201.OP_NAMES.index(op) for op in nasbench201.OP_NAMES}
    init = nn.initializers.lecun_normal()
    incoming = {1: [], 2: [], 3: []}
    node = x
    for source in range(3):
      if source:
        node = sum(incoming[source])
      edges = [(e, dest) for e, (src, dest) in enumerate(nasbench201.EDGES)
               if src == source]
      kernels = {k: jnp.concatenate([self.param(
          f'edge_{source}_{dest}_nor_conv_{k}x{k}_kernel', init,
          (k, k, c, c)) for _, dest in edges], axis=-1) for k in (1, 3)}
      h = nn.relu(node)
      y = jnp.concatenate([
          blocks.pointwise_conv(h, kernels[1]),
          jax.lax.conv_general_dilated(
              h, kernels[3], (1, 1), ((1, 1), (1, 1)),
              dimension_numbers=('NHWC', 'HWIO', 'NHWC'))], axis=-1)
      y = blocks.batch_norm(self.train, name=f'node{source}_bn')(y)
      pooled = nb201_avg_pool(node)
      n = len(edges)
      for i, (e, dest) in enumerate(edges):
        w = weights[:, e, :, None, None, None]  # [B, 5, 1, 1, 1]
        incoming[dest].append(
            w[:, col['skip_connect']] * node +
            w[:, col['nor_conv_1x1']] * y[..., i * c:(i + 1) * c] +
            w[:, col['nor_conv_3x3']] * y[..., (n + i) * c:(n + i + 1) * c] +
            w[:, col['avg_pool_3x3']] * pooled)
    return sum(incoming[3]), None


class NASBench201Reduction(nn.Module):
  """NAS-Bench-201's residual reduction block (stride 2): ReLUConvBN 3x3/2,
  ReLUConvBN 3x3, plus a shortcut of 2x2 average pool and 1x1 conv."""
  channels: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    y = ReLUConvBN(self.channels, 3, 2, name='conv_a')(x, train)
    y = ReLUConvBN(self.channels, 3, 1, name='conv_b')(y, train)
    shortcut = nn.avg_pool(x, (2, 2), (2, 2))
    shortcut = nn.Conv(self.channels, (1, 1), use_bias=False,
                       name='downsample')(shortcut)
    return shortcut + y


class NASBench201Supernet(nn.Module):
  """NAS-Bench-201 supernet: ``(images, weights [B, 6, 5], train) ->
  logits``.

  Stem 3x3 conv (16 channels) + BN; three stages of ``cells_per_stage``
  cells with 16, 32, 64 channels, a reduction block before the second and
  third; BN, ReLU, global average pool, linear. Every cell applies the same
  edge weights; each cell owns its parameters. The cells of a stage share
  their shape and run under ``nn.scan`` (one compiled body per stage).
  """
  num_classes: int = nasbench201.NUM_CLASSES
  cells_per_stage: int = nasbench201.CELLS_PER_STAGE

  @nn.compact
  def __call__(self, x: jnp.ndarray, weights: jnp.ndarray, train: bool):
    channels = [c for c, _ in nasbench201.STAGES]
    x = nn.Conv(channels[0], (3, 3), padding=((1, 1), (1, 1)),
                use_bias=False, name='stem')(x)
    x = blocks.batch_norm(train, name='stem_bn')(x)
    for stage, c in enumerate(channels):
      if stage:
        x = NASBench201Reduction(c, name=f'reduction{stage}')(x, train)
      cells = nn.scan(NASBench201Cell,
                      variable_axes={'params': 0, 'batch_stats': 0},
                      split_rngs={'params': True}, in_axes=nn.broadcast,
                      length=self.cells_per_stage)
      x, _ = cells(c, train, name=f'stage{stage}_cells')(x, weights)
    x = nn.relu(blocks.batch_norm(train, name='last_bn')(x))
    return nn.Dense(self.num_classes, name='classifier')(x.mean(axis=(1, 2)))


class SupernetBuilder(NamedTuple):
  """How to build one space's supernet (an entry of :data:`SUPERNETS`).

  Attributes:
    build: ``build(kind=, macro=, num_classes=, ops=, cells_per_stage=)`` ->
      the supernet module, for the arguments of :func:`build_supernet`
      (checked against ``kinds`` and ``op_subsets`` before the call).
    kinds: the ``config.search.supernet`` kinds it builds; 'mixture' (DNAS)
      first.
    op_subsets: whether ``config.search.ops`` may restrict the candidates.
  """
  build: Callable[..., nn.Module]
  kinds: tuple[str, ...] = ('mixture',)
  op_subsets: bool = False


def _fbnet_supernet(*, macro, num_classes, ops, **_) -> nn.Module:
  ops = tuple(ops) or fbnet.OP_NAMES
  unknown = set(ops) - set(fbnet.OP_NAMES)
  if unknown:
    raise errors.InputError(
        f'config.search.ops: unknown ops {sorted(unknown)}; '
        f'expected a subset of {fbnet.OP_NAMES}.')
  return FBNetSupernet(macro=macro, num_classes=num_classes, ops=ops)


def _ofa_supernet(*, kind, num_classes, **_) -> nn.Module:
  if kind in ('elastic', 'masked'):
    return OFAElasticSupernet(num_classes=num_classes,
                              per_example=kind == 'masked')
  return OFASupernet(num_classes=num_classes)


def _nasbench201_supernet(*, num_classes, cells_per_stage, **_) -> nn.Module:
  if not isinstance(cells_per_stage, int) or cells_per_stage < 1:
    raise errors.InputError(
        'config.nb201_cells: expected a positive number of '
        f'cells per stage, got {cells_per_stage!r}.')
  return NASBench201Supernet(num_classes=num_classes,
                             cells_per_stage=cells_per_stage)


#: Each space's supernet, by space name (``config.space``); a new space
#: registers its builder here (docs/dnas.md, "Adding a search space").
SUPERNETS: dict[str, SupernetBuilder] = {
    'fbnet': SupernetBuilder(_fbnet_supernet, op_subsets=True),
    # 'elastic' and 'masked': OFA's weight sharing (one set of weights for
    # every sub-network); see OFAElasticSupernet.
    'ofa': SupernetBuilder(_ofa_supernet,
                           kinds=('mixture', 'elastic', 'masked')),
    'nasbench201': SupernetBuilder(_nasbench201_supernet),
}


def build_supernet(space: str, *, macro: str = 'cifar', num_classes: int,
                   ops: Sequence[str] = (), kind: str = 'mixture',
                   cells_per_stage: int = nasbench201.CELLS_PER_STAGE
                   ) -> nn.Module:
  """The supernet of ``space`` (``config.space``), from :data:`SUPERNETS`.

  Args:
    space: 'fbnet', 'ofa' or 'nasbench201' (a key of :data:`SUPERNETS`).
    macro: FBNet's macro network ('cifar' or 'imagenet').
    num_classes: classifier outputs.
    ops: FBNet only: the candidate ops to build (``config.search.ops``).
    kind: 'mixture' (every candidate its own weights, mixed per example:
      DNAS) or, for OFA only, 'elastic' (:class:`OFAElasticSupernet`: one
      sub-network per batch) or 'masked' (the same weights, one soft choice
      per example: FBNetV2's masked DNAS) (``config.search.supernet``).
    cells_per_stage: NAS-Bench-201 only: cells per stage
      (``config.nb201_cells``; the benchmark's 5).
  """
  if space not in SUPERNETS:
    raise errors.InputError(
        f'config.space: no supernet for {space!r}; expected one '
        f'of {", ".join(SUPERNETS)}.')
  builder = SUPERNETS[space]
  if kind not in builder.kinds:
    known = sorted({k for b in SUPERNETS.values() for k in b.kinds})
    if kind not in known:
      raise errors.InputError(
          f'config.search.supernet: unknown {kind!r}; expected one of '
          f'{", ".join(repr(k) for k in known)}.')
    owners = errors.and_list(n for n, b in SUPERNETS.items()
                             if kind in b.kinds)
    raise errors.InputError(
        f'config.search.supernet: {kind!r} is for the {owners} space, not '
        f'{space!r}; expected {" or ".join(repr(k) for k in builder.kinds)}.')
  if ops and not builder.op_subsets:
    owners = errors.and_list(n for n, b in SUPERNETS.items() if b.op_subsets)
    raise errors.InputError(
        f'config.search.ops: op subsets are for the {owners} space, not '
        f'{space!r}.')
  return builder.build(kind=kind, macro=macro, num_classes=num_classes,
                       ops=tuple(ops), cells_per_stage=cells_per_stage)
