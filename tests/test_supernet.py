"""The fused supernet layer equals the weighted sum of separate blocks; the
NAS-Bench-201 supernet with a one-hot is the discrete cell network; OFA's
elastic block is each candidate with its slice of the shared weights."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fbnet_jax import blocks
from fbnet_jax import initializers
from fbnet_jax import models
from fbnet_jax import spaces
from fbnet_jax import supernet
from fbnet_jax.spaces import fbnet
from fbnet_jax.spaces import nasbench201


def _random_like(tree, seed):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return treedef.unflatten([0.5 * jax.random.normal(k, l.shape) + (
      1.0 if l.ndim == 1 else 0.0) for k, l in zip(keys, leaves)])


@pytest.mark.parametrize('shape', [
    fbnet.LayerShape(16, 16, 1, 6),   # residual
    fbnet.LayerShape(16, 24, 2, 6),   # stride 2, channels change
])
def test_fused_layer_equals_separate_blocks(shape):
  # Both sides run jitted (one compile each): eager flax would dispatch and
  # compile every operation of nine blocks one by one.
  ops = fbnet.OP_NAMES
  layer = supernet.FBNetMixedLayer(shape, ops, train=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, shape.in_size,
                                                shape.in_size, 16))
  weights = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (3, 9)))
  variables = initializers.fast_init(layer, 2, x, weights)
  params = _random_like(variables['params'], 3)
  fused, _ = jax.jit(lambda p, s: layer.apply(
      {'params': p, 'batch_stats': s}, x, weights, mutable=['batch_stats'])[0])(
          params, variables['batch_stats'])

  convs = [op for op in ops if op != 'skip']
  residual = shape.stride == 1 and shape.in_channels == shape.out_channels
  mids = [shape.in_channels * fbnet.parse_op(op).expansion for op in convs]
  offsets = np.r_[0, np.cumsum(mids)]

  @jax.jit
  def separate(params):
    expected = 0.0
    for c, op in enumerate(ops):
      block = blocks.fbnet_candidate(op, shape)
      if op == 'skip':
        p = params.get('skip', {})
      else:
        i = convs.index(op)
        mid = slice(offsets[i], offsets[i + 1])
        out = slice(i * shape.out_channels, (i + 1) * shape.out_channels)
        bn = lambda name, sl: {k: v[sl] for k, v in params[name].items()}
        p = {'pw1': {'kernel': params[f'{op}_pw1_kernel']},
             'bn1': bn('bn1', mid),
             'dw': {'kernel': params[f'{op}_dw_kernel']}, 'bn2': bn('bn2', mid),
             'pw2': {'kernel': params[f'{op}_pw2_kernel']},
             blocks.last_bn_name('bn3', residual):
                 bn(blocks.last_bn_name('bn3', residual), out)}
      stats = initializers.fast_init(block, 4, x, train=True).get(
          'batch_stats', {})
      y, _ = block.apply({'params': p, 'batch_stats': stats}, x, train=True,
                         mutable=['batch_stats'])
      expected = expected + weights[:, c, None, None, None] * y
    return expected

  np.testing.assert_allclose(fused, separate(params), rtol=2e-4, atol=2e-4)


def test_supernet_forward_and_op_subsets():
  model = supernet.build_supernet('fbnet', num_classes=10,
                                  ops=('k3_e1', 'skip'))
  x = jnp.zeros((2, 8, 8, 3))
  w = jnp.ones((2, 22, 9)) / 9
  variables = initializers.fast_init(model, 0, x, w, train=False)
  logits = jax.eval_shape(functools.partial(model.apply, train=False),
                          variables, x, w)
  assert logits.shape == (2, 10)
  names = set(variables['params']['layer0'])
  assert names == {'k3_e1_pw1_kernel', 'k3_e1_dw_kernel', 'k3_e1_pw2_kernel',
                   'bn1', 'bn2', 'bn3_res'}  # skip is the identity at layer 0
  with pytest.raises(ValueError, match='unknown ops'):
    supernet.build_supernet('fbnet', num_classes=10, ops=('k7_e9',))


# ------------------------------------------------------------ NAS-Bench-201
@functools.lru_cache(maxsize=None)  # one compile per cell count
def _nb201_variables(cells, seed=0, size=8):
  """Supernet variables with random parameters and running statistics (so
  that a test sees every BN's scale, offset, mean and variance at work)."""
  model = supernet.build_supernet('nasbench201', num_classes=10,
                                  cells_per_stage=cells)
  x = jnp.zeros((2, size, size, 3))
  w = jnp.ones((2, 6, 5)) / 5
  variables = initializers.fast_init(model, seed, x, w, train=False)
  rng = np.random.default_rng(seed)
  apply = jax.jit(functools.partial(model.apply, train=False))

  def fill(path, leaf):
    name = getattr(path[-1], 'key', '')
    if name == 'kernel':
      return np.asarray(leaf) * rng.uniform(0.5, 1.5)
    if name in ('scale', 'var'):
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return 0.2 * rng.normal(size=leaf.shape).astype(np.float32)

  return apply, jax.tree_util.tree_map_with_path(fill, variables)


def _conv(x, kernel, stride=1):
  pad = kernel.shape[0] // 2
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), [(pad, pad), (pad, pad)],
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _bn(x, params, stats):  # eval mode: running statistics
  return ((x - stats['mean']) / jnp.sqrt(stats['var'] + blocks.BN_EPSILON) *
          params['scale'] + params['bias'])


