"""Multi-objective evolutionary search on a trained supernet (DyNAS-T style).

``run(config, workdir)`` trains (or resumes) a weight-sharing supernet under
a uniform architecture distribution, then searches the space for the trade-off
between latency and accuracy with two strategies at the same budget of
*full evaluations* (the supernet's accuracy for one architecture, inherited
weights, BN statistics recalibrated for it):

- guided (DyNAS-T): a few random architectures are fully evaluated; then,
  iteratively, an accuracy predictor is fitted on everything evaluated so
  far, pymoo's NSGA-II optimises (latency, -predicted accuracy) for many
  generations at no evaluation cost, and a few new architectures spread
  along its predicted front are fully evaluated;
- random: random architectures are fully evaluated.

Fronts are computed from fully evaluated architectures only (never from
predictions); the hypervolume against the number of evaluations compares
the two. Latency comes from the config's latency source (lookup table or
adapted predictor); the front is re-scored with the exact lookup table when
the device has one, and, for a device file of this machine, measured here
with the harness (``config.evolve.measure_front``, :class:`FrontMeasurement`).

Honest evaluation: the supernet trains its weights on the 'weights' split
(80% of the training data) and recalibrates BN on it. With
``config.search.warmup_epochs == config.epochs`` (the evolve configs) the
'arch' split (the other 20%) is never trained on; full evaluations score
architectures on it (the search's validation set). The held-out eval split
is used only to report the test accuracy of the final front.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional

from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from pymoo.algorithms.moo import nsga2
from pymoo.core import problem as pymoo_problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize
from pymoo.util.nds import non_dominated_sorting
import tqdm

from fbnet_jax import closed_loop
from fbnet_jax import data as data_lib
from fbnet_jax import evolve_report as report
from fbnet_jax import latency as latency_lib
from fbnet_jax import pareto
from fbnet_jax import search as search_lib
from fbnet_jax import spaces as spaces_lib

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
      raise ValueError(f'config.search.ops: unit {int(empty[0])} '
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
    """``n`` architectures, each allowed choice uniform per unit."""
    x = np.floor(rng.random((n, self.num_vars)) * (self.upper + 1))
    return self.decode(x)


def allowed_choices(space: spaces_lib.SearchSpace, mask: np.ndarray,
                    fixed: Optional[np.ndarray] = None) -> np.ndarray:
  """The searcher's choice mask, with fixed units (OFA's resolution) pinned
  to their one choice."""
  allowed = np.asarray(mask, bool) & space.choice_mask
  if fixed is not None:
    rows = fixed.sum(-1) > 0
    allowed[rows] = fixed[rows] > 0
  return allowed


# ------------------------------------------------------------ strategies
@dataclasses.dataclass
class History:
  """Fully evaluated architectures in evaluation order.

  ``predicted_ms``: the guided search's latency of each architecture as its
  latency source gave it when the architecture was chosen (with latency in
  the loop: before it was measured). ``probed``: candidates whose latency
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
                  exclude: set = frozenset()) -> np.ndarray:
  """``n`` distinct random architectures not in ``exclude`` (bytes keys)."""
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
  raise ValueError(f'the searched space holds fewer than {n} distinct '
                   'architectures; lower config.evolve.budget.')


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
  rng = np.random.default_rng(seed)
  start = encoding.encode(seeds_archs)[:cfg.pop_size]
  if len(start) < cfg.pop_size:
    fill = encoding.encode(encoding.sample(rng, cfg.pop_size - len(start)))
    start = np.concatenate([start, fill])
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

  ``refine``: latency in the loop (:class:`LatencyInTheLoop`): after each
  round of full evaluations, ``refine(evaluated archs)`` measures them and
  returns the latency function re-adapted on the measurements. With
  ``cfg.latency_probes`` = P > 0, a round's candidates are also measured
  before they are evaluated, and NSGA-II runs again on the re-adapted
  predictor, P times (P x ``per_iteration`` more latency measurements a
  round, no more full evaluations).
  """
  rng = np.random.default_rng(seed + 1)
  history = History()

  def evaluate(archs):
    for arch, ms in zip(archs, np.atleast_1d(latency_fn(archs))):
      history.add(arch, accuracy_fn(arch), ms)
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
      known = {a.tobytes() for a in history.probed}
      history.probed.extend(a for a in new if a.tobytes() not in known)
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


class LatencyInTheLoop:
  """DyNAS-T measures the latency of every fully evaluated architecture,
  not only its accuracy; here the measurements also re-adapt the
  meta-learned predictor, so that NSGA-II's latency objective is fitted
  where the search is looking (``config.evolve.measure_latency``).

  ``measured``: the device's latencies. With ``config.latency.device_file``
  a device file of this machine, they are measured here with the harness
  (:class:`closed_loop.MeasuredHere`: each round's new architectures in
  one session beside the reference architectures, on the device file's
  scale, cached in ``cache_path``); for a bundled device its lookup table
  (FBNet) or measured cells (NAS-Bench-201) stand in for measuring on the
  device. Calling the loop with the architectures evaluated so far
  measures them and returns the latency function of the predictor
  re-adapted on its support plus these (one compiled adaptation: the
  support is padded to a fixed size).
  """

  def __init__(self, config: ml_collections.ConfigDict,
               model: latency_lib.LatencyModel, cache_path: str = '',
               measure_fn=None):
    lat = config.latency
    if lat.source != 'predictor' or lat.get('adapted_dir'):
      raise ValueError(
          'config.evolve.measure_latency: expected '
          "config.latency.source='predictor' adapted here (not adapted_dir), "
          f'got source={lat.source!r}; a lookup table needs no refinement.')
    if lat.get('device_file'):
      if config.space not in ('fbnet', 'ofa'):
        raise ValueError(
            'config.evolve.measure_latency: the harness builds fbnet and ofa '
            f'networks, not {config.space!r}; expected a bundled device '
            '(its exact table stands in for the device).')
      from meta import latency_data  # pylint: disable=g-import-not-at-top
      self.measured = closed_loop.MeasuredHere(
          config, latency_data.load_device_file(lat.device_file),
          lat.device_file, cache_path, measure_fn)
    else:
      self.measured = latency_lib.exact_table(config)
    if self.measured is None:
      raise ValueError(
          'config.evolve.measure_latency: no exact latencies of '
          f'{lat.device!r} in space {config.space!r} to measure with '
          '(FBNet CIFAR lookup tables or NAS-Bench-201 only; or a device '
          'file of this machine in config.latency.device_file, measured '
          'here with the harness).')
    self.support = latency_lib.support_for(config)
    self.model = model
    e = config.evolve
    # Support rows to pad to: every evaluation and probe can add one.
    self.size = len(self.support.archs) + e.budget * (
        1 + e.get('latency_probes', 0))

  @property
  def measures_here(self) -> bool:
    """Whether measuring costs a harness session (not a table lookup)."""
    return isinstance(self.measured, closed_loop.MeasuredHere)

  def __call__(self, archs: np.ndarray) -> LatencyFn:
    archs = np.asarray(archs, np.int32)
    ms = self.measured.arch_ms(archs)
    adapted = self.support.adapt(archs, ms, pad_to=self.size)
    return self.model.with_params(adapted.params).arch_ms


class FrontMeasurement:
  """Measures the reported front on this machine with the harness
  (``config.evolve.measure_front``), for a search whose latency source is
  the predictor adapted to ``config.latency.device_file``, a device file of
  this machine: the front's architectures are timed in a fresh process,
  interleaved with the reference architectures, whose drift against the
  device file says how much the machine's own speed moved in between
  (:func:`closed_loop.verify`).
  """

  def __init__(self, config: ml_collections.ConfigDict):
    lat = config.latency
    if lat.source != 'predictor' or not lat.get('device_file'):
      raise ValueError(
          'config.evolve.measure_front: expected '
          "config.latency.source='predictor' with a device_file of this "
          f'machine, got source={lat.source!r}, device_file='
          f"{lat.get('device_file')!r}; a bundled device's front is "
          're-scored with its exact table instead.')
    if config.space not in ('fbnet', 'ofa'):
      raise ValueError(
          'config.evolve.measure_front: the harness builds fbnet and ofa '
          f'networks, not {config.space!r}.')
    from meta import latency_data  # pylint: disable=g-import-not-at-top
    self.config = config
    self.device = latency_data.load_device_file(lat.device_file)
    closed_loop.check_measured_here(config, self.device, lat.device_file)
    self.name = closed_loop.device_label(self.device)

  def __call__(self, archs: np.ndarray) -> dict:
    """``{'measured_ms', 'drift_vs_device_file', 'measured', 'seconds'}``."""
    return closed_loop.verify(self.config, np.asarray(archs, np.int32),
                              self.device)


# ------------------------------------------------------------ evaluation
class SupernetEvaluator:
  """Full evaluations with the trained supernet, cached per architecture.

  ``validation(arch)``: accuracy on the 'arch' split of the training data
  (at most ``limit`` images), BN recalibrated on the 'weights' split.
  ``test(arch)``: the same on the held-out eval split (reporting only).
  """

  def __init__(self, searcher: search_lib.Searcher, state,
               limit: Optional[int]):
    self.searcher = searcher
    self.state = state
    config = searcher.config
    num = len(data_lib.split_indices('arch', searcher.info.num_train))
    num = min(num, limit or num)
    num_batches = max(1, num // config.batch_size)
    stream = data_lib.train_batches(
        config.data.name, split='arch', batch_size=config.batch_size, seed=0,
        image_size=config.data.image_size, augment=False,
        data_dir=config.data.get('data_dir'))
    self._batches = []
    for _ in range(num_batches):  # one epoch's first batches: distinct images
      batch = dict(next(stream))
      batch['mask'] = np.ones(len(batch['label']), np.float32)
      self._batches.append(jax.tree.map(searcher.put_batch, batch))
    self.num_images = num_batches * config.batch_size
    self._cache = {}
    self.seconds = 0.0

  def validation(self, arch) -> float:
    arch = np.asarray(arch, np.int32)
    key = arch.tobytes()
    if key not in self._cache:
      t0 = time.perf_counter()
      state = self.searcher.recalibrate(self.state, arch)
      probs = jax.numpy.asarray(self.searcher.space.one_hot(arch))
      correct = total = 0.0
      for batch in self._batches:
        c, n = self.searcher.eval_step(state, batch, probs)
        correct += float(c)
        total += float(n)
      self._cache[key] = correct / total
      self.seconds += time.perf_counter() - t0
    return self._cache[key]

  @property
  def num_evaluations(self) -> int:
    return len(self._cache)

  def test(self, arch) -> float:
    return self.searcher.accuracy(self.state, np.asarray(arch, np.int32),
                                  self.searcher.config.data.get('eval_limit'))


def restore_supernet(searcher: search_lib.Searcher, workdir: str):
  """The trained supernet state that ``search.train_and_evaluate`` left in
  ``workdir`` (its last orbax checkpoint)."""
  state = searcher.init_state()
  manager = search_lib._checkpoint_manager(workdir, searcher.config)  # pylint: disable=protected-access
  step = manager.latest_step()
  if step is None or step < searcher.total_steps:
    raise FileNotFoundError(
        f'{workdir}/checkpoints: no finished supernet (latest step {step}, '
        f'expected {searcher.total_steps}); run search.train_and_evaluate '
        'first.')
  return manager.restore(step, args=ocp.args.StandardRestore(state))


# -------------------------------------------------------------------- run
def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for out-of-range ``config.evolve`` values."""
  cfg = config.evolve
  if not 2 <= cfg.initial <= cfg.budget:
    raise ValueError(f'config.evolve.initial: expected 2..budget '
                     f'({cfg.budget}), got {cfg.initial}.')
  if cfg.per_iteration < 1:
    raise ValueError(f'config.evolve.per_iteration: expected >= 1, got '
                     f'{cfg.per_iteration}.')
  if (cfg.get('random_budget') or cfg.budget) < cfg.budget:
    raise ValueError('config.evolve.random_budget: expected >= budget '
                     f'({cfg.budget}), got {cfg.random_budget}.')
  if cfg.pop_size < 4 or cfg.generations < 1:
    raise ValueError('config.evolve.pop_size / generations: expected >= 4 '
                     f'and >= 1, got {cfg.pop_size} and {cfg.generations}.')
  if not cfg.seeds:
    raise ValueError('config.evolve.seeds: expected at least one seed.')
  if any(not 0 < q < 1 for q in cfg.get('dnas_quantiles', ())):
    raise ValueError('config.evolve.dnas_quantiles: expected quantiles in '
                     f'(0, 1), got {tuple(cfg.dnas_quantiles)}.')
  if cfg.get('dnas_quantiles') and not (
      0 <= cfg.dnas_warmup_epochs < config.epochs):
    raise ValueError('config.evolve.dnas_warmup_epochs: expected 0 <= it < '
                     f'config.epochs ({config.epochs}), got '
                     f'{cfg.dnas_warmup_epochs}: DNAS needs architecture '
                     'steps.')
  if cfg.get('measure_latency') and config.latency.get('device_file'):
    # Measured here in the loop: the file must be this machine's (before the
    # supernet trains, not after).
    from meta import latency_data  # pylint: disable=g-import-not-at-top
    path = config.latency.device_file
    closed_loop.check_measured_here(
        config, latency_data.load_device_file(path), path)
  if config.search.warmup_epochs < config.epochs:
    logging.warning(
        'config.search.warmup_epochs (%d) < config.epochs (%d): the arch '
        'split that scores architectures also trained the architecture '
        'distribution, which is then not uniform.',
        config.search.warmup_epochs, config.epochs)


