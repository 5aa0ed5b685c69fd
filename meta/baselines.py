"""Baselines judged by the same protocol as the meta-learned predictor.

- :class:`FlopsProxy`: latency assumed proportional to a power of MACs
  (fitted on the support set in log space, so that it predicts milliseconds;
  its ranking is the FLOPs ranking).
- :class:`LinearMix`: the simple strong baseline. One ridge-regression model
  per meta-train device on one-hot architecture features (fitted on that
  device's non-query rows), combined for the target device by a log-linear
  fit on its support set: ``log y = a + sum_d b_d log f_d(x)``.
- :class:`BayesLinear`: the same per-device linear models as a Gaussian
  prior over the target device's costs (hierarchical Bayesian linear
  regression), updated by its support set: it can leave the span of the
  meta-train devices where the measurements say so.
- :class:`OpCounts`: no meta-training at all. Latency linear in how many
  units hold each choice (for NAS-Bench-201, the counts of its 5 operations
  over the 6 edges), fitted on the support set alone: what 20 measurements
  give where a device's latency does not depend on where an op sits.

The meta-learned predictors (MAML, Meta-SGD, HELP, no adaptation) live in
:mod:`meta.predictor` and :mod:`meta.maml` and implement the same
:class:`meta.tasks.Method` protocol.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from fbnet_jax import spaces as spaces_lib
from meta import latency_data
from meta import tasks as tasks_lib


def _design(space: spaces_lib.SearchSpace, archs: np.ndarray) -> np.ndarray:
  onehot = space.one_hot(archs).reshape(len(archs), -1)
  onehot = onehot[:, space.choice_mask.reshape(-1)]
  return np.concatenate([onehot, np.ones((len(archs), 1), np.float32)], 1)


def _ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
  reg = l2 * np.eye(x.shape[1])
  reg[-1, -1] = 0.  # no penalty on the intercept
  return np.linalg.solve(x.T @ x + reg, x.T @ y)


def _device_models(space: spaces_lib.SearchSpace, devices: Sequence[str],
                   target, l2: float = 1e-3) -> np.ndarray:
  """``[D, features]``: a ridge model of ``target(latency_ms)`` on one-hot
  features per bundled device, fitted on its non-query rows only."""
  coefs = []
  for name in devices:
    dev = latency_data.bundled_device(space.name, name)
    rows = ~dev.is_query  # the query rows are never used for fitting
    coefs.append(_ridge(_design(space, dev.archs[rows]),
                        target(dev.latency_ms[rows]), l2))
  return np.stack(coefs)


def _best_on(valid_tasks, models):
  """The model of ``models`` with the best mean Spearman on
  ``valid_tasks`` (the first of equals), with ``selection``: its
  ``settings`` and that score, which ``meta_test`` records."""
  best, best_score = None, -2.0
  for model in models:
    score = float(np.mean(tasks_lib.task_scores(model, valid_tasks)))
    # A NaN score (constant predictions) never wins, not even as the first.
    if best is None or score > best_score or (
        np.isnan(best_score) and not np.isnan(score)):
      best, best_score = model, score
  best.selection = dict(best.settings, valid_spearman=best_score)
  return best


def _per_mean(y: np.ndarray) -> np.ndarray:
  """Latencies in units of their mean (a device's scale taken out)."""
  return y / y.mean()


class FlopsProxy:
  """``log ms = a + b log MACs`` fitted on the support set.

  Its ranking is the MACs' ranking when the fitted slope ``b`` is positive
  (on all 64 bundled devices, 5 support draws each, it is) and the reverse
  when it is negative: a support set on which latency falls with MACs
  ranks the query that way.
  """

  name = 'flops'

  def adapt(self, task: tasks_lib.FewShotTask):
    space = spaces_lib.get_space(task.space)
    def log_flops(archs):
      return np.log([space.flops(a) for a in archs])
    x = np.stack([log_flops(task.support_archs),
                  np.ones(len(task.support_ms))], 1)
    coef = np.linalg.lstsq(x, np.log(task.support_ms), rcond=None)[0]
    return lambda archs: np.exp(coef[0] * log_flops(archs) + coef[1])


class OpCounts:
  """``ms = a + sum_k b_k n_k(x)``, fitted on the support set by least
  squares (a tiny ridge penalty: the counts sum to the number of units).

  ``n_k(x)``: how many units of ``x`` hold a choice named ``k`` (choices are
  grouped by name, so FBNet's 22 layers give 9 counts, NAS-Bench-201's 6
  edges 5, OFA's blocks 10 kernel/expansion/skip counts and its 25
  resolutions one feature each). It ignores where a choice sits; on a
  device whose latency follows the op counts, it needs few measurements.

  Args:
    space: search-space name.
    log_target: fit ``log ms`` instead of ms.
  """

  name = 'op_counts'

  def __init__(self, space: str, log_target: bool = False):
    self.space = spaces_lib.get_space(space)
    self.log_target = log_target
    self.settings = dict(log_target=log_target)
    names = sorted({c for u in self.space.units for c in u.choices})
    group = np.zeros(self.space.choice_mask.shape + (len(names),), np.float32)
    for u, unit in enumerate(self.space.units):
      for c, choice in enumerate(unit.choices):
        group[u, c, names.index(choice)] = 1
    self.group = group  # [units, choices, names]

  @classmethod
  def selected(cls, space: str, valid_tasks) -> 'OpCounts':
    """ms or log ms, whichever ranks meta-valid tasks better."""
    return _best_on(valid_tasks, (cls(space, log_target)
                                  for log_target in (False, True)))

  def _design(self, archs: np.ndarray) -> np.ndarray:
    counts = np.einsum('nuc,uck->nk', self.space.one_hot(archs), self.group)
    return np.concatenate([counts, np.ones((len(archs), 1), np.float32)], 1)

  def adapt(self, task: tasks_lib.FewShotTask):
    y = np.log(task.support_ms) if self.log_target else task.support_ms
    coef = _ridge(self._design(task.support_archs), y, 1e-3)
    def predict(archs):
      pred = self._design(archs) @ coef
      return np.exp(pred) if self.log_target else pred
    return predict


class LinearMix:
  """Per-device linear models, mixed log-linearly on the target's support.

  Args:
    space: search-space name.
    train_devices: the devices with one linear model each (meta-train).
    l2: ridge penalty of the per-device models.
    mix_l2: ridge penalty of the log-linear mixing weights.
    log_target: fit the per-device models to log(ms) instead of ms.
  """

  name = 'linear_mix'

  def __init__(self, space: str, train_devices: Sequence[str],
               l2: float = 1e-3, mix_l2: float = 1e-3,
               log_target: bool = False):
    self.space = spaces_lib.get_space(space)
    self.mix_l2 = mix_l2
    self.log_target = log_target
    self.settings = dict(l2=l2, mix_l2=mix_l2, log_target=log_target)
    self.coefs = _device_models(  # [features, D]
        self.space, train_devices,
        np.log if log_target else (lambda y: y), l2).T

  @classmethod
  def selected(cls, space: str, valid_tasks) -> 'LinearMix':
    """The variant (target, mixing penalty) with the best mean Spearman on
    meta-valid tasks: the baseline gets the same model selection as the
    meta-learned predictor."""
    split = latency_data.SPLITS[space]
    return _best_on(valid_tasks, (
        cls(space, split.meta_train, mix_l2=mix_l2, log_target=log_target)
        for log_target in (False, True) for mix_l2 in (1e-3, 1e-1)))

  def _log_device_predictions(self, archs: np.ndarray) -> np.ndarray:
    pred = _design(self.space, archs) @ self.coefs
    return pred if self.log_target else np.log(np.maximum(pred, 1e-3))

  def adapt(self, task: tasks_lib.FewShotTask):
    def design(archs):
      f = self._log_device_predictions(archs)
      return np.concatenate([f, np.ones((len(f), 1))], 1)
    mix = _ridge(design(task.support_archs), np.log(task.support_ms),
                 self.mix_l2)
    return lambda archs: np.exp(design(archs) @ mix)


class BayesLinear:
  """Hierarchical Bayesian linear regression on one-hot features.

  Each meta-train device's ridge model (fitted on its non-query rows, its
  latencies divided by their mean) is one draw of a device's costs per
  (unit, choice). Their mean and covariance, plus an isotropic part, are a
  Gaussian prior over the target device's costs (in units of its mean
  support latency); its support set gives the posterior mean:
  ``w = mu + S X^T (X S X^T + noise I)^-1 (y - X mu)``, with ``S =
  prior_scale * cov + isotropic * I`` (the intercept's prior is broad).

  Args:
    space: search-space name.
    train_devices: the devices whose models make the prior (meta-train).
    prior_scale, isotropic, noise: the prior and noise variances (chosen on
      meta-valid tasks by :meth:`selected`).
    coefs: ``[D, features]``, the meta-train devices' models if already
      fitted (their latencies in units of their mean).
  """

  name = 'bayes_linear'
  GRID = dict(prior_scale=(1., 10., 100.),
              isotropic=(0., 1e-6, 1e-5, 1e-4, 1e-3),
              noise=(1e-3, 1e-2, 1e-1))

  def __init__(self, space: str, train_devices: Sequence[str],
               prior_scale: float = 10., isotropic: float = 1e-4,
               noise: float = 1e-2, coefs: Optional[np.ndarray] = None):
    self.space = spaces_lib.get_space(space)
    self.settings = dict(prior_scale=prior_scale, isotropic=isotropic,
                         noise=noise)
    self.noise = noise
    if coefs is None:  # [D, features]; selected() fits them once
      coefs = _device_models(self.space, train_devices, _per_mean)
    self.mean = coefs.mean(0)
    centred = coefs - self.mean
    self.cov = (prior_scale * centred.T @ centred / len(coefs) +
                isotropic * np.eye(coefs.shape[1]))
    self.cov[-1, -1] += 10.  # the intercept: a broad prior

  @classmethod
  def selected(cls, space: str, valid_tasks) -> 'BayesLinear':
    """The variances of :data:`GRID` with the best mean Spearman on
    meta-valid tasks (the model selection every method gets)."""
    split = latency_data.SPLITS[space]
    coefs = _device_models(spaces_lib.get_space(space), split.meta_train,
                           _per_mean)
    return _best_on(valid_tasks, (
        cls(space, split.meta_train, prior_scale, isotropic, noise, coefs)
        for prior_scale in cls.GRID['prior_scale']
        for isotropic in cls.GRID['isotropic']
        for noise in cls.GRID['noise']))

  def adapt(self, task: tasks_lib.FewShotTask):
    x = _design(self.space, task.support_archs)
    scale = float(np.mean(task.support_ms))
    y = task.support_ms / scale
    gram = x @ self.cov @ x.T + self.noise * np.eye(len(y))
    w = self.mean + self.cov @ x.T @ np.linalg.solve(gram, y - x @ self.mean)
    return lambda archs: scale * (_design(self.space, archs) @ w)
