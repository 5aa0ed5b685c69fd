"""Latency predictor networks (Flax), conditioned on a hardware embedding.

Input: a soft architecture ``probs [B, U, C]`` (one-hot rows for discrete
architectures) and a hardware embedding (the device's latencies of the
space's reference architectures, normalised with the support statistics,
followed by a presence mask). Output: the normalised latency ``[B]``.

Trunks (``trunk`` is a '+'-joined list):
- ``additive``: a shared MLP maps each (unit, choice)'s analytic features
  (:meth:`SearchSpace.unit_features`) to an embedding, a free per-(unit,
  choice) table is added to it, and the architecture embedding is the
  probability-weighted mean over units. It is linear in ``probs``, so the
  expected embedding of a distribution is exact, and it carries the physics
  prior (MACs, memory traffic) that makes 20 measurements enough.
- ``gcn``: a graph network over the NAS-Bench-201 cell after HELP's (nodes =
  ops, each with its op probabilities, on the cell's fixed wiring; HELP
  also cuts ``none`` edges and bypasses skips, and uses 4 layers of the
  raw adjacency where this uses 2 with symmetric normalisation).
- ``mlp``: HELP's trunk: an MLP on the flat one-hot encoding.

Hardware branch and head follow HELP: the hardware embedding goes through
its own MLP, is concatenated with the architecture embedding, and a head of
three dense layers (``fc3..fc5``) produces the output. HELP's modulation
scales and shifts those head layers per device (:class:`Modulator`).
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from meta import encodings

HEAD_LAYERS = ('fc3', 'fc4', 'fc5')


class GCN(nn.Module):
  """Graph convolutions ``H' = relu(norm(A)^T H W)`` with a global readout."""
  hidden: int
  num_layers: int = 2

  @nn.compact
  def __call__(self, nodes: jnp.ndarray, adjacency: jnp.ndarray
               ) -> jnp.ndarray:
    """``adjacency``: ``[N, N]`` or per example ``[..., N, N]``."""
    deg = adjacency.sum(-2)  # in-degree, self-loop included (>= 1)
    norm = adjacency / jnp.sqrt(deg[..., :, None] * deg[..., None, :])
    norm = jnp.broadcast_to(norm, nodes.shape[:-2] + norm.shape[-2:])
    h = nodes
    for i in range(self.num_layers):
      h = nn.Dense(self.hidden, name=f'gc{i}')(h)
      h = nn.relu(jnp.einsum('...ij,...id->...jd', norm, h))
    return h[..., -1, :]  # the global node


