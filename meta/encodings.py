"""Architecture encodings for the latency predictors; all accept soft inputs.

The common currency is a *soft architecture*: float ``[..., num_units,
max_choices]`` probabilities (a one-hot row for a discrete choice, a
Gumbel-softmax sample or the architecture distribution for a supernet). Every
encoder here is linear in those probabilities (except the adjacency of
``cell_graph(..., 'pruned')``, a product of two edges' probabilities), so the
expected encoding under a distribution is the encoding of its probabilities,
and gradients flow through them to the architecture parameters.

- :func:`one_hot`: discrete archs -> soft archs.
- :func:`flat_one_hot`: HELP's FBNet / OFA encoding (concatenated one-hots).
- :func:`unit_features`: per-unit analytic features (FBNet per-layer
  features; OFA block features): the expected cost vector of each unit.
- :func:`cell_graph`: NAS-Bench-201 as a graph for a GCN, after HELP's (and
  BRP-NAS's): nodes are the cell input, the six operations and the output,
  node features the op probabilities, plus a global node linked to every
  node. Unlike HELP's graph, the wiring is the same for every cell: a
  ``none`` edge is not cut and a ``skip_connect`` is not bypassed, they are
  node features, which keeps the graph input linear in the probabilities.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from fbnet_jax.spaces import nasbench201


def one_hot(space: spaces_lib.SearchSpace, archs) -> jnp.ndarray:
  """``[..., U]`` int -> ``[..., U, max_choices]`` float32 one-hots."""
  return jnp.asarray(space.one_hot(np.asarray(archs)))


def flat_one_hot(space: spaces_lib.SearchSpace, probs) -> jnp.ndarray:
  """``[..., U, C]`` -> ``[..., sum_u C_u]``: only valid choices are kept."""
  probs = jnp.asarray(probs)
  cols = np.nonzero(space.choice_mask.reshape(-1))[0]
  return probs.reshape(probs.shape[:-2] + (-1,))[..., cols]


def unit_features(space: spaces_lib.SearchSpace, probs) -> jnp.ndarray:
  """Expected analytic feature vector of every unit: ``[..., U, F]``."""
  feats, _ = space.unit_features()
  return jnp.einsum('...uc,ucf->...uf', jnp.asarray(probs), jnp.asarray(feats))


def cell_graph(probs, graph: str = 'fixed'
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """NAS-Bench-201 cell as a graph with a global node (after HELP's).

  Args:
    probs: ``[..., 6, 5]`` edge-op probabilities.
    graph: 'fixed': the same wiring for every cell, the global node linked
      both ways to every node (see the module docstring). 'pruned': closer
      to HELP's: every link of an operation node is scaled by the
      probability that it is not ``none`` (for a discrete cell, a ``none``
      edge is cut), and the global node only receives; skips are not
      bypassed. Both are differentiable in ``probs``.

  Returns:
    nodes: ``[..., 9, 8]`` node features: 5 op probabilities, then flags for
      input, output and global node.
    adjacency: ``[..., 9, 9]`` ('pruned') or ``[9, 9]`` ('fixed') float32,
      self-loops included, ``a[i, j]`` > 0 when node i sends to node j.
  """
  if graph not in ('fixed', 'pruned'):
    raise errors.InputError(
        f"config.model.gcn_graph: expected 'fixed' or 'pruned', got "
        f'{graph!r}.')
  probs = jnp.asarray(probs)
  batch = probs.shape[:-2]
  adj, _ = nasbench201.op_graph()
  n = adj.shape[0] + 1
  full = np.zeros((n, n), np.float32)
  full[:-1, :-1] = adj
  full[:, -1] = 1
  if graph == 'fixed':
    full[-1, :] = 1
  full += np.eye(n, dtype=np.float32)
  full = np.minimum(full, 1)
  ops = jnp.concatenate([jnp.zeros(batch + (1, 5)), probs,
                         jnp.zeros(batch + (2, 5))], axis=-2)
  flags = np.zeros((n, 3), np.float32)
  flags[0, 0] = flags[n - 2, 1] = flags[n - 1, 2] = 1
  nodes = jnp.concatenate(
      [ops, jnp.broadcast_to(jnp.asarray(flags), batch + (n, 3))], axis=-1)
  if graph == 'fixed':
    return nodes, jnp.asarray(full)
  none = nasbench201.OP_NAMES.index('none')
  keep = jnp.concatenate([jnp.ones(batch + (1,)), 1 - probs[..., none],
                          jnp.ones(batch + (2,))], axis=-1)
  eye = np.eye(n, dtype=bool)
  pruned = jnp.where(eye, 1.0,
                     full * keep[..., :, None] * keep[..., None, :])
  return nodes, pruned


def arch_from_string(arch_str: str) -> np.ndarray:
  """Build a NAS-Bench-201 cell from its string: int32 [6] op indices."""
  return spaces_lib.get_space('nasbench201').from_string(arch_str)