def dnas_config(config: ml_collections.ConfigDict,
                target_ms: float) -> ml_collections.ConfigDict:
  """A DNAS search (:func:`search.train_and_evaluate`) for one latency
  target on the evolve config's space, ops, data, schedule and latency
  source: ``config.evolve.dnas_warmup_epochs`` of weights only, then
  alternating weight and architecture steps; the architecture is derived for
  the target (``search.derive='target'``)."""
  c = ml_collections.ConfigDict(config.to_dict())
  e = config.evolve
  c.search.warmup_epochs = e.dnas_warmup_epochs
  c.search.tau_decay = e.dnas_tau_decay
  c.search.derive = 'target'
  c.search.num_derived_samples = 0
  # DNAS mixes candidates per example; OFA's elastic one-path weights do
  # that as FBNetV2's masked mixture (the 190-block mixture supernet takes
  # over 10 minutes to compile on a CPU).
  c.search.supernet = 'masked' if config.space == 'ofa' else 'mixture'
  c.loss.form = 'target'
  c.latency.target_ms = round(float(target_ms), 3)
  return c


def dnas_searches(config: ml_collections.ConfigDict, workdir: str,
                  targets, *, progress: bool = True) -> list[str]:
  """Runs (or resumes) one DNAS search per target in
  ``workdir/dnas/<target>ms``; returns their ``result.json`` paths."""
  paths = []
  for target in targets:
    cfg = dnas_config(config, target)
    out = os.path.join(workdir, 'dnas', f'{cfg.latency.target_ms:g}ms')
    logging.info('DNAS for %.3f ms -> %s', cfg.latency.target_ms, out)
    search_lib.train_and_evaluate(cfg, out, progress=progress)
    paths.append(os.path.join(out, 'result.json'))
  return paths


