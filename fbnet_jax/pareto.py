"""Pareto fronts, hypervolume and the accuracy predictor of the evolution.

The evolutionary search (:mod:`fbnet_jax.nsga`) minimises two objectives,
``latency_ms`` and ``-accuracy``. This module holds what it needs besides
the search loop:

- :func:`non_dominated`: the non-dominated rows of an objective matrix
  (pymoo's non-dominated sorting).
- :class:`HypervolumeIndicator`: pymoo's exact hypervolume (``HV``) on
  objectives normalised by a fixed reference point, so that values of
  different runs and budgets compare.
- :class:`AccuracyPredictor`: a regressor on one-hot architecture features
  (ridge with its penalty chosen by leave-one-out cross-validation, or
  gradient-boosted trees), refitted on every architecture fully evaluated
  so far (DyNAS-T's predictor-guided scheme).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from pymoo.indicators import hv as pymoo_hv
from pymoo.util.nds import non_dominated_sorting
from sklearn import ensemble
from sklearn import linear_model

from fbnet_jax import errors

PREDICTORS = ('ridge', 'gbrt')


def non_dominated(objectives) -> np.ndarray:
  """Indices of the non-dominated rows of ``objectives`` [N, M] (minimised).

  Duplicated points are all kept (none dominates another).
  """
  objectives = np.asarray(objectives, np.float64)
  if objectives.ndim != 2:
    raise ValueError(f'objectives: expected [N, M], got shape '
                     f'{objectives.shape}.')
  if not len(objectives):
    return np.zeros((0,), np.int64)
  front = non_dominated_sorting.NonDominatedSorting().do(
      objectives, only_non_dominated_front=True)
  return np.sort(np.asarray(front, np.int64))


class HypervolumeIndicator:
  """Hypervolume of (latency_ms, -accuracy) points, normalised to [0, 1].

  Latency is divided by ``ref_latency_ms``; accuracy stays in [0, 1]. The
  reference point is (1, 0) in normalised units, i.e. ``ref_latency_ms``
  and accuracy 0, the ideal (0, -1): the value is the fraction of the box
  [0, ref_latency] x [0, 1] (latency x accuracy) that the points dominate.
  Points slower than the reference add nothing.
  """

  def __init__(self, ref_latency_ms: float):
    if not np.isfinite(ref_latency_ms) or ref_latency_ms <= 0:
      raise ValueError(f'ref_latency_ms: expected a positive latency, got '
                       f'{ref_latency_ms}.')
    self.ref_latency_ms = float(ref_latency_ms)
    self._hv = pymoo_hv.HV(ref_point=np.array([1.0, 0.0]))

  def normalise(self, latency_ms, accuracy) -> np.ndarray:
    """[N, 2] normalised objectives (latency / ref, -accuracy)."""
    return np.stack([np.asarray(latency_ms, np.float64) / self.ref_latency_ms,
                     -np.asarray(accuracy, np.float64)], axis=-1)

  def __call__(self, latency_ms, accuracy) -> float:
    points = self.normalise(np.atleast_1d(latency_ms), np.atleast_1d(accuracy))
    if not len(points):
      return 0.0
    return float(self._hv(points))


class AccuracyPredictor:
  """Accuracy from a one-hot architecture encoding, fitted on evaluations.

  Args:
    allowed: bool [units, max_choices]: the searched choices; only their
      columns are features (the others are constant zero).
    kind: 'ridge' (an additive model, the penalty chosen by efficient
      leave-one-out cross-validation over 13 values; well-behaved from a
      dozen samples) or 'gbrt' (gradient-boosted trees; captures
      interactions, wants more samples).
    seed: seed of the trees.
    extra: optional ``archs [N, U] -> float [N, P]`` features appended to
      the one-hot ones (``SearchSpace.path_features``).
  """

  def __init__(self, allowed: np.ndarray, kind: str = 'ridge', seed: int = 0,
               extra: Optional[Callable[[np.ndarray], np.ndarray]] = None):
    if kind not in PREDICTORS:
      raise errors.InputError(f'config.evolve.predictor: expected one of '
                              f'{PREDICTORS}, got {kind!r}.')
    self.allowed = np.asarray(allowed, bool)
    self.kind = kind
    self.seed = seed
    self.extra = extra
    self._model = None
    self._mean = 0.0
    self._std = 1.0

  def features(self, archs) -> np.ndarray:
    archs = np.asarray(archs, np.int64)
    one_hot = np.eye(self.allowed.shape[1], dtype=np.float32)[archs]
    x = one_hot[..., self.allowed]
    if self.extra is None:
      return x
    return np.concatenate([x, self.extra(archs)], axis=-1)

  def fit(self, archs, accuracy) -> 'AccuracyPredictor':
    x = self.features(archs)
    y = np.asarray(accuracy, np.float64)
    if len(x) != len(y) or len(y) < 2:
      raise ValueError(f'AccuracyPredictor.fit: needs at least 2 '
                       f'(architecture, accuracy) pairs, got {len(x)} '
                       f'architectures and {len(y)} accuracies.')
    self._mean, self._std = float(y.mean()), float(y.std()) or 1.0
    target = (y - self._mean) / self._std
    if self.kind == 'ridge':
      self._model = linear_model.RidgeCV(alphas=np.logspace(-3, 3, 13))
    else:
      self._model = ensemble.GradientBoostingRegressor(
          n_estimators=200, max_depth=2, learning_rate=0.05, subsample=0.8,
          random_state=self.seed)
    self._model.fit(x, target)
    return self

  def predict(self, archs) -> np.ndarray:
    if self._model is None:
      raise RuntimeError('AccuracyPredictor.predict before fit.')
    return self._mean + self._std * self._model.predict(self.features(archs))


def evaluations_to_reach(curve: list, value: float) -> Optional[int]:
  """The first number of evaluations at which ``curve`` [(n, hv), ...]
  reaches ``value`` (None if it never does)."""
  for n, hv in curve:
    if hv >= value - 1e-12:
      return int(n)
  return None


def hypervolume_curve(archs, accuracy, latency_fn,
                      indicator: HypervolumeIndicator) -> list:
  """[[n, hypervolume of the first n evaluations], ...] for n = 1..N."""
  lat = np.asarray(latency_fn(np.stack(archs)), np.float64)
  acc = np.asarray(accuracy, np.float64)
  return [[n, indicator(lat[:n], acc[:n])] for n in range(1, len(acc) + 1)]
