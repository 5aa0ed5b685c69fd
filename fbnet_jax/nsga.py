"""NSGA-II / DyNAS-T guided and random search over a discrete space,
independent of supernets.

An architecture is a vector of integer decision variables, one per unit of a
search space, indexing that unit's allowed choices (:class:`Encoding`). Two
strategies spend the same budget of *full evaluations* (calls of an
``accuracy_fn``, e.g. a supernet's accuracy with inherited weights):

- guided (DyNAS-T, :func:`guided_search`): a few random architectures are
  fully evaluated; then, iteratively, an accuracy predictor
  (:class:`fbnet_jax.pareto.AccuracyPredictor`) is fitted on everything
  evaluated so far, pymoo's NSGA-II optimises (latency, -predicted
  accuracy) for many generations at no evaluation cost
  (:func:`nsga2_front`), and a few new architectures spread along its
  predicted front are fully evaluated (:func:`pick_spread`);
- random (:func:`random_search`): random architectures are fully
  evaluated.

Both record what they evaluated in a :class:`History`. The latency objective
is any ``latency_fn`` (archs -> ms); with latency in the loop the guided
search re-adapts it after each round
(:class:`fbnet_jax.latency_loop.LatencyInTheLoop`). The job that trains the
supernet and runs both is :mod:`fbnet_jax.evolve`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from absl import logging
import ml_collections
import numpy as np
from pymoo.algorithms.moo import nsga2
from pymoo.core import problem as pymoo_problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize
from pymoo.util.nds import non_dominated_sorting
import tqdm

from fbnet_jax import errors
from fbnet_jax import pareto
from fbnet_jax import spaces as spaces_lib

# The last words of two random streams' seeds (numpy drops a trailing 0,
# and seed + 1 would be the next seed's stream).
_FILL_STREAM, _FALLBACK_STREAM = 0xF11, 0xFA1

LatencyFn = Callable[[np.ndarray], np.ndarray]
AccuracyFn = Callable[[np.ndarray], float]


# --------------------------------------------------------------- encoding
@dataclasses.dataclass
class Encoding:
  """Decision variables of the evolution: one integer per unit, indexing
  that unit's allowed choices (a subset of the space's candidates)."""
  space: spaces_lib.SearchSpace
  allowed: np.ndarray  # bool [units, max_choices]

  def __post_init__(self):
    self.allowed = np.asarray(self.allowed, bool) & self.space.choice_mask
    empty = np.nonzero(~self.allowed.any(-1))[0]
    if empty.size:
      raise errors.InputError(
          f'config.search.ops: unit {int(empty[0])} '
          f'({self.space.units[int(empty[0])].name}) has no '
          'allowed choice.')
    self.values = [np.nonzero(row)[0] for row in self.allowed]
    self.upper = np.array([len(v) - 1 for v in self.values], np.int64)
    width = self.allowed.shape[1]
    # position[u, c]: variable value of choice c (-1 where not allowed).
    self.position = np.full(self.allowed.shape, -1, np.int64)
    for u, v in enumerate(self.values):
      self.position[u, v] = np.arange(len(v))
    self._table = np.zeros((len(self.values), width), np.int64)
    for u, v in enumerate(self.values):
      self._table[u, :len(v)] = v

  @property
  def num_vars(self) -> int:
    return len(self.values)

  def decode(self, x) -> np.ndarray:
    """Variables [N, U] (floats are rounded) -> valid architectures."""
    x = np.clip(np.rint(np.asarray(x, np.float64)), 0, self.upper).astype(
        np.int64)
    archs = self._table[np.arange(self.num_vars), x].astype(np.int32)
    # Space-specific validity (OFA: a stage is a prefix of blocks).
    return self.space._repair(archs, None)  # pylint: disable=protected-access

  def encode(self, archs) -> np.ndarray:
    archs = np.asarray(archs, np.int64)
    x = self.position[np.arange(self.num_vars), archs]
    if (x < 0).any():
      row = int(np.nonzero((x < 0).any(-1))[0][0])
      raise ValueError(f'architecture {self.space.names(archs[row])} uses a '
                       'choice outside config.search.ops.')
    return x

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` architectures of the allowed choices
    (:meth:`SearchSpace.sample_allowed`: the space's own sampler, each
    disallowed choice redrawn uniformly among the allowed ones)."""
    return self.space.sample_allowed(rng, n, self.allowed)


# ------------------------------------------------------------ strategies
@dataclasses.dataclass
class History:
  """Fully evaluated architectures in evaluation order.

  ``predicted_ms``: the guided search's latency of each architecture as its
  latency source gave it when the architecture was chosen, and with latency
  in the loop always before it was measured (a probed candidate: as
  predicted just before its probe). ``probed``: candidates whose latency
  was measured before they were evaluated (``latency_probes``).
  """
  archs: list = dataclasses.field(default_factory=list)
  accuracy: list = dataclasses.field(default_factory=list)
  iteration_ends: list = dataclasses.field(default_factory=list)
  predicted_ms: list = dataclasses.field(default_factory=list)
  probed: list = dataclasses.field(default_factory=list)

  def add(self, arch, accuracy: float, predicted_ms: Optional[float] = None
          ) -> None:
    self.archs.append(np.asarray(arch, np.int32))
    self.accuracy.append(float(accuracy))
    if predicted_ms is not None:
      self.predicted_ms.append(float(predicted_ms))

  def keys(self) -> set:
    return {a.tobytes() for a in self.archs}

  def measured_keys(self) -> set:
    """Evaluated and probed architectures (bytes keys)."""
    return self.keys() | {a.tobytes() for a in self.probed}

  def __len__(self):
    return len(self.archs)