def _dnas_points(paths, encoding: Encoding, latency,
                 evaluator: SupernetEvaluator, test: bool) -> list[dict]:
  """The derived architecture of each DNAS ``result.json``, fully evaluated
  like the others (this run's supernet, BN recalibrated), with the DNAS
  run's own target and supernet accuracy beside it."""
  points = []
  for path in paths:
    with open(path) as f:
      result = json.load(f)
    arch = np.asarray(result['arch_index'], np.int32)
    encoding.encode(arch[None])  # clear error if the supernet lacks an op
    point = {'arch': encoding.space.names(arch), 'arch_index': arch.tolist(),
             'latency_ms': float(latency.arch_ms(arch)),
             'accuracy': evaluator.validation(arch),
             'target_ms': result.get('target_ms'),
             'dnas_supernet_accuracy': result.get('supernet_accuracy'),
             'result': path}
    if test:
      point['test_accuracy'] = evaluator.test(arch)
    points.append(point)
  return points


def run(config: ml_collections.ConfigDict, workdir: str, *,
        progress: bool = True) -> dict:
  """Trains (or resumes) the supernet, runs guided and random search,
  writes the files of :mod:`fbnet_jax.evolve_report`; returns the summary.

  Args:
    config: a search config with an ``evolve`` sub-config
      (``configs/evolve_quick.py``).
    workdir: output directory; the supernet trains (or resumes) in
      ``workdir/supernet``.
    progress: show progress bars.
  """
  check_config(config)
  cfg = config.evolve
  # Config errors before the supernet trains, not after.
  measure_front = FrontMeasurement(config) if cfg.get(
      'measure_front') else None
  t_start = time.time()
  os.makedirs(workdir, exist_ok=True)
  supernet_dir = os.path.join(workdir, 'supernet')
  search_lib.train_and_evaluate(config, supernet_dir, progress=progress)
  train_s = time.time() - t_start
  searcher = search_lib.Searcher(config)
  state = restore_supernet(searcher, supernet_dir)
  encoding = Encoding(searcher.space, allowed_choices(
      searcher.space, searcher.mask, searcher.fixed))
  latency = searcher.latency
  # The latency of fully evaluated architectures (fronts, hypervolume):
  # measured with latency in the loop, else the search's source.
  loop = LatencyInTheLoop(config, latency, os.path.join(
      workdir, 'measured_here.json')) if cfg.get('measure_latency') else None
  scoring = loop.measured if loop else latency
  harness = scoring if loop and loop.measures_here else None
  # The hypervolume's reference point and the DNAS targets, from
  # ``ref_samples`` random architectures: by the predictor where measuring
  # them would take harness sessions (any fixed point serves both
  # strategies alike).
  bounds = latency if harness else scoring
  evaluator = SupernetEvaluator(searcher, state, cfg.get('eval_limit'))
  ref_archs = encoding.sample(np.random.default_rng(0), cfg.ref_samples)
  indicator = pareto.HypervolumeIndicator(
      float(bounds.arch_ms(ref_archs).max()) * cfg.ref_factor)
  throughput = None
  if cfg.get('throughput_archs'):
    throughput = report.latency_throughput(latency, encoding.sample(
        np.random.default_rng(1), cfg.throughput_archs))
    logging.info('latency source %s: %.0f predictions/s', latency.name,
                 throughput)

  random_budget = cfg.get('random_budget') or cfg.budget
  runs = {name: {} for name in report.STRATEGIES}
  t_search = time.time()
  bar = tqdm.tqdm(total=len(cfg.seeds) * (cfg.budget + random_budget),
                  disable=not progress, desc='evaluations', unit='eval')
  for seed in cfg.seeds:
    rng = np.random.default_rng(seed)
    initial = unique_random(encoding, rng, cfg.initial)
    runs['random'][seed] = random_search(evaluator.validation, encoding,
                                         random_budget, rng, initial, bar)
    runs['guided'][seed] = guided_search(evaluator.validation,
                                         latency.arch_ms, encoding, cfg, seed,
                                         initial, bar, loop)
  bar.close()
  search_s = time.time() - t_search

  t_dnas = time.time()
  dnas_paths = [p for p in cfg.get('dnas_result', '').split(',') if p]
  if cfg.get('dnas_quantiles'):
    ref_ms = bounds.arch_ms(ref_archs)
    dnas_paths += dnas_searches(
        config, workdir, [np.quantile(ref_ms, q) for q in cfg.dnas_quantiles],
        progress=progress)
  dnas = None
  if dnas_paths:
    dnas = _dnas_points(dnas_paths, encoding, scoring, evaluator,
                        bool(cfg.get('test_front')))
  dnas_s = time.time() - t_dnas
  return report.write_results(
      workdir, config, searcher.space, latency, scoring, indicator, runs,
      evaluator,
      dnas, throughput, {'supernet_train': train_s, 'search': search_s,
                         'dnas': dnas_s,
                         'evaluations': evaluator.seconds,
                         'total_before_report': time.time() - t_start},
      len(loop.support.archs) if loop else None, measure_front,
      harness=harness)