def _relu_conv_bn(x, params, stats, stride=1):
  return _bn(_conv(jax.nn.relu(x), params['conv']['kernel'], stride),
             params['bn'], stats['bn'])


def _avg_pool_3x3(x):  # PyTorch AvgPool2d(3, 1, 1, count_include_pad=False)
  window = lambda v: jax.lax.reduce_window(
      v, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1),
      [(0, 0), (1, 1), (1, 1), (0, 0)])
  return window(x) / window(jnp.ones_like(x))


def _nb201_edge(h, op, params, stats, source, dest):
  """One edge of the discrete cell, from the fused cell's parameters."""
  if op == 'none':
    return jnp.zeros_like(h)
  if op == 'skip_connect':
    return h
  if op == 'avg_pool_3x3':
    return _avg_pool_3x3(h)
  # node{source}_bn holds the 1x1 outputs of the source's edges, then the
  # 3x3 ones, in EDGES order.
  dests = [d for s, d in nasbench201.EDGES if s == source]
  c = h.shape[-1]
  i = dests.index(dest) + (len(dests) if op == 'nor_conv_3x3' else 0)
  bn = lambda tree: {k: v[i * c:(i + 1) * c] for k, v in tree.items()}
  y = _conv(jax.nn.relu(h), params[f'edge_{source}_{dest}_{op}_kernel'])
  return _bn(y, bn(params[f'node{source}_bn']), bn(stats[f'node{source}_bn']))


def _nb201_reference(variables, x, arch, cells):
  """The discrete NAS-Bench-201 network of ``arch``, written out with lax
  ops from the supernet's parameters (only the chosen op of each edge)."""
  params, stats = variables['params'], variables['batch_stats']
  ops = [nasbench201.OP_NAMES[a] for a in arch]
  x = _bn(_conv(x, params['stem']['kernel']), params['stem_bn'],
          stats['stem_bn'])
  for stage in range(3):
    if stage:
      p, s = params[f'reduction{stage}'], stats[f'reduction{stage}']
      y = _relu_conv_bn(x, p['conv_a'], s['conv_a'], 2)
      y = _relu_conv_bn(y, p['conv_b'], s['conv_b'])
      shortcut = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1),
                                       (1, 2, 2, 1), 'VALID') / 4
      x = _conv(shortcut, p['downsample']['kernel']) + y
    for cell in range(cells):
      p, s = jax.tree.map(lambda a: a[cell], (params[f'stage{stage}_cells'],
                                              stats[f'stage{stage}_cells']))
      nodes = [x]
      for target in (1, 2, 3):
        nodes.append(sum(
            _nb201_edge(nodes[src], ops[e], p, s, src, dst)
            for e, (src, dst) in enumerate(nasbench201.EDGES)
            if dst == target))
      x = nodes[3]
  x = jax.nn.relu(_bn(x, params['last_bn'], stats['last_bn']))
  return x.mean(axis=(1, 2)) @ params['classifier']['kernel'] + params[
      'classifier']['bias']


