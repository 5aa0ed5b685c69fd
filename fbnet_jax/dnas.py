"""FBNet's differentiable NAS: Gumbel-softmax sampling and the losses.

Architecture parameters ``theta [U, C]`` hold one logit per (unit, choice);
invalid choices (padding) are masked out. Every training example gets its own
Gumbel noise (``jax.random.gumbel``), so a batch trains many architectures
at once, and the temperature is a traced argument.

Losses (``loss_form``):

- ``fbnet``: ``CE * alpha * log(LAT) ** beta`` (Wu et al. 2019, eq. 2): a
  product, with the power applied to the log. ``LAT`` is in units of
  ``unit_ms`` (1 ms by default); the log of a latency <= 1 unit would be <= 0
  and ``log ** beta`` undefined, so :func:`check_latency_range` refuses such a
  configuration up front with a clear error (choose a smaller unit).
- ``target``: ``CE + lam * relu(|log(LAT / T)| - margin)``: "about T ms", a
  hinge both ways, flat within ``margin`` (relative) of the target.
- ``budget``: ``CE + lam * relu(log(LAT / T) - margin)``: only above the
  target (and its margin).

``LAT`` is, by ``config.loss.latency_of``, the expected latency of the
architecture distribution ``softmax(theta)`` itself ('distribution', the
default: the same for every example, and its gradient bypasses the Gumbel
noise) or each example's latency under its sampled (soft or straight-
through hard) architecture ('sample', FBNet's eq. 2), from any
:class:`fbnet_jax.latency.LatencyModel`.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fbnet_jax import errors

NEG_INF = -1e9


def masked_logits(theta: jnp.ndarray, choice_mask: np.ndarray) -> jnp.ndarray:
  return jnp.where(jnp.asarray(choice_mask), theta, NEG_INF)


def probabilities(theta: jnp.ndarray, choice_mask: np.ndarray,
                  fixed: Optional[np.ndarray] = None) -> jnp.ndarray:
  """The architecture distribution ``softmax(theta)`` per unit ``[U, C]``.

  Args:
    fixed: optional float ``[U, C]`` rows; where a row is non-zero it replaces
      the unit's distribution (a unit fixed by the config, e.g. OFA's input
      resolution when it is not searched).
  """
  p = jax.nn.softmax(masked_logits(theta, choice_mask), axis=-1)
  return _apply_fixed(p, fixed)


def _apply_fixed(p, fixed):
  if fixed is None:
    return p
  fixed = jnp.asarray(fixed)
  is_fixed = fixed.sum(-1, keepdims=True) > 0
  return jnp.where(is_fixed, fixed, p)


def gumbel_softmax(rng: jax.Array, theta: jnp.ndarray, choice_mask: np.ndarray,
                   tau: jnp.ndarray, batch_size: int, *, hard: bool = False,
                   fixed: Optional[np.ndarray] = None) -> jnp.ndarray:
  """Per-example relaxed samples ``[B, U, C]`` of the architecture.

  ``softmax((theta + g) / tau)`` with ``g ~ Gumbel(0, 1)`` drawn independently
  for every example, unit and choice. With ``hard``, the forward value is the
  one-hot argmax and the gradient that of the soft sample (straight-through).
  """
  g = jax.random.gumbel(rng, (batch_size,) + theta.shape, theta.dtype)
  logits = masked_logits(theta, choice_mask)[None] + g
  soft = jax.nn.softmax(logits / tau, axis=-1)
  if hard:
    index = jnp.argmax(logits, axis=-1)
    one_hot = jax.nn.one_hot(index, theta.shape[-1], dtype=soft.dtype)
    soft = one_hot + soft - jax.lax.stop_gradient(soft)
  return _apply_fixed(soft, fixed)


def fbnet_loss(ce: jnp.ndarray, latency: jnp.ndarray, alpha: float,
               beta: float, unit_ms: float = 1.0) -> jnp.ndarray:
  """``CE * alpha * log(LAT / unit) ** beta`` per example (FBNet eq. 2).

  ``LAT / unit`` is floored just above 1, where the log reaches 0 and the
  latency gradient vanishes: ``check_latency_range`` refuses a unit above
  the space's fastest network before a search starts, so the floor only
  guards against a soft distribution's expectation dipping below it."""
  log_lat = jnp.log(jnp.maximum(latency / unit_ms, 1.0 + 1e-6))
  return ce * alpha * log_lat ** beta