class LatencyNet(nn.Module):
  """Architecture trunk + hardware branch + head (HELP's layout).

  ``embed`` (trunks and hardware branch) and ``head`` are separate methods so
  that an inner loop that adapts only the head (ANIL) embeds once.
  """
  space: str
  hidden: int = 64
  trunk: str = 'additive'
  use_hardware: bool = True
  standardize_physics: bool = True
  gcn_graph: str = 'fixed'  # see encodings.cell_graph

  def setup(self):
    sp = spaces_lib.get_space(self.space)
    feats, _ = sp.unit_features()
    self._feats = jnp.asarray(feats)
    self._mask = jnp.asarray(sp.choice_mask, jnp.float32)
    self._space = sp
    # Mean and std of the unit-feature sums under uniformly random choices,
    # to standardise the physics features that the ridge head sees.
    probs = sp.uniform_probs()[..., None]
    mean = (probs * feats).sum(1)
    var = (probs * (feats - mean[:, None]) ** 2).sum(1)
    self._physics_mean = jnp.asarray(mean.sum(0))
    self._physics_std = jnp.asarray(np.sqrt(var.sum(0)) + 1e-6)
    if not self.standardize_physics:
      self._physics_mean = jnp.zeros_like(self._physics_mean)
      self._physics_std = jnp.full_like(self._physics_std, sp.num_units)
    self._trunks = self.trunk.split('+')
    for t in self._trunks:
      if t not in ('additive', 'gcn', 'mlp'):
        raise errors.InputError(
            f'config.model.trunk: unknown trunk {t!r}; expected '
            'additive, gcn or mlp joined by "+".')
    if 'gcn' in self._trunks and self.space != 'nasbench201':
      raise errors.InputError(
          'config.model.trunk: the gcn trunk needs the nasbench201 '
          f'space, not {self.space!r}.')
    h = self.hidden
    if 'additive' in self._trunks:
      self.unit_fc1 = nn.Dense(h)
      self.unit_fc2 = nn.Dense(h)
      self.unit_table = self.param('unit_table', nn.initializers.zeros,
                                   feats.shape[:2] + (h,))
    if 'gcn' in self._trunks:
      self.gcn = GCN(h)
    if 'mlp' in self._trunks:
      self.arch_fc1 = nn.Dense(h)
      self.arch_fc2 = nn.Dense(h)
    if self.use_hardware:
      self.hw_fc1 = nn.Dense(h)
      self.hw_fc2 = nn.Dense(h)
    self.fc3 = nn.Dense(h)
    self.fc4 = nn.Dense(h)
    self.fc5 = nn.Dense(1)

  def embed(self, probs: jnp.ndarray, hardware: jnp.ndarray) -> jnp.ndarray:
    """Architecture (and hardware) embedding ``[..., width]``."""
    parts = []
    if 'additive' in self._trunks:
      table = self.unit_fc2(nn.relu(self.unit_fc1(self._feats)))
      table = (table + self.unit_table) * self._mask[..., None]
      parts.append(jnp.einsum('...uc,uch->...h', probs, table) /
                   self._space.num_units)
    if 'gcn' in self._trunks:
      nodes, adj = encodings.cell_graph(probs, self.gcn_graph)
      parts.append(self.gcn(nodes, adj))
    if 'mlp' in self._trunks:
      x = encodings.flat_one_hot(self._space, probs)
      parts.append(nn.relu(self.arch_fc2(nn.relu(self.arch_fc1(x)))))
    x = jnp.concatenate(parts, -1)
    if self.use_hardware:
      hw = nn.relu(self.hw_fc2(nn.relu(self.hw_fc1(hardware))))
      x = jnp.concatenate([x, jnp.broadcast_to(hw, x.shape[:-1] + hw.shape)],
                          -1)
    return x

  def head(self, x: jnp.ndarray, probs: jnp.ndarray,
           modulation: Optional[dict] = None
           ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Returns (prediction [...], features [..., hidden + F + 1]).

    The features are what a closed-form head regresses on (``ridge``): the
    head's last hidden layer, the expected analytic unit features summed
    over units (the physics prior), and a constant.
    """
    layers = {'fc3': self.fc3, 'fc4': self.fc4, 'fc5': self.fc5}
    for name, dense in layers.items():
      if name == HEAD_LAYERS[-1]:
        hidden = x
      x = dense(x)
      if modulation is not None:
        x = x * (1 + modulation[name]['scale']) + modulation[name]['shift']
      if name != HEAD_LAYERS[-1]:
        x = nn.relu(x)
    physics = (jnp.einsum('...uc,ucf->...f', probs, self._feats) -
               self._physics_mean) / self._physics_std
    features = jnp.concatenate(
        [hidden, physics, jnp.ones(physics.shape[:-1] + (1,))], -1)
    return x[..., 0], features

  def __call__(self, probs: jnp.ndarray, hardware: jnp.ndarray,
               modulation: Optional[dict] = None
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
    return self.head(self.embed(probs, hardware), probs, modulation)


class Modulator(nn.Module):
  """HELP's hardware-conditioned modulation of the head's initial params.

  From the hardware embedding it produces, per head layer, a scale and a
  shift of each output unit, i.e. ``W <- W * (1 + scale)``, ``b <- b * (1 +
  scale) + shift``. With ``variational`` they are sampled with the
  reparameterisation trick and a KL term to N(0, 1) is returned.
  """
  hidden: int = 64
  variational: bool = False

  @nn.compact
  def __call__(self, hardware: jnp.ndarray, rng: Optional[jax.Array] = None
               ) -> tuple[dict, jnp.ndarray]:
    h = nn.relu(nn.Dense(self.hidden, name='fc1')(hardware))
    h = nn.relu(nn.Dense(self.hidden, name='fc2')(h))
    widths = {n: (1 if i == len(HEAD_LAYERS) - 1 else self.hidden)
              for i, n in enumerate(HEAD_LAYERS)}
    total = 2 * sum(widths.values())
    init = nn.initializers.zeros
    mu = nn.Dense(total, kernel_init=init, name='mu')(h)
    kl = jnp.zeros(())
    if self.variational:
      log_sigma = nn.Dense(total, kernel_init=init,
                           bias_init=nn.initializers.constant(-3.),
                           name='log_sigma')(h)
      sigma = jnp.exp(log_sigma)
      z = mu
      if rng is not None:
        z = mu + sigma * jax.random.normal(rng, mu.shape)
      kl = 0.5 * jnp.sum(sigma ** 2 + mu ** 2 - 1 - 2 * log_sigma)
    else:
      z = mu
    out, i = {}, 0
    for name, w in widths.items():
      out[name] = {'scale': z[..., i:i + w], 'shift': z[..., i + w:i + 2 * w]}
      i += 2 * w
    return out, kl