@pytest.mark.parametrize('arch', [
    '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|'
    'nor_conv_3x3~1|nor_conv_3x3~2|',  # the benchmark's best on CIFAR-10
    '|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|'
    'avg_pool_3x3~2|',
    '|none~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|'
    'nor_conv_1x1~2|',
    '|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|'
    'nor_conv_3x3~1|skip_connect~2|',
])
def test_nb201_supernet_with_a_one_hot_is_the_discrete_network(arch):
  space = spaces.get_space('nasbench201')
  arch = space.from_string(arch)
  apply, variables = _nb201_variables(cells=2)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 3))
  weights = jnp.broadcast_to(space.one_hot(arch), (3, 6, 5))
  logits = apply(variables, x, weights)
  chex.assert_shape(logits, (3, 10))
  expected = _nb201_reference(variables, x, arch, cells=2)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_nb201_none_edges_contribute_zeros():
  space = spaces.get_space('nasbench201')
  apply, variables = _nb201_variables(cells=1)
  x1 = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 3))
  x2 = jax.random.normal(jax.random.PRNGKey(2), (4, 8, 8, 3))
  # Node 3 only through 'none' edges: the cells output zeros, and the
  # logits no longer depend on the input.
  dead = jnp.broadcast_to(space.one_hot(space.from_string(
      '|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|'
      'none~2|')), (4, 6, 5))
  out1 = apply(variables, x1, dead)
  out2 = apply(variables, x2, dead)
  np.testing.assert_allclose(out1, out2, atol=1e-6)
  np.testing.assert_allclose(out1, jnp.broadcast_to(out1[0], out1.shape),
                             atol=1e-6)
  live = dead.at[:, 5].set(jax.nn.one_hot(3, 5))  # 2->3: nor_conv_3x3
  out1 = apply(variables, x1, live)
  out2 = apply(variables, x2, live)
  assert np.abs(out1 - out2).max() > 1e-3


def test_nb201_edge_is_the_probability_weighted_sum_of_its_ops():
  cell = supernet.NASBench201Cell(16, train=False)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 16))
  # Every edge 'none' but 0->3 (index 3): the cell output is that edge's.
  base = jnp.zeros((3, 6, 5)).at[:, :, 0].set(1.0)
  probs = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (3, 5)))
  variables = cell.init(jax.random.PRNGKey(2), x, base)
  variables = jax.tree.map(lambda a: a + 0.3, variables)  # non-trivial BN
  apply = jax.jit(lambda w: cell.apply(variables, x, w)[0])
  mixed = apply(base.at[:, 3].set(probs))
  per_op = [apply(base.at[:, 3].set(jax.nn.one_hot(c, 5))) for c in range(5)]
  np.testing.assert_allclose(per_op[0], 0.0)  # none
  np.testing.assert_allclose(per_op[1], x)  # skip_connect
  np.testing.assert_allclose(per_op[4], _avg_pool_3x3(x), rtol=1e-5,
                             atol=1e-6)
  p, s = variables['params'], variables['batch_stats']
  for c in (2, 3):
    np.testing.assert_allclose(per_op[c], _nb201_edge(
        x, nasbench201.OP_NAMES[c], p, s, 0, 3), rtol=1e-4, atol=1e-4)
  expected = sum(probs[:, c, None, None, None] * y
                 for c, y in enumerate(per_op))
  np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-5)


def test_nb201_supernet_config_errors():
  with pytest.raises(ValueError, match='config.nb201_cells'):
    supernet.build_supernet('nasbench201', num_classes=10, cells_per_stage=0)
  with pytest.raises(ValueError, match='config.search.ops'):
    supernet.build_supernet('nasbench201', num_classes=10, ops=('k3_e1',))


