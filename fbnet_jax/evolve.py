"""The evolutionary search job on a trained supernet (DyNAS-T style).

``run(config, workdir)`` (what ``experiments/evolve.py`` calls) trains (or
resumes) a weight-sharing supernet under a uniform architecture
distribution, then searches the space for the trade-off between latency and
accuracy with guided (DyNAS-T) and random search at the same budget of
*full evaluations* (:mod:`fbnet_jax.nsga`): the supernet's accuracy for one
architecture, inherited weights, BN statistics recalibrated for it
(:class:`SupernetEvaluator`). Optionally, DNAS searches for latency targets
on the same setup are run and fully evaluated beside them
(:func:`dnas_searches`), and the files of :mod:`fbnet_jax.evolve_report`
are written.

Fronts are computed from fully evaluated architectures only (never from
predictions); the hypervolume against the number of evaluations compares
the two. Latency comes from the config's latency source (lookup table or
adapted predictor); the front is re-scored with the exact lookup table when
the device has one, and, for a device file of this machine, measured here
with the harness (``config.evolve.measure_front``,
:class:`fbnet_jax.latency_loop.FrontMeasurement`); with
``config.evolve.measure_latency`` the latency is measured in the loop
(:class:`fbnet_jax.latency_loop.LatencyInTheLoop`).

Honest evaluation: the supernet trains its weights on the 'weights' split
(80% of the training data) and recalibrates BN on it. With
``config.search.warmup_epochs == config.epochs`` (the evolve configs) the
'arch' split (the other 20%) is never trained on; full evaluations score
architectures on it (the search's validation set). The held-out eval split
is used only to report the test accuracy of the final front.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Optional

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from fbnet_jax import closed_loop
from fbnet_jax import data as data_lib
from fbnet_jax import errors
from fbnet_jax import evolve_report as report
from fbnet_jax import latency_loop
from fbnet_jax import measured_here
from fbnet_jax import nsga
from fbnet_jax import pareto
from fbnet_jax import retrain
from fbnet_jax import search as search_lib
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import supernet as supernet_lib
from fbnet_jax import workdirs
from meta import latency_data


# Every full evaluation's accuracy, for a rerun to read back.
EVALUATIONS_STORE = 'supernet_accuracy_store.json'


# ------------------------------------------------------------ evaluation
class SupernetEvaluator:
  """Full evaluations with the trained supernet, cached per architecture.

  ``validation(arch)``: accuracy on the 'arch' split of the training data
  (at most ``limit`` images), BN recalibrated on the 'weights' split.
  ``test(arch)``: the same on the held-out eval split (reporting only).

  With ``store`` (a JSON file), every validation accuracy is also kept
  there, under a key of everything it depends on (the supernet's training
  settings and step, the evaluation's, the environment): a rerun of a
  killed or finished evolve job reads them back instead of evaluating
  again, and gives the same results. Counts (``num_evaluations``) are of
  this run's distinct architectures either way; ``read_back`` says how
  many came from the store.
  """

  def __init__(self, searcher: searcher_lib.Searcher, state,
               limit: Optional[int], store: Optional[str] = None):
    self.searcher = searcher
    self.state = state
    config = searcher.config
    num = len(data_lib.split_indices('arch', searcher.info.num_train))
    num = min(num, limit or num)
    index, count = searcher.shard
    stream = data_lib.train_batches(
        config.data.name, split='arch', batch_size=config.batch_size, seed=0,
        image_size=config.data.image_size, augment=False,
        data_dir=config.data.get('data_dir'), shard=(index, count))
    self._batches = []
    # One epoch's first ``num`` images (distinct), the last batch masked
    # past them; this process's rows of each.
    part = config.batch_size // count
    rows = index * part + np.arange(part)
    for start in range(0, num, config.batch_size):
      batch = dict(next(stream))
      batch['mask'] = (rows < num - start).astype(np.float32)
      self._batches.append(jax.tree.map(searcher.put_local, batch))
    self.num_images = num
    self._cache = {}
    self.seconds = 0.0
    self.read_back = 0
    self._store_path = store
    self._key = hashlib.sha256(json.dumps(
        [search_lib.resume_settings(config), int(state.step), num,
         config.search.get('calib_batches'), workdirs.environment()],
        sort_keys=True, default=str).encode()).hexdigest()
    self._stored = {}
    if store and os.path.exists(store):
      saved = workdirs.read_json(store) or {}
      if saved.get('key') == self._key:
        self._stored = saved.get('accuracy', {})
        logging.info('evolve: %d full evaluations stored in %s.',
                     len(self._stored), store)
      else:
        logging.info('evolve: %s holds evaluations of another supernet or '
                     'setting; evaluating again.', store)

  def validation(self, arch) -> float:
    arch = np.asarray(arch, np.int32)
    key = arch.tobytes()
    name = ','.join(map(str, arch))
    if key not in self._cache and name in self._stored:
      self._cache[key] = float(self._stored[name])
      self.read_back += 1
    if key not in self._cache:
      t0 = time.perf_counter()
      state = self.searcher.recalibrate(self.state, arch)
      probs = jax.numpy.asarray(self.searcher.space.one_hot(arch))
      correct = total = jax.numpy.zeros(())  # on the device, read once
      for batch in self._batches:
        c, n = self.searcher.eval_step(state, batch, probs)
        correct, total = correct + c, total + n
      self._cache[key] = float(correct) / float(total)
      self.seconds += time.perf_counter() - t0
      if self._store_path:
        self._stored[name] = self._cache[key]
        workdirs.write_json(self._store_path, {
            'key': self._key, 'accuracy': self._stored}, indent=None)
    return self._cache[key]

  @property
  def num_evaluations(self) -> int:
    return len(self._cache)

  def test(self, arch) -> float:
    return self.searcher.accuracy(self.state, np.asarray(arch, np.int32),
                                  self.searcher.config.data.get('eval_limit'))


def restore_supernet(searcher: searcher_lib.Searcher, workdir: str):
  """The trained supernet state that ``search.train_and_evaluate`` left in
  ``workdir`` (its last orbax checkpoint)."""
  state = searcher.init_state()
  manager = search_lib.checkpoint_manager(workdir, searcher.config)
  step = manager.latest_step()
  if step is None or step < searcher.total_steps:
    raise FileNotFoundError(
        f'{workdir}/checkpoints: no finished supernet (latest step {step}, '
        f'expected {searcher.total_steps}); run search.train_and_evaluate '
        'first.')
  return workdirs.restore_checkpoint(manager, state, step)


# -------------------------------------------------------------------- run
# config.evolve's counts; what depends on another field is checked by hand.
BOUNDS = (
    errors.Bound('seed', 0, integer=True),
    errors.Bound('evolve.budget', 2, integer=True),
    errors.Bound('evolve.initial', 2, integer=True),
    errors.Bound('evolve.per_iteration', 1, integer=True),
    errors.Bound('evolve.random_budget', 0, integer=True, none_ok=True),
    errors.Bound('evolve.pop_size', 4, integer=True),
    errors.Bound('evolve.generations', 1, integer=True),
    errors.Bound('evolve.latency_probes', 0, integer=True),
)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for out-of-range ``config.evolve`` values."""
  errors.check_bounds(config, BOUNDS)
  cfg = config.evolve
  if cfg.initial > cfg.budget:
    raise errors.InputError(f'config.evolve.initial: expected at most the '
                            f'budget ({cfg.budget}), got {cfg.initial}.')
  if (cfg.get('random_budget') or cfg.budget) < cfg.budget:
    raise errors.InputError('config.evolve.random_budget: expected >= budget '
                            f'({cfg.budget}), or 0 for the budget, got '
                            f'{cfg.random_budget}.')
  if not cfg.seeds:
    raise errors.InputError('config.evolve.seeds: expected at least one seed.')
  for seed in cfg.seeds:
    errors.Bound('evolve.seeds', 0, integer=True).check(seed)
  if any(not 0 < q < 1 for q in cfg.get('dnas_quantiles', ())):
    raise errors.InputError(
        'config.evolve.dnas_quantiles: expected quantiles in '
        f'(0, 1), got {tuple(cfg.dnas_quantiles)}.')
  if cfg.get('dnas_quantiles') and not (
      0 <= cfg.dnas_warmup_epochs < config.epochs):
    raise errors.InputError(
        'config.evolve.dnas_warmup_epochs: expected 0 <= it < '
        f'config.epochs ({config.epochs}), got '
        f'{cfg.dnas_warmup_epochs}: DNAS needs architecture '
        'steps.')
  if cfg.predictor not in pareto.PREDICTORS:
    raise errors.InputError(f'config.evolve.predictor: expected one of '
                            f'{pareto.PREDICTORS}, got {cfg.predictor!r}.')
  if cfg.get('measure_latency'):
    latency_loop.check_config(config)
  for path in _dnas_result_paths(cfg):
    _read_dnas_result(path, config)
  anchors = cfg.get('anchors', 0)
  measured_here.check_num_anchors(anchors)
  if anchors and not (cfg.get('measure_latency') and
                      config.latency.get('device_file')):
    raise errors.InputError(
        f'config.evolve.anchors: {anchors} anchor networks only serve latency '
        'measured here in the loop; expected config.evolve.measure_latency='
        'True with config.latency.device_file a device file of this machine '
        '(a table needs no drift correction), or anchors=0.')
  if cfg.get('measure_latency') and config.latency.get('device_file'):
    # Measured here in the loop: the file must be this machine's (before the
    # supernet trains, not after).
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
  # DNAS mixes candidates per example; where the space has shared weights
  # (OFA's elastic one-path ones), as FBNetV2's masked mixture (OFA's
  # 190-block mixture supernet takes over 10 minutes to compile on a CPU).
  kinds = supernet_lib.SUPERNETS[config.space].kinds
  c.search.supernet = 'masked' if 'masked' in kinds else 'mixture'
  # Gumbel paths: uniform ones (a SPOS supernet's) train weights only.
  c.search.weight_paths = 'gumbel'
  c.loss.form = 'target'
  c.latency.target_ms = round(float(target_ms), 3)
  return c


def dnas_searches(config: ml_collections.ConfigDict, workdir: str,
                  targets, *, progress: bool = True) -> list[str]:
  """Runs (or resumes) one DNAS search per target in
  ``workdir/dnas/<target>ms_<fingerprint>``; returns their ``result.json``
  paths. The fingerprint of the search's :func:`search.resume_settings`
  (latency source, support, ...) gives another setting its own folder, so
  a rerun reuses a finished search exactly when it would train the same."""
  paths = []
  for target in targets:
    cfg = dnas_config(config, target)
    name = (f'{cfg.latency.target_ms:g}ms_'
            f'{workdirs.fingerprint(search_lib.resume_settings(cfg))}')
    out = os.path.join(workdir, 'dnas', name)
    logging.info('DNAS for %.3f ms -> %s', cfg.latency.target_ms, out)
    search_lib.train_and_evaluate(cfg, out, progress=progress)
    paths.append(os.path.join(out, 'result.json'))
  return paths


def _dnas_result_paths(cfg: ml_collections.ConfigDict) -> list[str]:
  return [p for p in cfg.get('dnas_result', '').split(',') if p]


def _read_dnas_result(path: str,
                      config: Optional[ml_collections.ConfigDict] = None
                      ) -> dict:
  """A DNAS ``result.json`` (``config.evolve.dnas_result``); with
  ``config``, checked to be of its space before any supernet trains."""
  if not os.path.isfile(path):
    raise errors.InputError(f'config.evolve.dnas_result: {path}: no such file; '
                            'expected result.json files of experiments.search, '
                            'comma-separated.')
  return retrain.load_arch(path, config)[1]


def _dnas_points(paths, encoding: nsga.Encoding, latency,
                 evaluator: SupernetEvaluator, test: bool) -> list[dict]:
  """The derived architecture of each DNAS ``result.json``, fully evaluated
  like the others (this run's supernet, BN recalibrated), with the DNAS
  run's own target and supernet accuracy beside it."""
  points = []
  for path in paths:
    result = _read_dnas_result(path)
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
  measure_front = latency_loop.FrontMeasurement(config) if cfg.get(
      'measure_front') else None
  data_lib.check_prepared(config.data.name, config.data.get('data_dir'))
  t_start = time.time()
  supernet_dir = os.path.join(workdir, 'supernet')
  # Makes the workdir, after the search's own checks of the config.
  search_lib.train_and_evaluate(config, supernet_dir, progress=progress)
  train_s = time.time() - t_start
  searcher = searcher_lib.Searcher(config)
  state = restore_supernet(searcher, supernet_dir)
  encoding = nsga.Encoding(searcher.space, searcher.allowed())
  latency = searcher.latency
  # The latency of fully evaluated architectures (fronts, hypervolume):
  # measured with latency in the loop, else the search's source.
  loop = latency_loop.LatencyInTheLoop(config, latency, os.path.join(
      workdir, 'measured_here.json')) if cfg.get('measure_latency') else None
  scoring = loop.measured if loop else latency
  harness = scoring if loop and loop.measures_here else None
  if measure_front is not None:
    measure_front.harness = harness
  # The hypervolume's reference point and the DNAS targets, from
  # ``ref_samples`` random architectures: by the predictor where measuring
  # them would take harness sessions (any fixed point serves both
  # strategies alike).
  bounds = latency if harness else scoring
  evaluator = SupernetEvaluator(
      searcher, state, cfg.get('eval_limit'),
      store=os.path.join(workdir, EVALUATIONS_STORE))
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
    initial = nsga.unique_random(encoding, rng, cfg.initial)
    runs['random'][seed] = nsga.random_search(
        evaluator.validation, encoding, random_budget, rng, initial, bar)
    runs['guided'][seed] = nsga.guided_search(
        evaluator.validation, latency.arch_ms, encoding, cfg, seed, initial,
        bar, loop)
  bar.close()
  search_s = time.time() - t_search

  t_dnas = time.time()
  dnas_paths = _dnas_result_paths(cfg)
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
