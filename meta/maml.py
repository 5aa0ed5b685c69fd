"""MAML, Meta-SGD and HELP's modulated MAML as pure functions.

Meta-parameters are one pytree::

  {'net': LatencyNet params, 'inner_lr': same structure (per-parameter step
   sizes, Meta-SGD), 'modulator': Modulator params (HELP),
   'ridge_log_precision': [features] prior of the closed-form head}

The inner loop (:func:`adapt`) is a function of those parameters: a few
gradient steps on the support set, unrolled with ``jax.lax.scan``. The outer
loss (:func:`episode_loss`) adapts every task of an episode with
``jax.vmap`` and scores the adapted parameters on the task's query set;
``jax.grad`` of it differentiates through the inner loop (second order), or
treats the inner gradients as constants (``first_order``). Optionally
(``head='ridge'``) the inner loop ends with a closed-form ridge regression of
the support residuals on the net's last features, with a meta-learned prior
precision per feature: a differentiable last-layer solver (R2-D2, ALPaCA)
that turns 20 measurements into a well-posed linear correction.

Labels: latencies are mapped to ``t = log(ms)`` or ``t = ms`` (``target``)
and standardised with the *support set's* weighted mean and std, so no
statistic of the device's other rows reaches the predictor (HELP used the
whole pool's). The hardware embedding is the reference architectures'
standardised latencies followed by their presence mask.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from fbnet_jax import errors


def _tree_norm(tree) -> jax.Array:
  """Global L2 norm whose gradient stays finite at (or underflowing to) a
  zero tree: sqrt's derivative at 0 is infinite, which second-order MAML
  through the inner clipping would turn into NaN (the value is the same)."""
  sq = sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)

PyTree = Any


class NetFns(NamedTuple):
  """The predictor network as two pure functions.

  ``embed(params, probs, hardware) -> x`` and ``head(params, x, probs,
  modulation) -> (y_hat, features)``; the prediction is ``head(embed(...))``.
  """
  embed: Callable
  head: Callable

  def __call__(self, params, probs, hardware, modulation):
    return self.head(params, self.embed(params, probs, hardware), probs,
                     modulation)


ADAPT_CHOICES = ('all', 'head')
TARGET_CHOICES = ('linear', 'log')
HEAD_CHOICES = ('gradient', 'ridge')


@dataclasses.dataclass(frozen=True)
class InnerConfig:
  """Static settings of the inner loop."""
  num_steps: int = 2
  first_order: bool = False
  modulation: bool = True
  # 'all' (MAML) or 'head' (ANIL: the trunk is embedded once, only the head
  # layers fc3..fc5 move in the inner loop).
  adapt: str = 'all'
  target: str = 'linear'  # 'linear' or 'log' latency before standardising
  head: str = 'gradient'  # 'gradient' (MAML only) or 'ridge' (+ closed form)
  grad_clip: float = 0.0  # inner-loop gradient norm bound (0: none)

  def __post_init__(self):
    # Checked here, up front: the inner loop tests `head == 'ridge'`, so any
    # other value would silently give the gradient head.
    for field, allowed in (('adapt', ADAPT_CHOICES),
                           ('target', TARGET_CHOICES),
                           ('head', HEAD_CHOICES)):
      value = getattr(self, field)
      if value not in allowed:
        raise errors.InputError(
            f'config.meta.{field}: expected one of '
            f'{", ".join(repr(a) for a in allowed)}, got {value!r}.')


def to_target(ms: jnp.ndarray, target: str) -> jnp.ndarray:
  if target == 'log':
    return jnp.log(ms)
  if target == 'linear':
    return ms
  raise errors.InputError(
      f"config.meta.target: expected 'log' or 'linear', got {target!r}.")


def from_target(t: jnp.ndarray, target: str) -> jnp.ndarray:
  return jnp.exp(t) if target == 'log' else t


def support_stats(t: jnp.ndarray, weights: jnp.ndarray
                  ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Weighted mean and std of the support labels (std floored)."""
  w = weights / jnp.maximum(weights.sum(), 1e-9)
  mean = jnp.sum(w * t)
  std = jnp.sqrt(jnp.sum(w * (t - mean) ** 2))
  return mean, jnp.maximum(std, 1e-3 * jnp.abs(mean) + 1e-6)


def hardware_embedding(ref_t: jnp.ndarray, ref_mask: jnp.ndarray,
                       mean: jnp.ndarray, std: jnp.ndarray) -> jnp.ndarray:
  """``[2R]``: standardised reference latencies (0 where missing) + mask."""
  z = jnp.where(ref_mask > 0, (ref_t - mean) / std, 0.)
  return jnp.concatenate([z, ref_mask.astype(z.dtype)])


def adapt_mask(net_params: PyTree, adapt: str) -> PyTree:
  """1.0 for the parameters the inner loop moves, 0.0 for the others."""
  if adapt not in ('all', 'head'):
    raise errors.InputError(
        f"config.meta.adapt: expected 'all' or 'head', got {adapt!r}.")
  def leaf(path, x):
    keys = [getattr(k, 'key', str(k)) for k in path]
    moved = adapt == 'all' or any(k in ('fc3', 'fc4', 'fc5') for k in keys)
    return jnp.full((), 1.0 if moved else 0.0, jnp.result_type(x))
  return jax.tree_util.tree_map_with_path(leaf, net_params)


def weighted_mse(pred, y, weights):
  return jnp.sum(weights * (pred - y) ** 2) / jnp.maximum(weights.sum(), 1e-9)


# The ridge prior's log precision is clipped to this range in the solve
# (float32 stability); outside it the prior would not be learned (zero
# gradient), so config.meta.ridge_precision is bounded to it.
RIDGE_LOG_PRECISION_RANGE = (-7.0, 7.0)