@pytest.mark.parametrize('slot, op', [
    (2, 'k5_e4'),   # stage 1: ReLU, no squeeze-excite, residual
    (4, 'k3_e6'),   # stage 2's first: stride 2, squeeze-excite
    (13, 'k7_e3'),  # stage 4: h-swish, squeeze-excite, residual
])
def test_elastic_block_is_the_candidate_with_sliced_weights(slot, op):
  # OFA's weight sharing: candidate k{k}_e{e} of an elastic slot computes
  # what MBConvBlock(k, e) computes with the centre of every depthwise
  # kernel and the first hidden / squeeze-excite channels of each weight
  # and BN statistic; in training mode (batch statistics) and at eval.
  space = spaces.get_space('ofa')
  shape, choices = space.blocks[slot], space.units[slot].choices
  elastic = blocks.ElasticMBConvBlock(
      shape.in_channels, shape.out_channels, shape.stride, choices,
      se=shape.se, hswish=shape.hswish)
  kernel, expansion = (int(t[1:]) for t in op.split('_'))
  block = blocks.MBConvBlock(shape.in_channels, shape.out_channels,
                             shape.stride, kernel, expansion, se=shape.se,
                             hswish=shape.hswish)
  rng = np.random.default_rng(slot)  # host-side: eager jax compiles per shape
  x = rng.normal(size=(3, 8, 8, shape.in_channels)).astype(np.float32)
  choice = np.eye(len(choices), dtype=np.float32)[choices.index(op)]
  big = jax.tree.map(
      lambda l: (0.5 * rng.normal(size=l.shape) + (l.ndim == 1)).astype(
          np.float32), initializers.fast_init(elastic, 0, x, choice, False))
  big['batch_stats'] = jax.tree.map(np.abs, big['batch_stats'])
  mid, lo = block.mid, (7 - kernel) // 2
  red = spaces.ofa.make_divisible(mid // 4)

  def cut(path, leaf):  # the candidate's slice of an elastic weight
    names = [getattr(p, 'key', '') for p in path]
    if names[-2:] == ['dw', 'kernel']:
      return leaf[lo:lo + kernel, lo:lo + kernel, :, :mid]
    if 'se' in names:
      if names[-2:] == ['reduce', 'kernel']:
        return leaf[:, :, :mid, :red]
      if names[-2:] == ['reduce', 'bias']:
        return leaf[:red]
      if names[-2:] == ['expand', 'kernel']:
        return leaf[:, :, :red, :mid]
      return leaf[:mid]
    if names[-2:] == ['project', 'kernel']:
      return leaf[:, :, :mid]
    if names[0].startswith('project'):
      return leaf
    return leaf[..., :mid]  # expand, expand_bn, dw_bn
  small = jax.tree_util.tree_map_with_path(cut, big)

  def both(big, small, train):
    kw = dict(mutable=['batch_stats']) if train else {}
    return (elastic.apply(big, x, choice, train, **kw),
            block.apply(small, x, train, **kw))

  def close(got, want):
    # float32 sums of terms up to ~1e3 (these weights are large on
    # purpose): a reordered reduction (another XLA version) moves an entry
    # near zero by ~1e-5 of the largest; a wrong slice moves it by ~all.
    np.testing.assert_allclose(got, want, rtol=1e-4,
                               atol=1e-5 * float(np.abs(want).max()))

  (got, stats), (want, want_stats) = jax.jit(both, static_argnums=2)(
      big, small, True)
  close(got, want)
  close(stats['batch_stats']['dw_bn']['mean'][:mid],
        want_stats['batch_stats']['dw_bn']['mean'])
  got, want = jax.jit(both, static_argnums=2)(big, small, False)
  close(got, want)
  if 'skip' in choices:
    skip = np.eye(len(choices), dtype=np.float32)[choices.index('skip')]
    np.testing.assert_allclose(
        jax.jit(elastic.apply, static_argnums=3)(big, x, skip, False), x)


def test_elastic_ofa_supernet_holds_exactly_the_largest_subnetwork():
  # OFA's weight sharing: every sub-network's weights are a part of the
  # largest one's (k7, e6, depth 4 everywhere), so the supernet's parameters
  # are that network's, counted by the space (the feature mix has no bias,
  # as in OFA).
  space = spaces.get_space('ofa')
  model = supernet.build_supernet('ofa', num_classes=1000, kind='elastic')
  x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  w = jax.ShapeDtypeStruct((1, space.num_units, space.max_choices),
                           jnp.float32)
  logits, variables = jax.eval_shape(
      lambda x, w: model.init_with_output(jax.random.key(0), x, w,
                                          train=False), x, w)
  assert logits.shape == (1, 1000)
  largest = space.from_native(np.full((1, 20), 7), np.full((1, 20), 6),
                              [[4] * 5], [224])[0]
  assert models.count_params(variables) == space.params(largest)


def test_ofa_subnet_variables_give_the_standalone_network_the_supernets_function():
  # OFA's promise: a sub-network runs with its inherited weights. With
  # random weights and BN statistics (nothing at its neutral value), the
  # standalone OFAModel holding the extracted variables computes what the
  # elastic supernet computes for the one-hot architecture. (64x64 inputs:
  # at 32x32 the last stage's maps are 1x1, and train-mode batch norm over
  # two values turns float rounding into visible differences.)
  space = spaces.get_space('ofa')
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((2, 64, 64, 3)), jnp.float32)
  elastic = supernet.OFAElasticSupernet(num_classes=10)
  shapes = jax.eval_shape(lambda: elastic.init(
      jax.random.key(0), x, jnp.zeros((1, space.num_units,
                                       space.max_choices)), train=False))

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "'var'" in name or "'scale'" in name:
      return rng.uniform(0.5, 2, leaf.shape).astype(np.float32)
    scale = 0.1 if leaf.ndim == 1 else 1 / np.sqrt(np.prod(leaf.shape[:-1]))
    return (scale * rng.standard_normal(leaf.shape)).astype(np.float32)

  variables = jax.tree_util.tree_map_with_path(fill, shapes)
  arch = space.sample(rng, 1)[0]  # random kernels and widths, every slot
  arch[:20] = [0 if op == space.skip_index else op for op in arch[:20]]
  sub = supernet.ofa_subnet_variables(variables, arch)
  one_hot = jnp.asarray(np.eye(space.max_choices, dtype=np.float32)[arch])
  model = models.OFAModel(tuple(arch), num_classes=10)
  for train in (False, True):
    want, _ = jax.jit(functools.partial(elastic.apply, train=train,
                                        mutable=['batch_stats']))(
                                            variables, x, one_hot[None])
    got, _ = jax.jit(functools.partial(model.apply, train=train,
                                       mutable=['batch_stats']))(sub, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match='expected an OFAElasticSupernet'):
    supernet.ofa_subnet_variables(
        jax.tree.map(lambda v: v[..., :1], variables), arch)