#: The latency the target losses take the log of is at least this (ms):
#: a lookup table's float32 sum can cancel to 0 (fpga's all-skip network,
#: 9.5e-7 ms), whose log is -inf and whose gradient is NaN. The predictor
#: source floors its milliseconds at the same (meta.MIN_PREDICTED_MS).
MIN_LOSS_LATENCY_MS = 1e-3


def target_penalty(latency: jnp.ndarray, target_ms: jnp.ndarray,
                   margin: float, two_sided: bool) -> jnp.ndarray:
  """``relu(|log(LAT / T)| - margin)`` (or one-sided: only above T), LAT
  floored at :data:`MIN_LOSS_LATENCY_MS`."""
  ratio = jnp.log(jnp.maximum(latency, MIN_LOSS_LATENCY_MS) / target_ms)
  if two_sided:
    ratio = jnp.abs(ratio)
  return jax.nn.relu(ratio - margin)


def architecture_loss(ce: jnp.ndarray, latency: jnp.ndarray, config,
                      target_ms: jnp.ndarray) -> jnp.ndarray:
  """Mean over examples of the configured loss (``config.loss``)."""
  form = config.form
  if form == 'fbnet':
    return jnp.mean(fbnet_loss(ce, latency, config.alpha, config.beta,
                               config.unit_ms))
  if form in ('target', 'budget'):
    penalty = target_penalty(latency, target_ms, config.margin,
                             two_sided=form == 'target')
    return jnp.mean(ce) + config.lam * jnp.mean(penalty)
  raise errors.InputError(f"config.loss.form: expected 'fbnet', 'target' or "
                          f"'budget', got {form!r}.")


LOSS_FORMS = ('fbnet', 'target', 'budget')
LATENCY_OF = ('distribution', 'sample')


def check_loss_config(config, arch_steps: bool = True) -> None:
  """Clear errors for ``config.loss`` and the target it needs
  (``config.latency.target_ms``), before anything is built or trained. A
  weights-only run (``arch_steps`` False) never uses the target."""
  loss = config.loss
  if loss.form not in LOSS_FORMS:
    raise errors.InputError(
        f'config.loss.form: expected one of {LOSS_FORMS}, got '
        f'{loss.form!r}.')
  latency_of = loss.get('latency_of', 'distribution')
  if latency_of not in LATENCY_OF:
    raise errors.InputError(
        f'config.loss.latency_of: expected one of {LATENCY_OF}, '
        f'got {latency_of!r}.')
  target = config.latency.get('target_ms')
  usable = (isinstance(target, (int, float)) and not isinstance(target, bool)
            and math.isfinite(target) and target > 0)
  if arch_steps and loss.form != 'fbnet' and not usable:
    raise errors.InputError(
        f"config.latency.target_ms: the {loss.form!r} loss needs a target "
        f'latency in ms > 0, got {target!r}.')
  if target is not None and not usable:  # the derivation would aim at it
    raise errors.InputError(
        'config.latency.target_ms: expected a finite latency in ms > 0 (or '
        f'None), got {target!r}.')


def check_latency_range(min_latency_ms: float, config) -> None:
  """Refuses an FBNet-form loss whose log would see latencies <= 1 unit."""
  if config.form == 'fbnet' and min_latency_ms <= config.unit_ms:
    raise errors.InputError(
        f'config.loss.unit_ms: the fastest architecture of this space is '
        f'{min_latency_ms:.3g} ms, not above the unit {config.unit_ms} ms, so '
        'log(LAT) ** beta would be undefined; set config.loss.unit_ms below '
        f'{min_latency_ms:.3g} (latency is measured in those units) or use '
        "config.loss.form='target'.")


def derive(theta: jnp.ndarray, choice_mask: np.ndarray, rng: jax.Array,
           num_samples: int, fixed: Optional[np.ndarray] = None,
           space=None) -> tuple[np.ndarray, np.ndarray]:
  """Argmax architecture ``[U]`` and ``num_samples`` sampled ones ``[N, U]``.

  With ``space`` (a ``SearchSpace``), the argmax is the most probable
  *valid* architecture (``space.most_probable``; OFA's stages are prefixes
  of blocks) and samples are made valid (``space.make_valid``).
  """
  p = probabilities(theta, choice_mask, fixed)
  logits = jnp.log(jnp.maximum(p, 1e-30))
  samples = np.asarray(jax.random.categorical(
      rng, logits, axis=-1, shape=(num_samples,) + p.shape[:1]), np.int32)
  if space is None:
    return np.asarray(jnp.argmax(p, -1), np.int32), samples
  log_p = np.where(np.asarray(p) > 0, np.asarray(logits), -np.inf)
  return space.most_probable(log_p), space.make_valid(samples)


