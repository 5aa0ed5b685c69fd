"""Blocks: shapes of every FBNet candidate, residual rules, hand-checked ops.

Initialising a network on CPU is dominated by XLA compiling one
truncated-normal sampler per parameter shape, so these tests take shapes from
``jax.eval_shape`` and fill the variables with numpy values instead.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fbnet_jax import blocks
from fbnet_jax import initializers
from fbnet_jax import spaces
from fbnet_jax.spaces import fbnet
from fbnet_jax.spaces import ofa


def _variables(module, x, train=False, seed=0):
  """Variables of ``module`` for input ``x``, shaped as ``init`` makes them.

  Kernels are random; biases and BN means zero; BN scales and variances one.
  """
  shapes = jax.eval_shape(
      lambda inp: module.init(jax.random.key(0), inp, train=train), x)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "'var'" in name or "'scale'" in name:
      return np.ones(leaf.shape, np.float32)
    if "'mean'" in name or "'bias'" in name:
      return np.zeros(leaf.shape, np.float32)
    return (0.3 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _set_leaf(variables, path, value):
  """A copy of ``variables`` with the leaf at ``path`` (keys) set to value."""
  variables = jax.tree_util.tree_map(lambda a: a, variables)
  node = variables
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = np.full(np.shape(node[path[-1]]), value, np.float32)
  return variables


def _image(shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape),
                     jnp.float32)


def test_channel_shuffle_hand_checked():
  x = jnp.arange(6.).reshape(1, 1, 1, 6)
  np.testing.assert_array_equal(blocks.channel_shuffle(x, 2)[0, 0, 0],
                                [0, 3, 1, 4, 2, 5])
  np.testing.assert_array_equal(blocks.channel_shuffle(x, 3)[0, 0, 0],
                                [0, 2, 4, 1, 3, 5])
  np.testing.assert_array_equal(blocks.channel_shuffle(x, 1), x)
  # Shuffling acts on channels only, the same at every pixel.
  y = jnp.arange(2 * 4.).reshape(1, 2, 1, 4)
  np.testing.assert_array_equal(blocks.channel_shuffle(y, 2)[0, 1, 0],
                                [4, 6, 5, 7])
  with pytest.raises(ValueError, match='6 channels cannot be split into 4'):
    blocks.channel_shuffle(x, 4)


def test_hard_activations_golden_values():
  x = jnp.array([-5., -3., -1., 0., 1., 3., 5.])
  np.testing.assert_allclose(blocks.hard_sigmoid(x),
                             [0, 0, 1 / 3, 0.5, 2 / 3, 1, 1], atol=1e-7)
  np.testing.assert_allclose(blocks.hard_swish(x),
                             [0, 0, -1 / 3, 0, 2 / 3, 3, 5], atol=1e-6)


# Layers of the CIFAR macro: same shape, channel change, stride 2 (and a
# channel change), the last layer.
_LAYERS = (0, 1, 5, 21)


@pytest.mark.parametrize('layer', _LAYERS)
def test_every_fbnet_candidate_shape_and_params(layer):
  space = spaces.get_space('fbnet')
  shape = space.layers[layer]
  _, table = space.params_table()
  x = jax.ShapeDtypeStruct((2, shape.in_size, shape.in_size,
                            shape.in_channels), jnp.float32)
  for op_index, op in enumerate(fbnet.OP_NAMES):
    block = blocks.fbnet_candidate(op, shape)
    out, variables = jax.eval_shape(
        lambda inp, b=block: b.init_with_output(jax.random.key(0), inp,
                                                train=False), x)
    assert out.shape == (2, shape.out_size, shape.out_size,
                         shape.out_channels), (layer, op)
    params = sum(np.prod(l.shape) for l in
                 jax.tree_util.tree_leaves(variables.get('params', {})))
    assert params == table[layer, op_index], (layer, op)


def test_fbnet_candidate_types_and_grouped_kernels():
  shape = fbnet.LayerShape(16, 24, 1, 8)
  block = blocks.fbnet_candidate('k5_e1_g2', shape, name='cand')
  assert isinstance(block, blocks.FBNetBlock)
  assert (block.kernel, block.expansion, block.groups) == (5, 1, 2)
  assert block.name == 'cand'
  assert isinstance(blocks.fbnet_candidate('skip', shape), blocks.SkipBlock)
  variables = jax.eval_shape(
      lambda inp: block.init(jax.random.key(0), inp, train=False),
      jax.ShapeDtypeStruct((1, 8, 8, 16), jnp.float32))
  p = variables['params']
  assert p['pw1']['kernel'].shape == (1, 1, 8, 16)  # 16 -> 16 in 2 groups
  assert p['dw']['kernel'].shape == (5, 5, 1, 16)  # depthwise
  assert p['pw2']['kernel'].shape == (1, 1, 8, 24)
  assert 'bias' not in p['pw1'] and 'bias' not in p['dw']
  with pytest.raises(ValueError, match="Unknown FBNet op 'k7_e1'"):
    blocks.fbnet_candidate('k7_e1', shape)


def test_fbnet_block_residual_only_where_shapes_agree():
  x = _image((2, 8, 8, 16))
  same = blocks.FBNetBlock(16, 16, 1, 3, 3, 1)
  # A residual block's last BN starts at scale 0: the block is the identity
  # at initialisation, with Flax's init and with fast_init alike.
  for v in (same.init(jax.random.key(0), x, train=False),
            initializers.fast_init(same, 0, x, train=False)):
    np.testing.assert_array_equal(v['params']['bn3_res']['scale'], 0.)
    np.testing.assert_array_equal(same.apply(v, x, train=False), x)
  # With a live branch the block is x + branch, not the branch alone: the
  # branch ends in BN (bias 0), so doubling its scale doubles y - x.
  y1, y2 = (same.apply(_set_leaf(_variables(same, x),
                                 ('params', 'bn3_res', 'scale'), scale), x,
                       train=False) for scale in (1., 2.))
  assert not np.allclose(y1, x)
  np.testing.assert_allclose(y2 - x, 2 * (y1 - x), rtol=1e-4, atol=1e-5)
  zero_last_bn = ('params', 'bn3', 'scale')
  for block in (blocks.FBNetBlock(16, 16, 2, 3, 1, 2),   # stride 2
                blocks.FBNetBlock(16, 24, 1, 5, 1, 1)):  # channels change
    v = _set_leaf(_variables(block, x), zero_last_bn, 0.)
    y = block.apply(v, x, train=False)
    chex.assert_shape(y, (2, 8 // block.stride, 8 // block.stride,
                          block.out_channels))
    np.testing.assert_array_equal(y, 0.)


def test_fbnet_block_train_mode_updates_batch_stats():
  block = blocks.FBNetBlock(8, 8, 1, 3, 1, 2)
  x = _image((2, 4, 4, 8))
  v = _variables(block, x)
  y, updates = block.apply(v, x, train=True, mutable=['batch_stats'])
  chex.assert_shape(y, x.shape)
  stats = updates['batch_stats']['bn1']
  # bn1 sees the bias-free 1x1 group conv of x, whose batch mean is the
  # group conv of the mean pixel; momentum 0.9 from a running mean of 0.
  kernel = v['params']['pw1']['kernel'][0, 0]  # [8 / 2 groups, 8]
  mean_pixel = np.asarray(x).mean(axis=(0, 1, 2))
  batch_mean = np.concatenate([mean_pixel[:4] @ kernel[:, :4],
                               mean_pixel[4:] @ kernel[:, 4:]])
  np.testing.assert_allclose(stats['mean'], 0.1 * batch_mean, atol=1e-5)
  # ... and the batch variance of that conv's output, from 1.
  pixels = np.asarray(x).reshape(-1, 8)
  h = np.concatenate([pixels[:, :4] @ kernel[:, :4],
                      pixels[:, 4:] @ kernel[:, 4:]], axis=1)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * h.var(0), rtol=1e-4)
  np.testing.assert_array_equal(v['batch_stats']['bn1']['mean'], 0.)
  with pytest.raises(ValueError, match='expected an NHWC input with 8'):
    block.apply(v, jnp.zeros((2, 4, 4, 6)), train=False)


def test_skip_block_identity_and_projection():
  x = _image((2, 8, 8, 16))
  identity = blocks.SkipBlock(16, 16, 1)
  variables = identity.init(jax.random.key(0), x, train=False)
  assert not jax.tree_util.tree_leaves(variables)
  np.testing.assert_array_equal(identity.apply(variables, x, train=False), x)
  project = blocks.SkipBlock(16, 24, 2)
  y = project.apply(_variables(project, x), x, train=False)
  chex.assert_shape(y, (2, 4, 4, 24))
  assert np.all(y >= 0)  # ends in ReLU


def test_squeeze_excite_with_zero_weights_halves_the_input():
  se = blocks.SqueezeExcite(8, 8)
  x = _image((1, 3, 3, 8))
  shapes = jax.eval_shape(lambda inp: se.init(jax.random.key(0), inp), x)
  v = jax.tree_util.tree_map(lambda l: np.zeros(l.shape, np.float32), shapes)
  # Zero weights and biases: h-sigmoid(0) = 1/2 on every channel.
  np.testing.assert_allclose(se.apply(v, x), 0.5 * x, rtol=1e-6)
  p = v['params']
  assert p['reduce']['kernel'].shape == (1, 1, 8, 8)
  assert p['reduce']['bias'].shape == (8,)
  assert p['expand']['bias'].shape == (8,)


@pytest.mark.parametrize('kernel,expansion,se,hswish', [
    (3, 3, False, False), (5, 4, True, True), (7, 6, True, False)])
def test_mbconv_params_match_ofa_cost(kernel, expansion, se, hswish):
  shape = ofa.BlockShape(40, 80, 2, se, hswish)
  block = blocks.MBConvBlock(40, 80, 2, kernel, expansion, se=se,
                             hswish=hswish)
  out, variables = jax.eval_shape(
      lambda inp: block.init_with_output(jax.random.key(0), inp, train=False),
      jax.ShapeDtypeStruct((1, 14, 14, 40), jnp.float32))
  assert out.shape == (1, 7, 7, 80)
  cost = ofa.mbconv_cost(shape, kernel, expansion, 14)
  params = sum(np.prod(l.shape) for l in
               jax.tree_util.tree_leaves(variables['params']))
  assert params == cost['params']
  assert variables['params']['expand']['kernel'].shape == (
      1, 1, 40, ofa.make_divisible(round(40 * expansion)))
  assert ('se' in variables['params']) == se


def test_mbconv_expansion_one_and_residual():
  block = blocks.MBConvBlock(16, 16, 1, 3, 1, se=False, hswish=False)
  x = _image((1, 6, 6, 16))
  v = _variables(block, x)
  assert set(v['params']) == {'dw', 'dw_bn', 'project', 'project_bn_res'}
  # x + branch: doubling the last BN's scale doubles y - x.
  y1, y2 = (block.apply(_set_leaf(v, ('params', 'project_bn_res', 'scale'),
                                  scale), x, train=False)
            for scale in (1., 2.))
  assert not np.allclose(y1, x)
  np.testing.assert_allclose(y2 - x, 2 * (y1 - x), rtol=1e-4, atol=1e-5)
  v = block.init(jax.random.key(0), x, train=False)  # zero-init residual
  np.testing.assert_array_equal(block.apply(v, x, train=False), x)
  # An explicit hidden width (MobileNetV3 tables) overrides the expansion.
  wide = blocks.MBConvBlock(16, 24, 2, 3, mid_channels=64, se=True)
  assert wide.mid == 64
  v = _set_leaf(_variables(wide, x), ('params', 'project_bn', 'scale'), 0.)
  y = wide.apply(v, x, train=False)
  chex.assert_shape(y, (1, 3, 3, 24))
  np.testing.assert_array_equal(y, 0.)  # no residual across a stride
  assert v['params']['se']['reduce']['kernel'].shape == (1, 1, 64, 16)


def test_blocks_compose_as_candidates_of_one_layer():
  """Two candidates inside one parent module keep separate parameters."""

  class Mixed(nn.Module):

    @nn.compact
    def __call__(self, x, train):
      shape = fbnet.LayerShape(8, 8, 1, 4)
      outs = [blocks.fbnet_candidate(op, shape, name=op)(x, train)
              for op in ('k3_e1', 'k5_e1_g2', 'skip')]
      return sum(outs) / len(outs)

  x = _image((1, 4, 4, 8))
  variables = _variables(Mixed(), x)
  assert set(variables['params']) == {'k3_e1', 'k5_e1_g2'}
  chex.assert_shape(Mixed().apply(variables, x, train=False), x.shape)


@pytest.mark.parametrize('kernel, stride, groups, size', [
    (1, 1, 1, 8), (1, 2, 1, 8), (1, 1, 2, 8), (1, 2, 2, 7),
    (3, 1, 'dw', 8), (3, 2, 'dw', 8), (5, 2, 'dw', 7), (5, 1, 'dw', 5),
])
def test_fast_conv_matches_xla_convolution(monkeypatch, kernel, stride,
                                           groups, size):
  channels = 6
  groups = channels if groups == 'dw' else groups
  conv = blocks.Conv(channels, kernel, stride, groups=groups, use_bias=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, channels))
  variables = conv.init(jax.random.PRNGKey(1), x)
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # non-zero bias
  monkeypatch.setenv('FBNET_JAX_CONV', 'fast')
  fast = conv.apply(variables, x)
  monkeypatch.setenv('FBNET_JAX_CONV', 'xla')
  reference = conv.apply(variables, x)
  np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-5)