def test_masked_block_runs_each_examples_own_choice():
  # config.search.supernet='masked': per-example rows. One-hot rows give each
  # example exactly what the shared-choice elastic block gives it (eval
  # mode: no batch coupling); a soft row (FBNetV2's masked mixture: one
  # depthwise kernel under the mixed mask) gives per example what the
  # shared path gives.
  space = spaces.get_space('ofa')
  slot = 14  # h-swish, squeeze-excite, residual, skip allowed
  shape, choices = space.blocks[slot], space.units[slot].choices
  elastic = blocks.ElasticMBConvBlock(
      shape.in_channels, shape.out_channels, shape.stride, choices,
      se=shape.se, hswish=shape.hswish)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 8, 8, shape.in_channels)).astype(np.float32)
  eye = np.eye(len(choices), dtype=np.float32)
  rows = eye[[choices.index(op) for op in ('k3_e3', 'k7_e6', 'skip')]]
  variables = jax.tree.map(
      lambda l: (0.5 * rng.normal(size=l.shape) + (l.ndim == 1)).astype(
          np.float32), initializers.fast_init(elastic, 0, x, rows[0], False))
  variables['batch_stats'] = jax.tree.map(np.abs, variables['batch_stats'])
  apply = jax.jit(elastic.apply, static_argnums=3)
  got = apply(variables, x, rows, False)
  for i, row in enumerate(rows):
    np.testing.assert_allclose(got[i], apply(variables, x, row, False)[i],
                               rtol=1e-4, atol=1e-3)
  # A soft row: the shared path masks the depthwise kernel with the mixed
  # mask in one convolution, the per-example path sums one convolution per
  # kernel size; the same by linearity (hidden, squeeze-excite and skip
  # masks mixed alike).
  soft = (0.2 * eye[choices.index('k3_e6')] + 0.5 * eye[choices.index(
      'k7_e4')] + 0.3 * eye[choices.index('skip')])
  np.testing.assert_allclose(apply(variables, x, np.stack([soft] * 3), False),
                             apply(variables, x, soft, False),
                             rtol=1e-4, atol=1e-3)


def test_masked_supernet_is_ofa_only():
  assert supernet.build_supernet('ofa', num_classes=10,
                                 kind='masked').per_example
  with pytest.raises(ValueError, match="'masked'.*ofa space"):
    supernet.build_supernet('fbnet', num_classes=10, kind='masked')
