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
- ``budget``: ``CE + lam * relu(log(LAT / T))``: only above the target.

``LAT`` is each example's latency under its sampled (soft or straight-
through hard) architecture, from any :class:`fbnet_jax.latency.LatencyModel`.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

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
  """``CE * alpha * log(LAT / unit) ** beta`` per example (FBNet eq. 2)."""
  log_lat = jnp.log(jnp.maximum(latency / unit_ms, 1.0 + 1e-6))
  return ce * alpha * log_lat ** beta


def target_penalty(latency: jnp.ndarray, target_ms: jnp.ndarray,
                   margin: float, two_sided: bool) -> jnp.ndarray:
  """``relu(|log(LAT / T)| - margin)`` (or one-sided: only above T)."""
  ratio = jnp.log(latency / target_ms)
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
  raise ValueError(f"config.loss.form: expected 'fbnet', 'target' or "
                   f"'budget', got {form!r}.")


def check_latency_range(min_latency_ms: float, config) -> None:
  """Refuses an FBNet-form loss whose log would see latencies <= 1 unit."""
  if config.form == 'fbnet' and min_latency_ms <= config.unit_ms:
    raise ValueError(
        f'config.loss.unit_ms: the fastest architecture of this space is '
        f'{min_latency_ms:.3g} ms, not above the unit {config.unit_ms} ms, so '
        'log(LAT) ** beta would be undefined; set config.loss.unit_ms below '
        f'{min_latency_ms:.3g} (latency is measured in those units) or use '
        "config.loss.form='target'.")


def derive(theta: jnp.ndarray, choice_mask: np.ndarray, rng: jax.Array,
           num_samples: int, fixed: Optional[np.ndarray] = None
           ) -> tuple[np.ndarray, np.ndarray]:
  """Argmax architecture ``[U]`` and ``num_samples`` sampled ones ``[N, U]``."""
  p = probabilities(theta, choice_mask, fixed)
  argmax = np.asarray(jnp.argmax(p, -1), np.int32)
  logits = jnp.log(jnp.maximum(p, 1e-30))
  samples = jax.random.categorical(rng, logits, axis=-1,
                                   shape=(num_samples,) + p.shape[:1])
  return argmax, np.asarray(samples, np.int32)
