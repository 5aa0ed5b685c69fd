"""Encodings: hand-checked examples, soft inputs, NAS-Bench-201 graph."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fbnet_jax import spaces
from meta import encodings


def test_one_hot_and_flat_one_hot():
  sp = spaces.get_space('fbnet')
  arch = np.array([0, 8] + [3] * 20)
  oh = encodings.one_hot(sp, arch)
  assert oh.shape == (22, 9)
  assert oh[0, 0] == 1 and oh[1, 8] == 1 and oh.sum() == 22
  flat = encodings.flat_one_hot(sp, oh)
  assert flat.shape == (198,)
  assert flat[9 + 8] == 1


def test_flat_one_hot_drops_padding_choices():
  sp = spaces.get_space('ofa')  # blocks have 9 or 10 choices, resolution 25
  flat = encodings.flat_one_hot(sp, sp.uniform_probs())
  assert flat.shape == (int(sp.num_choices.sum()),)
  np.testing.assert_allclose(flat.sum(), sp.num_units, rtol=1e-5)


def test_unit_features_of_soft_input_is_the_mixture():
  sp = spaces.get_space('fbnet')
  feats, _ = sp.unit_features()
  a = encodings.unit_features(sp, encodings.one_hot(sp, np.zeros(22, int)))
  b = encodings.unit_features(sp, encodings.one_hot(sp, np.full(22, 3)))
  probs = 0.25 * encodings.one_hot(sp, np.zeros(22, int)) + 0.75 * (
      encodings.one_hot(sp, np.full(22, 3)))
  mixed = encodings.unit_features(sp, probs)
  np.testing.assert_allclose(mixed, 0.25 * a + 0.75 * b, rtol=1e-6)
  np.testing.assert_allclose(a[0], feats[0, 0])


def test_nasbench201_graph_hand_checked():
  sp = spaces.get_space('nasbench201')
  arch = encodings.arch_from_string(
      '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|'
      'nor_conv_1x1~1|nor_conv_3x3~2|')
  nodes, adj = encodings.cell_graph(encodings.one_hot(sp, arch))
  assert nodes.shape == (9, 8) and adj.shape == (9, 9)
  # Op node k+1 carries edge k's op; node 0 is the input, 7 the output, 8 the
  # global node.
  np.testing.assert_array_equal(np.argmax(nodes[1:7, :5], -1), arch)
  assert nodes[0, 5] == 1 and nodes[7, 6] == 1 and nodes[8, 7] == 1
  # Edge 0 (0->1) feeds edges 2 (1->2) and 4 (1->3); edge 5 (2->3) the output.
  assert adj[1, 3] == 1 and adj[1, 5] == 1 and adj[1, 6] == 0
  assert adj[6, 7] == 1 and adj[0, 1] == 1 and adj[0, 3] == 0
  assert np.all(adj[8] == 1) and np.all(adj[:, 8] == 1)
  # 'pruned' (closer to HELP's): the none edge (node 2) is cut from the
  # graph, the global node only receives; the rest is the same wiring.
  nodes_p, pruned = encodings.cell_graph(encodings.one_hot(sp, arch),
                                         'pruned')
  np.testing.assert_array_equal(nodes_p, nodes)
  cut = np.zeros((9, 9), bool)
  cut[2, :] = cut[:, 2] = True
  cut[8, :8] = True
  cut[2, 2] = False
  np.testing.assert_array_equal(pruned, np.where(cut, 0, adj))
  with pytest.raises(ValueError, match="model.gcn_graph: expected 'fixed'"):
    encodings.cell_graph(encodings.one_hot(sp, arch), 'helpish')


def test_encoders_are_differentiable_in_probabilities():
  sp = spaces.get_space('nasbench201')
  probs = jnp.asarray(sp.uniform_probs())
  weights = jax.random.normal(jax.random.PRNGKey(0), (2000,))

  def f(p):  # a weighted sum of every output, so no gradient cancels
    out = jnp.concatenate([encodings.cell_graph(p)[0].ravel(),
                           encodings.unit_features(sp, p).ravel()])
    return (out * weights[:out.size]).sum()

  grad = jax.grad(f)(probs)
  assert grad.shape == probs.shape and np.isfinite(grad).all()
  assert np.abs(np.asarray(grad)).max() > 0
  # Against central differences along a random direction.
  d = jax.random.normal(jax.random.PRNGKey(1), probs.shape)
  eps = 1e-2
  numeric = (f(probs + eps * d) - f(probs - eps * d)) / (2 * eps)
  np.testing.assert_allclose(float(jnp.vdot(grad, d)), float(numeric),
                             rtol=2e-2, atol=1e-3)