def derive_for_target(log_probs: np.ndarray, arch_ms: Callable[[np.ndarray],
                                                               np.ndarray],
                      target_ms: float, tolerance: float = 0.02,
                      max_changes: int = 64, space=None
                      ) -> tuple[np.ndarray, list[dict]]:
  """An architecture whose latency is within ``tolerance`` (relative) of
  ``target_ms``, by greedy repair of the argmax: an approximation of the
  most probable one in that band, which may stop outside the band (the
  caller checks).

  The argmax of a distribution whose *expected* latency meets the target
  need not meet it itself (the distribution is not fully committed). Starting
  from the argmax, each step changes the one unit whose change moves the
  latency towards the target at the smallest cost in log-probability per
  millisecond moved (never ending further from it), until the latency is
  inside the band (or no change helps). Every single change that would land
  inside the band from an architecture on the way is scored too, and the
  most probable in-band architecture met is returned: the repair's end, or
  one change off its path. Works with any latency source (table or predictor): candidates are
  scored in one batched ``arch_ms`` call per step.

  Args:
    log_probs: ``[U, C]`` log-probabilities; disallowed choices ``-inf``.
    arch_ms: discrete architectures ``[N, U]`` -> milliseconds ``[N]``.
    target_ms: the target.
    tolerance: relative half-width of the accepted band.
    max_changes: at most this many unit changes.
    space: a ``SearchSpace`` with rules beyond per-unit choices (OFA): the
      start is its most probable valid architecture and only valid changes
      are considered.

  Returns:
    (architecture ``[U]``, the changes made: ``{'unit', 'from', 'to',
    'latency_ms', 'log_prob_cost'}`` each).
  """
  log_probs = np.asarray(log_probs, np.float64)
  arch = (np.argmax(log_probs, -1).astype(np.int32) if space is None
          else space.most_probable(log_probs))
  units, choices = log_probs.shape
  lat = float(arch_ms(arch[None])[0])
  changes = []
  allowed = np.isfinite(log_probs)
  band = tolerance * target_ms
  # The most probable in-band architecture met on the way, as (log-prob
  # cost from the start, architecture, changes): one change from any
  # architecture the repair visits.
  found = (0.0, arch.copy(), []) if abs(lat - target_ms) <= band else None
  spent = 0.0  # log-prob cost of the changes so far
  for _ in range(max_changes):
    error = lat - target_ms
    if abs(error) <= band:
      break
    cand = np.repeat(arch[None], units * choices, 0)
    u_idx, c_idx = np.divmod(np.arange(units * choices), choices)
    cand[np.arange(units * choices), u_idx] = c_idx
    valid = allowed[u_idx, c_idx] & (c_idx != arch[u_idx])
    if space is not None:
      valid &= space.valid_rows(cand)
    cand = np.where(valid[:, None], cand, arch[None])  # scored, never taken
    cand_lat = np.asarray(arch_ms(cand), np.float64)
    cost = log_probs[u_idx, arch[u_idx]] - log_probs[u_idx, c_idx]
    in_band = valid & (np.abs(cand_lat - target_ms) <= band)
    if in_band.any():
      i = int(np.argmin(np.where(in_band, cost, np.inf)))
      if found is None or spent + cost[i] < found[0]:
        found = (spent + float(cost[i]), cand[i].copy(), changes + [
            _change(arch, int(u_idx[i]), int(c_idx[i]), cand_lat[i],
                    cost[i])])
    gain = np.where(error > 0, lat - cand_lat, cand_lat - lat)  # ms towards T
    # Ending further from the target than now, past it, is no gain.
    useful = valid & (gain > 0) & (np.abs(cand_lat - target_ms) <= abs(error))
    if not useful.any():
      break
    score = np.where(useful, cost / np.maximum(gain, 1e-9), np.inf)
    best = int(np.argmin(score))
    u, c = int(u_idx[best]), int(c_idx[best])
    changes.append(_change(arch, u, c, cand_lat[best], cost[best]))
    spent += float(cost[best])
    arch[u] = c
    lat = float(cand_lat[best])
  if found is not None and (abs(lat - target_ms) > band or found[0] < spent):
    return found[1], found[2]
  return arch, changes


def _change(arch, unit: int, choice: int, latency_ms, cost) -> dict:
  return {'unit': unit, 'from': int(arch[unit]), 'to': choice,
          'latency_ms': float(latency_ms), 'log_prob_cost': float(cost)}