def unique_random(encoding: Encoding, rng: np.random.Generator, n: int,
                  exclude: set = frozenset(), fewer_ok: bool = False
                  ) -> np.ndarray:
  """``n`` distinct random architectures not in ``exclude`` (bytes keys);
  with ``fewer_ok``, as many as 1000 draws of ``max(n, 16)`` find in a
  space of fewer, instead of an error."""
  seen, out = set(exclude), []
  if n <= 0:
    return np.zeros((0, encoding.num_vars), np.int32)
  for _ in range(1000):
    for arch in encoding.sample(rng, max(n, 16)):
      if arch.tobytes() not in seen and len(out) < n:
        seen.add(arch.tobytes())
        out.append(arch)
    if len(out) == n:
      return np.stack(out)
  if fewer_ok:
    return (np.stack(out) if out else
            np.zeros((0, encoding.num_vars), np.int32))
  raise errors.InputError(
      f'config.evolve.budget: the searched space holds fewer than {n} '
      'distinct architectures; expected a smaller budget.')


def random_search(accuracy_fn: AccuracyFn, encoding: Encoding, budget: int,
                  rng: np.random.Generator, initial=None,
                  progress: Optional[tqdm.tqdm] = None) -> History:
  """``budget`` distinct random architectures, fully evaluated (``initial``
  first)."""
  history = History()
  archs = [] if initial is None else list(initial)
  more = unique_random(encoding, rng, budget - len(archs),
                       {a.tobytes() for a in archs})
  for arch in archs + list(more):
    history.add(arch, accuracy_fn(arch))
    if progress is not None:
      progress.update(1)
  history.iteration_ends.append(len(history))
  return history


class _PredictedObjectives(pymoo_problem.Problem):
  """(latency_ms, -predicted accuracy) of integer-encoded architectures."""

  def __init__(self, encoding: Encoding, latency_fn: LatencyFn,
               predictor: pareto.AccuracyPredictor):
    super().__init__(n_var=encoding.num_vars, n_obj=2, xl=0.0,
                     xu=encoding.upper.astype(np.float64), vtype=int)
    self.encoding = encoding
    self.latency_fn = latency_fn
    self.predictor = predictor

  def _evaluate(self, x, out, *args, **kwargs):
    archs = self.encoding.decode(x)
    out['F'] = np.stack([np.asarray(self.latency_fn(archs), np.float64),
                         -self.predictor.predict(archs)], axis=1)


def start_population(encoding: Encoding, seeds_archs: np.ndarray,
                     pop_size: int, seed: int) -> np.ndarray:
  """NSGA-II's first population (encoded): the first ``pop_size`` of the
  distinct ``seeds_archs``, then random architectures not among them, of a
  stream of their own. (With ``default_rng(seed)``, guided seed 0's first
  fill was random seed 0's draws, i.e. its own initial architectures,
  which pymoo dropped as duplicates: 48 of 64 in the quick config.)"""
  start = encoding.encode(seeds_archs)[:pop_size]
  if len(start) < pop_size:
    fill = unique_random(
        encoding, np.random.default_rng([seed, _FILL_STREAM]),
        pop_size - len(start),
        {np.asarray(a, np.int32).tobytes() for a in seeds_archs[:pop_size]},
        fewer_ok=True)  # fewer only in a space of fewer architectures
    start = np.concatenate([start, encoding.encode(fill)])
  return start


