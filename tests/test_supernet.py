"""The fused supernet layer equals the weighted sum of separate blocks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fbnet_jax import blocks
from fbnet_jax import initializers
from fbnet_jax import supernet
from fbnet_jax.spaces import fbnet


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
  ops = fbnet.OP_NAMES
  layer = supernet.FBNetMixedLayer(shape, ops, train=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, shape.in_size,
                                                shape.in_size, 16))
  weights = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (3, 9)))
  variables = layer.init(jax.random.PRNGKey(2), x, weights)
  params = _random_like(variables['params'], 3)
  fused, _ = layer.apply({'params': params,
                          'batch_stats': variables['batch_stats']},
                         x, weights, mutable=['batch_stats'])[0]

  convs = [op for op in ops if op != 'skip']
  residual = shape.stride == 1 and shape.in_channels == shape.out_channels
  mids = [shape.in_channels * fbnet.parse_op(op).expansion for op in convs]
  offsets = np.r_[0, np.cumsum(mids)]
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
      p = {'pw1': {'kernel': params[f'{op}_pw1_kernel']}, 'bn1': bn('bn1', mid),
           'dw': {'kernel': params[f'{op}_dw_kernel']}, 'bn2': bn('bn2', mid),
           'pw2': {'kernel': params[f'{op}_pw2_kernel']},
           blocks.last_bn_name('bn3', residual):
               bn(blocks.last_bn_name('bn3', residual), out)}
    v = block.init(jax.random.PRNGKey(4), x, train=True)
    y, _ = block.apply({'params': p, 'batch_stats': v.get('batch_stats', {})},
                       x, train=True, mutable=['batch_stats'])
    expected = expected + weights[:, c, None, None, None] * y
  np.testing.assert_allclose(fused, expected, rtol=2e-4, atol=2e-4)


def test_supernet_forward_and_op_subsets():
  model = supernet.build_supernet('fbnet', num_classes=10,
                                  ops=('k3_e1', 'skip'))
  x = jnp.zeros((2, 8, 8, 3))
  w = jnp.ones((2, 22, 9)) / 9
  variables = initializers.fast_init(model, 0, x, w, train=False)
  logits = model.apply(variables, x, w, train=False)
  assert logits.shape == (2, 10)
  names = set(variables['params']['layer0'])
  assert names == {'k3_e1_pw1_kernel', 'k3_e1_dw_kernel', 'k3_e1_pw2_kernel',
                   'bn1', 'bn2', 'bn3_res'}  # skip is the identity at layer 0
  with pytest.raises(ValueError, match='unknown ops'):
    supernet.build_supernet('fbnet', num_classes=10, ops=('k7_e9',))