def ridge_solve(features: jnp.ndarray, residual: jnp.ndarray,
                weights: jnp.ndarray, log_precision: jnp.ndarray) -> jnp.ndarray:
  """Closed-form weighted ridge regression (differentiable).

  ``argmin_w sum_i weights_i (residual_i - features_i . w)^2 +
  sum_j exp(log_precision_j) w_j^2``: a Gaussian prior on the head with a
  meta-learned precision per feature (ARD), as in R2-D2 / ALPaCA. Solved in
  its dual (kernel) form, ``w = P^-1 F'^T (F' P^-1 F'^T + I)^-1 r'`` with
  ``F' = sqrt(weights) F``: an S x S system whose eigenvalues are >= 1, so
  the Cholesky solve stays stable in float32 however small the precision.
  """
  root = jnp.sqrt(weights)
  f = features * root[:, None]
  inv_precision = jnp.exp(-jnp.clip(log_precision,
                                    *RIDGE_LOG_PRECISION_RANGE))
  kernel = (f * inv_precision) @ f.T + jnp.eye(f.shape[0], dtype=f.dtype)
  alpha = jax.scipy.linalg.solve(kernel, residual * root, assume_a='pos')
  return inv_precision * (f.T @ alpha)


def predict(net: NetFns, adapted: dict, probs: jnp.ndarray,
            hardware: jnp.ndarray) -> jnp.ndarray:
  """Standardised prediction of adapted parameters (net + ridge head)."""
  y, features = net(adapted['net'], probs, hardware, adapted['modulation'])
  if adapted['ridge'] is not None:
    y = y + features @ adapted['ridge']
  return y


def adapt(meta_params: PyTree, net: NetFns, apply_modulator: Callable,
          cfg: InnerConfig, probs: jnp.ndarray, y: jnp.ndarray,
          weights: jnp.ndarray, hardware: jnp.ndarray,
          rng: Optional[jax.Array] = None) -> tuple[dict, jnp.ndarray]:
  """Inner loop on one task's support set.

  Args:
    meta_params: ``{'net', 'inner_lr', 'modulator', 'ridge_log_precision'}``.
    net: the predictor's embed and head functions.
    apply_modulator: ``(modulator_params, hardware, rng) -> (modulation, kl)``.
    cfg: static inner-loop settings.
    probs: ``[S, U, C]`` support architectures.
    y: ``[S]`` standardised support labels.
    weights: ``[S]`` 1 for a measured row, 0 for padding (missing reference).
    hardware: ``[2R]`` hardware embedding.
    rng: key for a variational modulation sample (None: its mean).

  Returns:
    (adapted ``{'net', 'modulation', 'ridge'}``, KL term).
  """
  modulation, kl = None, jnp.zeros(())
  if cfg.modulation:
    modulation, kl = apply_modulator(meta_params['modulator'], hardware, rng)
  mask = adapt_mask(meta_params['net'], cfg.adapt)
  if cfg.adapt == 'head':  # the trunk does not move: embed once
    x = net.embed(meta_params['net'], probs, hardware)
    forward = lambda p: net.head(p, x, probs, modulation)
  else:
    forward = lambda p: net(p, probs, hardware, modulation)

  def support_loss(net_params):
    return weighted_mse(forward(net_params)[0], y, weights)

  def step(net_params, _):
    grads = jax.grad(support_loss)(net_params)
    if cfg.first_order:
      grads = jax.lax.stop_gradient(grads)
    if cfg.grad_clip:  # keeps a learned step size from diverging on a task
      norm = _tree_norm(grads)
      grads = jax.tree.map(
          lambda g: g * jnp.minimum(1.0, cfg.grad_clip / (norm + 1e-12)), grads)
    net_params = jax.tree.map(lambda p, g, lr, m: p - lr * m * g, net_params,
                              grads, meta_params['inner_lr'], mask)
    return net_params, None

  adapted, _ = jax.lax.scan(step, meta_params['net'], None,
                            length=cfg.num_steps)
  ridge = None
  if cfg.head == 'ridge':
    pred, features = forward(adapted)
    ridge = ridge_solve(features, y - pred, weights,
                        meta_params['ridge_log_precision'])
  return {'net': adapted, 'modulation': modulation, 'ridge': ridge}, kl


def task_loss(meta_params, net: NetFns, apply_modulator, cfg: InnerConfig,
              task: dict, rng: jax.Array, kl_weight: float):
  """Query MSE (+ KL) of one task after adaptation on its support."""
  adapted, kl = adapt(meta_params, net, apply_modulator, cfg,
                      task['support_probs'], task['support_y'],
                      task['support_w'], task['hardware'], rng)
  pred = predict(net, adapted, task['query_probs'], task['hardware'])
  mse = jnp.mean((pred - task['query_y']) ** 2)
  return mse + kl_weight * kl, (mse, kl)


def episode_loss(meta_params, net: NetFns, apply_modulator, cfg: InnerConfig,
                 episode: dict, rng: jax.Array, kl_weight: float):
  """Mean over the episode's tasks (batched with vmap) of :func:`task_loss`.

  The KL term is averaged over all tasks (HELP's code kept only the last
  task's).
  """
  rngs = jax.random.split(rng, episode['query_y'].shape[0])
  losses, (mse, kl) = jax.vmap(
      lambda t, r: task_loss(meta_params, net, apply_modulator, cfg, t,
                             r, kl_weight))(episode, rngs)
  return jnp.mean(losses), {'query_mse': jnp.mean(mse), 'kl': jnp.mean(kl)}