def nsga2_front(encoding: Encoding, latency_fn: LatencyFn,
                predictor: pareto.AccuracyPredictor, cfg, seed: int,
                seeds_archs: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """NSGA-II (pymoo) on predicted objectives, started from the first
  ``cfg.pop_size`` distinct ``seeds_archs``, filled up with random ones.

  Integer variables: rounded SBX crossover and polynomial mutation (pymoo's
  recipe for integer problems), duplicates eliminated.

  Returns:
    The final population's architectures sorted by non-dominated rank,
    their predicted objectives (latency_ms, -accuracy), and the size of
    each rank.
  """
  start = start_population(encoding, seeds_archs, cfg.pop_size, seed)
  algorithm = nsga2.NSGA2(
      pop_size=cfg.pop_size, sampling=start.astype(np.float64),
      crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
      mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
      eliminate_duplicates=True)
  problem = _PredictedObjectives(encoding, latency_fn, predictor)
  result = minimize(problem, algorithm, ('n_gen', cfg.generations),
                    seed=seed, verbose=False)
  x, f = result.pop.get('X'), result.pop.get('F')
  fronts = non_dominated_sorting.NonDominatedSorting().do(f)
  order = np.concatenate([np.asarray(front) for front in fronts])
  return encoding.decode(x[order]), f[order], [len(fr) for fr in fronts]


def pick_spread(archs: np.ndarray, objectives: np.ndarray, sizes: list,
                k: int, exclude: set) -> np.ndarray:
  """Up to ``k`` new architectures, front by front, evenly spread along
  each front's latency; ``exclude`` (bytes keys) are skipped."""
  picked, seen, start = [], set(exclude), 0
  for size in sizes:
    rows = np.arange(start, start + size)
    start += size
    new = []
    for r in rows[np.argsort(objectives[rows, 0], kind='stable')]:
      key = archs[r].tobytes()
      if key not in seen:
        seen.add(key)
        new.append(r)
    need = k - len(picked)
    if len(new) > need:
      new = [new[i] for i in np.unique(np.rint(
          np.linspace(0, len(new) - 1, need)).astype(int))]
    picked.extend(new)
    if len(picked) >= k:
      break
  return archs[picked] if picked else np.zeros((0, archs.shape[1]), np.int32)


def guided_search(accuracy_fn: AccuracyFn, latency_fn: LatencyFn,
                  encoding: Encoding, cfg: ml_collections.ConfigDict,
                  seed: int, initial: np.ndarray,
                  progress: Optional[tqdm.tqdm] = None,
                  refine: Optional[Callable[[np.ndarray], LatencyFn]] = None
                  ) -> History:
  """DyNAS-T's loop: fit the predictor, NSGA-II on predictions, fully
  evaluate ``cfg.per_iteration`` candidates from the predicted front, until
  ``cfg.budget`` full evaluations.

  ``refine``: latency in the loop
  (:class:`fbnet_jax.latency_loop.LatencyInTheLoop`): after each
  round of full evaluations, ``refine(evaluated archs)`` measures them and
  returns the latency function re-adapted on the measurements. With
  ``cfg.latency_probes`` = P > 0, a round's candidates are also measured
  before they are evaluated, and NSGA-II runs again on the re-adapted
  predictor, P times (P x ``per_iteration`` more latency measurements a
  round, no more full evaluations).
  """
  # Random fill-ins when the predicted population runs out (not
  # default_rng(seed + 1): the next seed's initial architectures).
  rng = np.random.default_rng([seed, _FALLBACK_STREAM])
  history = History()
  # A probed candidate's prediction from before it was measured: the
  # re-adapted latency has seen its measurement, so its prediction at
  # evaluation would be in-sample.
  before_probe = {}

  def evaluate(archs):
    for arch, ms in zip(archs, np.atleast_1d(latency_fn(archs))):
      history.add(arch, accuracy_fn(arch),
                  before_probe.get(np.asarray(arch, np.int32).tobytes(), ms))
      if progress is not None:
        progress.update(1)
    history.iteration_ends.append(len(history))

  def measured():
    keys = history.keys()
    return np.stack(history.archs +
                    [a for a in history.probed if a.tobytes() not in keys])

  def propose(latency_fn, predictor, k, iteration):
    evaluated = np.stack(history.archs)
    # NSGA-II starts from the evaluated architectures, best ranks first.
    fronts = non_dominated_sorting.NonDominatedSorting().do(np.stack(
        [latency_fn(evaluated), -np.asarray(history.accuracy)], axis=1))
    archs, objectives, sizes = nsga2_front(
        encoding, latency_fn, predictor, cfg, seed * 1000 + iteration,
        evaluated[np.concatenate(fronts)])
    return pick_spread(archs, objectives, sizes, k, history.keys())

  evaluate(initial)
  iteration = 0
  while len(history) < cfg.budget:
    if refine is not None:
      latency_fn = refine(measured())
    predictor = pareto.AccuracyPredictor(
        encoding.allowed, cfg.predictor, seed=seed,
        extra=(encoding.space.path_features if cfg.get('path_features')
               else None)).fit(np.stack(history.archs), history.accuracy)
    k = min(cfg.per_iteration, cfg.budget - len(history))
    new = propose(latency_fn, predictor, k, iteration)
    for _ in range(cfg.get('latency_probes', 0) if refine is not None else 0):
      known = history.measured_keys()
      fresh = [a for a in new if a.tobytes() not in known]
      for a, ms in zip(fresh, np.atleast_1d(latency_fn(np.stack(fresh)))
                       if fresh else ()):
        before_probe[a.tobytes()] = float(ms)
      history.probed.extend(fresh)
      latency_fn = refine(measured())
      new = propose(latency_fn, predictor, k, iteration)
    if len(new) < k:  # the predicted population ran out of new architectures
      new = np.concatenate([new, unique_random(
          encoding, rng, k - len(new),
          history.keys() | {a.tobytes() for a in new})])
    evaluate(new)
    iteration += 1
    logging.info('guided seed %d iteration %d: %d evaluations, best '
                 'accuracy %.4f', seed, iteration, len(history),
                 max(history.accuracy))
  return history
