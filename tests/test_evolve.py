"""Evolutionary search: fronts, hypervolume, the accuracy predictor, the
guided loop on a synthetic problem, and the smoke config end to end."""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest
import scipy.stats

from configs import evolve_quick
from fbnet_jax import evolve
from fbnet_jax import evolve_report
from fbnet_jax import latency as latency_lib
from fbnet_jax import latency_loop
from fbnet_jax import nsga
from fbnet_jax import pareto
from fbnet_jax import spaces


def _encoding(ops=('k3_e1', 'k3_e3', 'k5_e6', 'skip')):
  space = spaces.get_space('fbnet', macro='cifar')
  allowed = np.array([c in ops for c in space.units[0].choices])
  return nsga.Encoding(space, np.broadcast_to(allowed, space.choice_mask
                                              .shape).copy())


def _synthetic(seed=0):
  """An additive accuracy and latency over the units and choices."""
  rng = np.random.default_rng(seed)
  space = spaces.get_space('fbnet', macro='cifar')
  cost = rng.uniform(0.1, 1.0, space.choice_mask.shape)
  gain = cost + 0.3 * rng.normal(size=cost.shape)  # slower tends to be better
  rows = np.arange(space.num_units)
  latency_fn = lambda archs: 5.0 + cost[rows, np.asarray(archs)].sum(-1)
  accuracy_fn = lambda arch: float(
      1 / (1 + np.exp(-0.3 * gain[rows, np.asarray(arch)].sum() + 3)))
  return latency_fn, accuracy_fn


class _Evaluator:
  """The report's view of ``evolve.SupernetEvaluator``, on the synthetic
  accuracy."""
  num_images, num_evaluations, read_back = 10, 18, 0
  test = staticmethod(_synthetic()[1])


def _smoke_runs(config, latency_fn):
  """Guided and random search of the smoke config on the synthetic
  accuracy (ops k3_e1 and skip): ``(encoding, initial, runs)``."""
  encoding = _encoding(('k3_e1', 'skip'))
  _, accuracy_fn = _synthetic()
  cfg = config.evolve
  initial = nsga.unique_random(encoding, np.random.default_rng(0), 6)
  runs = {'guided': {0: nsga.guided_search(
      accuracy_fn, latency_fn, encoding, cfg, 0, initial)},
          'random': {0: nsga.random_search(
              accuracy_fn, encoding, cfg.budget, np.random.default_rng(1),
              initial)}}
  return encoding, initial, runs


def test_non_dominated_matches_brute_force():
  points = np.random.default_rng(0).random((200, 2))
  front = pareto.non_dominated(points)
  dominated = [bool(np.any(np.all(points <= p, 1) & np.any(points < p, 1)))
               for p in points]
  np.testing.assert_array_equal(front, np.nonzero(~np.array(dominated))[0])


def test_front_entries_are_mutually_non_dominated():
  space = spaces.get_space('fbnet', macro='cifar')
  archs = space.sample(np.random.default_rng(1), 300)
  lat = np.random.default_rng(2).uniform(10, 50, 300)
  acc = np.random.default_rng(3).uniform(0.5, 0.9, 300)
  front = evolve_report.front_entries(space, archs, lat, acc)
  f = np.array([[p['latency_ms'], -p['accuracy']] for p in front])
  assert len(front) >= 2
  assert np.all(np.diff(f[:, 0]) > 0) and np.all(np.diff(f[:, 1]) < 0)
  for p in f:  # no evaluated point dominates a front point
    pts = np.stack([lat, -acc], 1)
    assert not np.any(np.all(pts <= p, 1) & np.any(pts < p, 1))


def test_hypervolume_of_a_hand_made_front():
  hv = pareto.HypervolumeIndicator(ref_latency_ms=100.0)
  # Normalised: (0.2, -0.5), (0.5, -0.8), (0.8, -0.9); reference (1, 0).
  # Staircase area: 0.3 * 0.5 + 0.3 * 0.8 + 0.2 * 0.9 = 0.57.
  lat, acc = [20.0, 50.0, 80.0], [0.5, 0.8, 0.9]
  assert hv(lat, acc) == pytest.approx(0.57, abs=1e-12)
  # A dominated point and one beyond the reference change nothing.
  assert hv(lat + [60.0, 120.0], acc + [0.7, 0.99]) == pytest.approx(0.57)
  assert hv([], []) == 0.0
  with pytest.raises(ValueError, match='ref_latency_ms'):
    pareto.HypervolumeIndicator(0.0)


def test_accuracy_predictor_ranks_held_out_architectures():
  encoding = _encoding()
  _, accuracy_fn = _synthetic()
  archs = encoding.sample(np.random.default_rng(0), 280)
  acc = np.array([accuracy_fn(a) for a in archs])
  # 80 samples for 66 free one-hot columns (22 units x 4 ops, minus one
  # per unit); ranks 200 held-out architectures.
  predictor = pareto.AccuracyPredictor(encoding.allowed, 'ridge').fit(
      archs[:80], acc[:80])
  rho = scipy.stats.spearmanr(predictor.predict(archs[80:]), acc[80:])[0]
  assert rho > 0.9


def test_encoding_round_trips_and_respects_the_op_subset():
  encoding = _encoding(('k3_e1', 'skip'))
  archs = encoding.sample(np.random.default_rng(0), 50)
  assert set(np.unique(archs)) <= {0, 8}
  np.testing.assert_array_equal(encoding.decode(encoding.encode(archs)), archs)
  np.testing.assert_array_equal(  # floats are rounded, out of range clipped
      encoding.decode(np.full((1, 22), 0.7))[0], np.full(22, 8))
  with pytest.raises(ValueError, match='config.search.ops'):
    encoding.encode(np.full((1, 22), 3))


def test_long_variant_is_the_benchmarked_supernet():
  """``:long`` is the 24-epoch supernet of docs/evolve.md (flags
  ``--config.epochs=24 --config.search.warmup_epochs=24
  --config.search.tau_decay=0.85``), weights only, annealed to about the
  default's final temperature, its DNAS points too, and otherwise the
  quick config."""
  default, long = evolve_quick.get_config(), evolve_quick.get_config('long')
  assert (long.epochs, long.search.warmup_epochs,
          long.search.tau_decay) == (24, 24, 0.85)
  final = lambda c: c.search.tau0 * c.search.tau_decay ** (c.epochs - 1)
  assert final(long) == pytest.approx(final(default), rel=0.2)
  dnas = lambda c: evolve.dnas_config(c, 10.0)
  assert final(dnas(long)) == pytest.approx(final(dnas(default)), rel=0.05)
  long.epochs = long.search.warmup_epochs = default.epochs
  long.search.tau_decay = default.search.tau_decay
  long.evolve.dnas_tau_decay = default.evolve.dnas_tau_decay
  assert long.to_dict() == default.to_dict()
  with pytest.raises(ValueError, match='expected smoke or long'):
    evolve_quick.get_config('longer')


def test_nsga_starts_from_a_full_population_of_distinct_archs():
  """The evolve job's seed-0 start (its initial architectures, drawn with
  default_rng(0)) filled up to pop_size with other random ones; the fill
  once drew the same stream and lost 16 of 64 as duplicates."""
  encoding = _encoding()
  cfg = evolve_quick.get_config().evolve
  initial = nsga.unique_random(encoding, np.random.default_rng(0),
                               cfg.initial)
  start = nsga.start_population(encoding, initial, cfg.pop_size, seed=0)
  assert len(start) == cfg.pop_size > cfg.initial
  assert len({row.tobytes() for row in start}) == cfg.pop_size
  np.testing.assert_array_equal(start[:cfg.initial],
                                encoding.encode(initial))


def test_guided_search_beats_random_on_a_synthetic_problem():
  encoding = _encoding()
  latency_fn, accuracy_fn = _synthetic()
  cfg = evolve_quick.get_config().evolve
  cfg.budget, cfg.initial, cfg.per_iteration = 40, 10, 10
  cfg.pop_size, cfg.generations = 40, 30
  rng = np.random.default_rng(0)
  initial = nsga.unique_random(encoding, rng, cfg.initial)
  guided = nsga.guided_search(accuracy_fn, latency_fn, encoding, cfg, 0,
                              initial)
  random = nsga.random_search(accuracy_fn, encoding, cfg.budget, rng,
                              initial)
  assert len(guided) == len(random) == 40
  assert len(guided.keys()) == 40  # never evaluates an architecture twice
  assert guided.iteration_ends == [10, 20, 30, 40]
  np.testing.assert_array_equal(np.stack(guided.archs[:10]), initial)
  indicator = pareto.HypervolumeIndicator(40.0)
  hv_guided = pareto.hypervolume_curve(guided.archs, guided.accuracy,
                                       latency_fn, indicator)
  hv_random = pareto.hypervolume_curve(random.archs, random.accuracy,
                                       latency_fn, indicator)
  assert hv_guided[9] == hv_random[9]
  assert all(b[1] >= a[1] for a, b in zip(hv_guided, hv_guided[1:]))
  assert hv_guided[-1][1] > hv_random[-1][1]


def test_dnas_comparison_against_a_hand_made_front():
  front = [{'latency_ms': 10.0, 'accuracy': 0.5},
           {'latency_ms': 20.0, 'accuracy': 0.8}]
  dnas = [{'latency_ms': 25.0, 'accuracy': 0.7, 'target_ms': 25.0},  # beaten
          {'latency_ms': 15.0, 'accuracy': 0.6, 'target_ms': 15.0},  # not
          {'latency_ms': 5.0, 'accuracy': 0.1, 'target_ms': 5.0}]  # fastest
  out = evolve_report.dnas_comparison(dnas, front, pareto.HypervolumeIndicator(50.0))
  assert [r['dominated_by_guided_front'] for r in out['points']] == [
      True, False, False]
  assert [r['front_best_accuracy_at_or_below'] for r in out['points']] == [
      0.8, 0.5, None]
  assert out['dominated'] == 1
  # Latency / 50 at 0.1, 0.3, 0.5; the union of the boxes up to (1, 0).
  assert out['hypervolume'] == pytest.approx(
      0.2 * 0.1 + 0.2 * 0.6 + 0.5 * 0.7)
  assert 'dominated_on_test' not in out  # no test accuracies given
  # On held-out accuracy the first DNAS point beats the front's 20 ms one.
  for p, test in zip(front + dnas, (0.5, 0.7, 0.75, 0.6, 0.1)):
    p['test_accuracy'] = test
  out = evolve_report.dnas_comparison(dnas, front,
                                      pareto.HypervolumeIndicator(50.0))
  assert [r['dominated_by_guided_front_on_test'] for r in out['points']] == [
      False, False, False]
  assert out['dominated'] == 1 and out['dominated_on_test'] == 0
  assert 'dominated_by_seed' not in out
  # The pooled front above is two seeds' (one point each): seed 1 alone,
  # with only the 10 ms point, dominates none of the DNAS points.
  out = evolve_report.dnas_comparison(
      dnas, front, pareto.HypervolumeIndicator(50.0),
      {'0': front[1:], '1': front[:1]})
  assert out['dominated_by_seed'] == {'0': 1, '1': 0}


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('evolve'))
  summary = evolve.run(evolve_quick.get_config('smoke'), workdir,
                       progress=False)
  return workdir, summary


def test_smoke_config_end_to_end(smoke_run):
  workdir, summary = smoke_run
  read = lambda name: json.load(open(os.path.join(workdir, name)))
  front = read('front.json')
  assert front and all(set(p) >= {'arch', 'latency_ms', 'accuracy'}
                       for p in front)
  table = latency_lib.lookup_table_latency('raspi4')
  for p in front:
    assert len(p['arch']) == 22 and set(p['arch']) <= {'k3_e1', 'skip'}
    assert 0.0 <= p['accuracy'] <= 1.0 and p['latency_ms'] > 0
    # The table's latency of this very architecture (the smoke config's
    # latency source is the table, so lut_latency_ms repeats it).
    ms = float(table.arch_ms(np.asarray(p['arch_index'])[None])[0])
    assert p['latency_ms'] == pytest.approx(ms, rel=1e-5)
    assert p['lut_latency_ms'] == pytest.approx(ms, rel=1e-5)
    assert p['arch'] == spaces.get_space('fbnet').names(p['arch_index'])
  f = np.array([[p['latency_ms'], -p['accuracy']] for p in front])
  assert len(pareto.non_dominated(f)) == len(front)
  hv = read('hypervolume.json')
  for name in ('guided', 'random'):
    curve = np.array(hv[name])
    np.testing.assert_array_equal(curve[:, 0], np.arange(1, 13))
    assert np.all(np.diff(curve[:, 1]) >= 0) and np.all(curve[:, 1] <= 1)
  assert summary == read('summary.json')
  # x fewer: the evaluations random itself first reached its final
  # hypervolume with, over guided's for the same value.
  to_final = summary['guided_evaluations_to_reach_random_final']
  random_curve = hv['random']
  if to_final is None:  # guided never reached random's final hypervolume
    assert summary['speedup_at_random_final'] is None
    assert np.array(hv['guided'])[:, 1].max() < random_curve[-1][1]
  else:
    assert summary['speedup_at_random_final'] == pytest.approx(
        pareto.evaluations_to_reach(random_curve, random_curve[-1][1]) /
        to_final)
  # Read at round ends (6, 9, 12) only, never earlier than anywhere.
  round_end = summary['guided_round_end_to_reach_random_final']
  assert round_end is None or (round_end in (6, 9, 12) and
                               round_end >= to_final)
  # Both fronts by validation and by held-out test accuracy.
  fronts = read('fronts.json')
  for name in ('guided', 'random'):
    assert all('test_accuracy' in p for p in fronts[name])
    assert set(summary['front_hypervolume'][name]) == {'validation', 'test'}
  # Every distinct architecture evaluated, the shared 6 initial ones once.
  evaluations = read('evaluations.json')
  distinct = {tuple(a) for runs in evaluations.values()
              for run in runs.values() for a in run['arch_index']}
  assert summary['supernet_evaluations'] == len(distinct) <= 18
  assert summary['dnas'] is None  # DNAS points: tests/test_evolve_spaces.py
  config = evolve_quick.get_config('smoke')
  assert summary['evolve_config']['budget'] == config.evolve.budget
  assert summary['latency_config']['source'] == config.latency.source
  assert summary['lut_agreement']['max_relative_error'] < 1e-6  # the table
  assert summary['latency_predictions_per_s'] > 0
  # Seed by seed, from the stored per-seed curves.
  with open(os.path.join(workdir, 'hypervolume.json')) as f:
    per_seed = json.load(f)['per_seed']
  assert summary['by_seed'] == evolve_report.seed_comparison(
      per_seed, [r['evaluations'] for r in summary['by_budget']],
      summary['random_budget'])
  assert set(summary['by_seed']) == {str(s) for s in config.evolve.seeds}
  for plot in ('front.png', 'hypervolume.png'):
    assert os.path.getsize(os.path.join(workdir, plot)) > 1000
  printed = evolve_report.console_summary(summary)
  assert printed.count(' evaluations: hv guided ') == len(summary['by_budget'])
  assert json.loads(printed[:printed.index('\n}') + 2])['seconds'] == (
      summary['seconds'])


def test_a_rerun_reads_its_full_evaluations_back(smoke_run, tmp_path):
  """The smoke run's workdir copied and run again: every full evaluation
  comes from its store, and the results are the first run's."""
  workdir, first = smoke_run
  assert first['supernet_evaluations_read_back'] == 0
  again_dir = tmp_path / 'again'
  shutil.copytree(workdir, again_dir)
  again = evolve.run(evolve_quick.get_config('smoke'), str(again_dir),
                     progress=False)
  assert again['supernet_evaluations'] == first['supernet_evaluations']
  assert again['supernet_evaluations_read_back'] == first[
      'supernet_evaluations']
  for name in ('front.json', 'hypervolume.json'):
    assert json.loads((again_dir / name).read_text()) == json.load(
        open(os.path.join(workdir, name)))
  # Evaluations of another setting (here on 5 images) are not read back.
  config = evolve_quick.get_config('smoke')
  searcher = evolve.searcher_lib.Searcher(config)
  state = evolve.restore_supernet(searcher, str(again_dir / 'supernet'))
  other = evolve.SupernetEvaluator(
      searcher, state, 5, store=str(again_dir / evolve.EVALUATIONS_STORE))
  arch = json.load(open(os.path.join(workdir, 'front.json')))[0]['arch_index']
  other.validation(arch)
  assert other.read_back == 0 and other.num_evaluations == 1


def test_smoke_run_with_latency_in_the_loop(smoke_run, tmp_path):
  """The same trained supernet (copied, so that the run resumes it),
  searched with the adapted predictor and latency in the loop."""
  workdir, lut_summary = smoke_run
  shutil.copytree(os.path.join(workdir, 'supernet'), tmp_path / 'supernet')
  config = evolve_quick.get_config('smoke')
  config.latency.source = 'predictor'
  config.evolve.measure_latency = True
  config.evolve.latency_probes = 1
  summary = evolve.run(config, str(tmp_path), progress=False)
  assert summary['latency_source'] == 'predictor:raspi4'
  assert summary['latency_of_evaluated'] == 'lut:raspi4'
  # The supernet's result.json, written again, speaks of this run's source.
  lut_result = json.load(open(os.path.join(workdir, 'supernet',
                                           'result.json')))
  result = json.load(open(tmp_path / 'supernet' / 'result.json'))
  probs = json.load(open(tmp_path / 'supernet' / 'history.json'))[-1]['probs']
  want = float(latency_lib.latency_source(config)(np.asarray(probs)))
  assert result['latency_source'] == 'predictor:raspi4'
  assert result['expected_latency_ms'] == pytest.approx(want, rel=1e-3)
  assert want != pytest.approx(lut_result['expected_latency_ms'], rel=1e-3)
  # 20 support rows + the 12 evaluated + the probed ones never evaluated
  # (at most 3 per guided round, 2 rounds).
  guided = json.load(open(tmp_path / 'evaluations.json'))['guided']['0']
  measured = {tuple(a) for a in guided['arch_index'] + guided['probed']}
  assert summary['latency_measurements'] == {'0': 20 + len(measured)}
  assert 12 <= len(measured) <= 12 + 2 * 3 and guided['probed']
  # Random search does not use the latency source: with measured latencies
  # its curve is the lookup-table run's.
  assert (summary['final_hypervolume']['random'] ==
          lut_summary['final_hypervolume']['random'])
  front = json.load(open(tmp_path / 'front.json'))
  errors = [abs(p['predicted_latency_ms'] / p['lut_latency_ms'] - 1)
            for p in front]
  assert all(p['latency_ms'] == pytest.approx(p['lut_latency_ms'], rel=1e-5)
             for p in front)
  assert summary['lut_agreement']['max_relative_error'] == pytest.approx(
      max(errors))
  assert [r['evaluations'] for r in summary['prediction_error_by_round'][
      '0']] == [6, 9, 12]


def test_guided_search_refines_its_latency_after_each_round():
  encoding = _encoding()
  latency_fn, accuracy_fn = _synthetic()
  cfg = evolve_quick.get_config().evolve
  cfg.budget, cfg.initial, cfg.per_iteration = 20, 8, 4
  cfg.pop_size, cfg.generations = 16, 5
  seen = []

  def refine(archs):  # the "re-adapted" latency: off by a known factor
    seen.append(len(archs))
    return lambda a, k=len(seen): latency_fn(a) * (1 + k)

  initial = nsga.unique_random(encoding, np.random.default_rng(0), 8)
  history = nsga.guided_search(accuracy_fn, latency_fn, encoding, cfg, 0,
                               initial, refine=refine)
  assert seen == [8, 12, 16]  # before each NSGA-II round, on all evaluated
  archs = np.stack(history.archs)
  want = latency_fn(archs) * np.repeat([1, 2, 3, 4], [8, 4, 4, 4])
  np.testing.assert_allclose(history.predicted_ms, want, rtol=1e-6)


def test_probed_candidates_keep_their_prediction_from_before_the_probe():
  """A stand-in loop that is exact on what it has measured and 1.5x off
  elsewhere: every evaluated architecture's recorded prediction must be the
  out-of-sample one (1.5x), probed or not."""
  encoding = _encoding()
  latency_fn, accuracy_fn = _synthetic()

  def refine(archs):
    seen = {a.tobytes() for a in np.asarray(archs, np.int32)}
    return lambda a: np.array([
        latency_fn(x) * (1.0 if x.tobytes() in seen else 1.5)
        for x in np.atleast_2d(np.asarray(a, np.int32))])

  cfg = evolve_quick.get_config().evolve
  cfg.budget, cfg.initial, cfg.per_iteration = 24, 8, 4
  cfg.pop_size, cfg.generations, cfg.latency_probes = 16, 5, 1
  initial = nsga.unique_random(encoding, np.random.default_rng(0), 8)
  history = nsga.guided_search(accuracy_fn, lambda a: 1.5 * latency_fn(a),
                               encoding, cfg, 0, initial, refine=refine)
  probed = {a.tobytes() for a in history.probed}
  assert any(a.tobytes() in probed for a in history.archs)
  np.testing.assert_allclose(
      np.array(history.predicted_ms) / latency_fn(np.stack(history.archs)),
      1.5, rtol=1e-6)


def test_latency_in_the_loop_learns_the_measured_fast_end():
  config = evolve_quick.get_config()
  config.latency.source = 'predictor'
  model = latency_lib.latency_source(config)
  loop = latency_loop.LatencyInTheLoop(config, model)
  space = model.space
  rng = np.random.default_rng(0)
  # Skip-heavy networks, as on the fast end of a front: 16 to measure, 16
  # more of the same kind held out. (Median error 12% before, 2% after.)
  archs = np.where(rng.random((32, 22)) < 0.9, 8, space.sample(rng, 32))
  exact = loop.measured.arch_ms(archs)
  before = np.abs(model.arch_ms(archs[16:]) / exact[16:] - 1)
  after = np.abs(loop(archs[:16])(archs[16:]) / exact[16:] - 1)
  assert np.median(after) < min(0.05, 0.5 * np.median(before))
  with pytest.raises(ValueError, match='source'):
    config.latency.source = 'lut'
    latency_loop.LatencyInTheLoop(config, model)


def test_residual_correction_fits_what_the_predictor_misses():
  """An additive device and a predictor that is off by a per-layer factor
  (as an under-adapted predictor is): the ridge correction, fitted on 150
  measured architectures, takes held-out ones from over 20% off to a tenth
  of that (none over 5%); a predictor with nothing left to fix is left as
  it is; predictions are floored."""
  space = spaces.get_space('fbnet', macro='cifar')
  rng = np.random.default_rng(0)
  cost = rng.uniform(0.1, 1.0, space.choice_mask.shape)
  tilt = rng.uniform(1.0, 1.6, space.num_units)[:, None]
  rows = np.arange(space.num_units)
  device = lambda a: 5.0 + cost[rows, np.asarray(a)].sum(-1)
  biased = lambda a: 5.0 + (tilt * cost)[rows, np.asarray(a)].sum(-1)
  archs = space.sample(rng, 250)
  truth = device(archs)
  corrected = latency_loop.ResidualCorrected(
      biased, space.choice_mask, archs[:150], truth[:150])
  before = np.abs(biased(archs[150:]) / truth[150:] - 1)
  after = np.abs(corrected(archs[150:]) / truth[150:] - 1)
  assert np.median(before) > 0.2
  assert np.median(after) < 0.1 * np.median(before) and after.max() < 0.05
  assert corrected(archs[150]) == pytest.approx(corrected(archs[150:151])[0])
  exact = latency_loop.ResidualCorrected(
      device, space.choice_mask, archs[:150], truth[:150])
  np.testing.assert_allclose(exact(archs[150:]), truth[150:], rtol=1e-6)
  low = lambda a: device(a) - 100.0
  floored = latency_loop.ResidualCorrected(
      low, space.choice_mask, archs[:2], low(archs[:2]))
  assert np.all(floored(archs) == np.float32(latency_lib.MIN_PREDICTED_MS))


def test_residual_costs_reach_choices_nothing_measured_has():
  """A device whose latency follows the layers' MACs, a predictor 30% low,
  and measurements in which k5_e6 never appears: the one-hot correction
  leaves networks full of k5_e6 18% low (it has no column for them); with
  the architectures' analytic costs as features (``ridge_costs``), none is
  more than 5% off."""
  space = spaces.get_space('fbnet', macro='cifar')
  names = space.unit_features()[1]
  macs = [names.index(k) for k in ('macs_pw1', 'macs_dw', 'macs_pw2')]
  device = lambda a: 2.0 + 10.0 * space.cost_features(a)[:, macs].sum(-1)
  low = lambda a: 0.7 * device(a)
  rng = np.random.default_rng(0)
  k5_e6 = space.units[0].choices.index('k5_e6')
  seen = space.sample(rng, 120)
  seen[seen == k5_e6] = 0
  unseen = space.sample(rng, 50)
  unseen[:, ::2] = k5_e6
  one_hot = latency_loop.ResidualCorrected(low, space.choice_mask, seen,
                                           device(seen))
  costs = latency_loop.ResidualCorrected(low, space.choice_mask, seen,
                                         device(seen),
                                         extra=space.cost_features)
  err = lambda f: np.abs(f(unseen) / device(unseen) - 1)
  assert np.median(err(one_hot)) > 0.15  # 0.18 when written
  assert err(costs).max() < 0.05  # 0.034


def test_latency_in_the_loop_residual_option():
  config = evolve_quick.get_config()
  config.latency.source = 'predictor'
  model = latency_lib.latency_source(config)
  archs = model.space.sample(np.random.default_rng(0), 4)
  assert isinstance(latency_loop.LatencyInTheLoop(config, model)(archs),
                    latency_loop.ResidualCorrected)
  config.evolve.latency_residual = 'ridge_costs'
  with_costs = latency_loop.LatencyInTheLoop(config, model)(archs)
  assert with_costs.ridge.extra == model.space.cost_features
  config.evolve.latency_residual = 'none'
  plain = latency_loop.LatencyInTheLoop(config, model)(archs)
  assert not isinstance(plain, latency_loop.ResidualCorrected)
  config.evolve.latency_residual = 'lasso'
  with pytest.raises(ValueError, match='latency_residual.*lasso'):
    latency_loop.LatencyInTheLoop(config, model)


def test_report_with_latency_in_the_loop_checks_the_predictions(tmp_path):
  config = evolve_quick.get_config('smoke')
  config.latency.source = 'predictor'
  config.evolve.measure_latency = True
  table = latency_lib.lookup_table_latency('raspi4')
  # A "predictor" 20% under the table: the front must report the table's
  # (measured) latencies and flag the predictions as 20% off.
  low = table.with_params(jax.tree.map(lambda x: 0.8 * x, table.params))
  encoding, _, runs = _smoke_runs(config, low.arch_ms)
  summary = evolve_report.write_results(
      str(tmp_path), config, encoding.space, low, table,
      pareto.HypervolumeIndicator(60.0), runs, _Evaluator(), None, None, {},
      support_size=20)
  front = json.load(open(tmp_path / 'front.json'))
  for p in front:
    assert p['latency_ms'] == pytest.approx(p['lut_latency_ms'], rel=1e-6)
    assert p['predicted_latency_ms'] == pytest.approx(0.8 * p['latency_ms'],
                                                      rel=1e-5)
  agreement = summary['lut_agreement']
  assert agreement['compared'] == 'predicted_latency_ms'
  assert agreement['max_relative_error'] == pytest.approx(0.2, rel=1e-4)
  assert not agreement['within_10_percent']
  assert summary['latency_of_evaluated'] == 'lut:raspi4'
  assert summary['latency_measurements'] == {'0': 20 + 12}
  rounds = summary['prediction_error_by_round']['0']
  assert [r['evaluations'] for r in rounds] == [6, 9, 12]
  for r in rounds:
    assert r['mean'] == pytest.approx(-0.2, rel=1e-4)
    assert r['max_abs'] == pytest.approx(0.2, rel=1e-4)


def test_a_predictor_scored_report_also_scores_with_the_exact_table(tmp_path):
  # Without latency in the loop, the front and hypervolumes use the
  # predictor that the guided search optimised; where the device has a
  # table, the same evaluations' hypervolumes are also given exactly.
  config = evolve_quick.get_config('smoke')
  config.latency.source = 'predictor'
  table = latency_lib.lookup_table_latency('raspi4')
  low = table.with_params(jax.tree.map(lambda x: 0.8 * x, table.params))
  low.name = 'predictor:raspi4'
  encoding, _, runs = _smoke_runs(config, low.arch_ms)
  indicator = pareto.HypervolumeIndicator(60.0)
  summary = evolve_report.write_results(
      str(tmp_path), config, encoding.space, low, low, indicator, runs,
      _Evaluator(), None, None, {})
  exact = summary['final_hypervolume_exact_latency']
  assert exact['latency'] == 'lut:raspi4'
  h = runs['guided'][0]
  want = pareto.hypervolume_curve(h.archs, h.accuracy, table.arch_ms,
                                  indicator)[config.evolve.budget - 1][1]
  assert exact['guided'] == pytest.approx(want)
  # 20% faster latencies give more hypervolume than the table's.
  assert summary['final_hypervolume']['guided'] > exact['guided']


def test_report_measures_the_front_here(tmp_path):
  """``config.evolve.measure_front``: the front and the DNAS points are
  measured (here by a stand-in running 25% slower than predicted, in a
  session whose references also ran 25% slower than in the device file):
  30-20% off raw, exact against the references."""
  config = evolve_quick.get_config('smoke')
  table = latency_lib.lookup_table_latency('raspi4')
  encoding, initial, runs = _smoke_runs(config, table.arch_ms)
  _, accuracy_fn = _synthetic()
  dnas_arch = initial[0]
  dnas = [{'arch': encoding.space.names(dnas_arch),
           'arch_index': dnas_arch.tolist(),
           'latency_ms': float(table.arch_ms(dnas_arch)),
           'accuracy': accuracy_fn(dnas_arch)}]
  calls = []

  class Measure:
    name = 'stand-in'

    def __call__(self, archs):
      calls.append(archs)
      return {'measured_ms': (1.25 * table.arch_ms(archs)).tolist(),
              'measured_vs_references_ms': table.arch_ms(archs).tolist(),
              'drift_vs_device_file': 0.25, 'measured': 10 + len(archs),
              'seconds': 1.0}

  summary = evolve_report.write_results(
      str(tmp_path), config, encoding.space, table, table,
      pareto.HypervolumeIndicator(60.0), runs, _Evaluator(), dnas, None, {},
      measure=Measure())
  front = json.load(open(tmp_path / 'front.json'))
  assert len(calls) == 1 and len(calls[0]) == len(front) + 1
  for p in front + json.load(open(tmp_path / 'fronts.json'))['dnas']:
    assert p['measured_latency_ms'] == pytest.approx(1.25 * p['latency_ms'],
                                                     rel=1e-5)
    assert p['measured_vs_references_ms'] == pytest.approx(p['latency_ms'],
                                                           rel=1e-5)
  here = summary['measured_agreement']
  assert here['raw']['max_relative_error'] == pytest.approx(0.2, rel=1e-4)
  assert not here['raw']['within_10_percent']
  assert here['vs_references']['max_relative_error'] < 1e-5
  assert here['vs_references']['within_10_percent']
  assert here['measured'] == 10 + len(front) + 1
  assert 'measure_front' in summary['seconds']
  assert summary['lut_agreement']['max_relative_error'] < 1e-6


def test_report_with_latency_in_the_loop_compares_predictions_with_the_front_measurement(
    tmp_path):
  """With latency measured in the loop (here a stand-in 10% above the
  table) the front's latency_ms are measurements: measure_front compares
  the predictions made before measuring (the table) with the new
  measurement (25% above the table), and the loop's with it apart, on the
  device file's scale."""
  config = evolve_quick.get_config('smoke')
  table = latency_lib.lookup_table_latency('raspi4')
  encoding, _, runs = _smoke_runs(config, table.arch_ms)
  loop = latency_lib.LatencyModel(
      'measured:stand-in', table.space,
      lambda params, probs: 1.1 * table.fn(params, probs), table.params)

  def measure(archs):
    return {'measured_ms': (1.25 * table.arch_ms(archs)).tolist(),
            'measured_vs_references_ms': table.arch_ms(archs).tolist(),
            'drift_vs_device_file': 0.25, 'measured': 10 + len(archs),
            'seconds': 1.0}
  measure.name = 'stand-in'

  summary = evolve_report.write_results(
      str(tmp_path), config, encoding.space, table, loop,
      pareto.HypervolumeIndicator(60.0), runs, _Evaluator(), None, None, {},
      measure=measure)
  here = summary['measured_agreement']
  assert here['compared'] == 'predicted_latency_ms'
  assert here['raw']['max_relative_error'] == pytest.approx(0.2, rel=1e-4)
  # Both on the device file's scale: the loop's 1.1 x the table against
  # the re-measurement divided by its references' drift (the table).
  assert here['loop_vs_remeasured']['compared_with'] == (
      'measured_vs_references_ms')
  assert here['loop_vs_remeasured']['max_relative_error'] == pytest.approx(
      0.1, rel=1e-4)


def test_measure_points_takes_each_sessions_own_drift():
  # Two networks measured in several sessions: the median drift (+10%)
  # does not divide the medians; each session's own drift did.
  def measure(archs):
    return {'measured_ms': [2.2, 4.4], 'drift_vs_device_file': 0.1,
            'measured_vs_references_ms': [2.0, 4.2], 'measured': 36,
            'seconds': 3.0, 'sessions': [{'drift_vs_device_file': 0.1}]}

  points = [{'arch_index': [0] * 22}, {'arch_index': [1] * 22}]
  kept = evolve_report.measure_points(points, measure)
  assert [p['measured_vs_references_ms'] for p in points] == [2.0, 4.2]
  assert [p['measured_latency_ms'] for p in points] == [2.2, 4.4]
  assert kept['verify_sessions'] == [{'drift_vs_device_file': 0.1}]


def test_measure_front_needs_a_device_file_measured_here(
    tmp_path, file_measured_here):
  from meta import latency_data
  config = evolve_quick.get_config('smoke')
  config.evolve.measure_front = True
  with pytest.raises(ValueError, match='device_file of this machine'):
    # The lookup table of a bundled device.
    latency_loop.FrontMeasurement(config)
  config.latency.source = 'predictor'
  path = str(tmp_path / 'raspi4_copy.npz')
  latency_data.save_device_file(
      path, latency_data.bundled_device('fbnet', 'raspi4'))
  config.latency.device_file = path
  with pytest.raises(ValueError, match='raspi4_copy.npz: no field '
                     'device_kind'):
    latency_loop.FrontMeasurement(config)
  file_measured_here(path, batch_size=8)
  with pytest.raises(ValueError, match=r'field batch_size is 8.*would use 1'):
    latency_loop.FrontMeasurement(config)
  file_measured_here(path)
  assert 'mine' in latency_loop.FrontMeasurement(config).name
  config.space = 'nasbench201'
  with pytest.raises(ValueError, match='fbnet and ofa'):
    latency_loop.FrontMeasurement(config)


class _StandInHarness:
  """``closed_loop.verify``'s stand-in: sessions on a machine slower than
  when its device file was measured, so that what it measures is the
  table's latency on the file's scale once the drift is divided out.

  Session ``i`` runs ``drifts[i] = (fast, slow)`` times slower: ``fast``
  at ``low`` ms and below, ``slow`` at ``high`` ms and above, linear in log
  latency between (fast networks moved 1.8-4.6x as far as the references
  between sessions on the 2-core VM); once ``drifts`` runs out, 25% slower
  everywhere. With ``refs`` the references are timed too
  (``reference_ms``, their drift); without, they moved as all did.
  """

  def __init__(self, table, refs=None, low=1.0, high=2.0):
    self.table, self.refs, self.low, self.high = table, refs, low, high
    self.drifts, self.calls = [], []

  def __call__(self, config, archs, device):
    i = len(self.calls)
    fast, slow = self.drifts[i] if i < len(self.drifts) else (1.25, 1.25)
    self.calls.append(np.asarray(archs))

    def session(true_ms):
      t = np.clip(np.log(true_ms / self.low) / np.log(self.high / self.low),
                  0, 1)
      return true_ms * (fast + t * (slow - fast))

    out = {'measured_ms': session(self.table.arch_ms(archs)).tolist(),
           'drift_vs_device_file': slow - 1, 'measured': 10 + len(archs),
           'seconds': 2.0}
    if self.refs is not None:
      refs = session(self.table.arch_ms(self.refs))
      out['reference_ms'] = refs.tolist()
      out['drift_vs_device_file'] = float(np.median(
          refs / self.table.arch_ms(self.refs)) - 1)
    return out


def test_measured_here_measures_each_architecture_once(
    tmp_path, file_measured_here):
  from fbnet_jax import measured_here
  config = evolve_quick.get_config('smoke')
  path = str(tmp_path / 'mine.npz')
  device = file_measured_here(path)
  table = latency_lib.lookup_table_latency('raspi4')
  harness = _StandInHarness(table)
  cache = str(tmp_path / 'measured_here.json')
  here = measured_here.MeasuredHere(config, device, path, cache, harness)
  assert here.name == 'measured:mine'
  # The device file's rows are measurements already.
  np.testing.assert_allclose(here.arch_ms(device.archs[:5]),
                             device.latency_ms[:5])
  assert not harness.calls
  archs = _encoding().sample(np.random.default_rng(0), 6)
  batch = np.concatenate([archs, archs[:2]])  # repeats measured once
  np.testing.assert_allclose(here.arch_ms(batch), table.arch_ms(batch),
                             rtol=1e-5)  # divided by the references' drift
  assert [len(c) for c in harness.calls] == [6]
  assert here.arch_ms(archs[3]) == pytest.approx(table.arch_ms(archs[3]),
                                                 rel=1e-5)
  assert len(harness.calls) == 1
  summary = here.summary()
  assert (summary['sessions'], summary['architectures'],
          summary['measurements']) == (1, 6, 16)
  assert summary['drift_vs_device_file'] == [0.25]
  # A rerun resumes from the cache instead of measuring again.
  again = measured_here.MeasuredHere(config, device, path, cache, harness)
  np.testing.assert_allclose(again.arch_ms(archs), table.arch_ms(archs),
                             rtol=1e-5)
  assert len(harness.calls) == 1 and again.summary() == summary
  other = str(tmp_path / 'other.npz')
  file_measured_here(other)
  with pytest.raises(ValueError, match='measured_here.json: field '
                     'device_file'):
    measured_here.MeasuredHere(config, device, other, cache, harness)
  # The same path measured again: other latencies, the cache refused.
  remeasured = dataclasses.replace(device, latency_ms=1.1 * device.latency_ms)
  with pytest.raises(ValueError, match='measured_here.json: field '
                     'device_file_sha256 does not match'):
    measured_here.MeasuredHere(config, remeasured, path, cache, harness)
  # Measured with other harness settings: refused, naming them; the
  # number of verifying sessions is not one of them.
  config.measure.repeats_per_round += 1
  with pytest.raises(ValueError, match=r'measured_here\.json: was started '
                     r'with another measure\.repeats_per_round'):
    measured_here.MeasuredHere(config, device, path, cache, harness)
  config.measure.repeats_per_round -= 1
  config.measure.verify_sessions += 1
  measured_here.MeasuredHere(config, device, path, cache, harness)


def test_drift_by_latency_interpolates_in_log_latency():
  from fbnet_jax import measured_here
  drift = measured_here.drift_by_latency(
      [0.5, 2.0, 4.0, 8.0, 30.0], reference_level=8.0, reference_drift=1.1,
      anchor_level=2.0, anchor_drift=1.4)
  # Anchors' drift at and below their level, the references' at and above
  # theirs, the geometric mean halfway in log latency.
  np.testing.assert_allclose(drift, [1.4, 1.4, np.sqrt(1.4 * 1.1), 1.1, 1.1])
  np.testing.assert_allclose(measured_here.drift_by_latency(
      [1.0, 9.0], 2.0, 1.1, 3.0, 1.4), [1.1, 1.1])  # anchors not faster


def test_measured_here_anchors_correct_the_fast_end(
    tmp_path, file_measured_here):
  from fbnet_jax import measured_here
  config = evolve_quick.get_config('smoke')
  path = str(tmp_path / 'mine.npz')
  device = file_measured_here(path)
  table = latency_lib.lookup_table_latency('raspi4')
  refs = device.archs[device.reference_rows()]
  anchors = measured_here.anchor_archs(spaces.get_space('fbnet'), 4)
  assert len(anchors) == 4
  low = float(np.median(table.arch_ms(anchors)))
  high = float(np.median(table.arch_ms(refs)))
  assert low < 0.6 * high  # the anchors are the fast end
  rng = np.random.default_rng(0)
  fast = np.where(rng.random((12, 22)) < 0.85, 8, _encoding().sample(rng, 12))
  errors = {}
  for num_anchors in (0, 4):
    harness = _StandInHarness(table, refs, low, high)
    # First session: uniformly 25% slow (it sets the anchors' baseline);
    # second: the fast end 40% slow, the references' level 10%.
    harness.drifts = [(1.25, 1.25), (1.4, 1.1)]
    cache = str(tmp_path / f'here_{num_anchors}.json')
    here = measured_here.MeasuredHere(config, device, path, cache, harness,
                                    num_anchors=num_anchors)
    first = _encoding().sample(rng, 3)
    np.testing.assert_allclose(here.arch_ms(first), table.arch_ms(first),
                               rtol=1e-4)
    errors[num_anchors] = np.abs(here.arch_ms(fast) / table.arch_ms(fast) - 1)
    assert [len(c) for c in harness.calls] == [3 + num_anchors,
                                               12 + num_anchors]
    summary = here.summary()
    assert summary['anchors'] == num_anchors
    if num_anchors:
      # Their baseline is on the device file's scale, like the references.
      assert summary['anchor_drift'][0] == pytest.approx(0.25, abs=1e-6)
      assert summary['anchor_drift'][1] == pytest.approx(0.4, abs=0.05)
      # The cache keeps the anchors' baseline; other anchors are refused.
      again = measured_here.MeasuredHere(config, device, path, cache, harness,
                                       num_anchors=4)
      np.testing.assert_allclose(again.arch_ms(fast), here.arch_ms(fast))
      with pytest.raises(ValueError, match='field anchors holds 4 other'):
        measured_here.MeasuredHere(config, device, path, cache, harness,
                                 num_anchors=2)
  # The references' drift alone leaves the fast networks about 1.4 / 1.1
  # off; with the anchors they are within a few percent.
  assert np.median(errors[0]) > 0.15
  assert np.max(errors[4]) < 0.05
  # The front re-measured after the search: in a session of the loop's
  # harness, divided by the same drift model.
  config.latency.source = 'predictor'
  config.latency.device_file = path
  front = latency_loop.FrontMeasurement(config)
  front.harness = here
  harness.drifts.append((1.3, 1.05))
  points = [{'arch_index': a.tolist()} for a in fast[:3]]
  kept = evolve_report.measure_points(points, front)
  assert kept['anchor_drift'] == pytest.approx(0.3, abs=0.05)
  for p, a in zip(points, fast[:3]):
    assert p['measured_vs_anchors_ms'] == pytest.approx(
        float(table.arch_ms(a)), rel=0.05)
    assert p['measured_latency_ms'] > 1.15 * p['measured_vs_anchors_ms']
    # Against the references alone: the session's one drift factor.
    assert p['measured_vs_references_ms'] == pytest.approx(
        p['measured_latency_ms'] / (1 + kept['drift_vs_device_file']))


def test_measured_here_serves_ofa_architectures(tmp_path,
                                                 file_measured_here):
  from fbnet_jax import measured_here
  config = evolve_quick.get_config('smoke')
  config.space = 'ofa'
  path = str(tmp_path / 'ofa_here.npz')
  device = file_measured_here(path, space='ofa', device='titan_rtx_64')
  calls = []

  def harness(config, archs, device):  # 2 ms per unit of choice index
    calls.append(len(archs))
    return {'measured_ms': (2.0 * archs.sum(1)).tolist(),
            'drift_vs_device_file': 0.0, 'measured': 10 + len(archs),
            'seconds': 1.0}

  here = measured_here.MeasuredHere(config, device, path, measure_fn=harness)
  np.testing.assert_allclose(here.arch_ms(device.archs[:3]),
                             device.latency_ms[:3], rtol=1e-6)
  archs = spaces.get_space('ofa').sample(np.random.default_rng(0), 4)
  np.testing.assert_allclose(here.arch_ms(archs), 2.0 * archs.sum(1))
  assert calls == [4]


def test_config_errors_before_the_supernet_trains(tmp_path):
  config = evolve_quick.get_config('smoke')
  evolve.check_config(config)
  for field, value, message in (
      ('predictor', 'GBRT', r"predictor: expected one of \('ridge', 'gbrt'\)"),
      ('latency_probes', -1,
       'latency_probes: expected a whole number >= 0, got -1'),
      ('initial', 1, 'initial: expected a whole number >= 2, got 1'),
      ('initial', 10 ** 6, 'initial: expected at most the budget'),
      ('pop_size', 3, 'pop_size: expected a whole number >= 4, got 3'),
      ('random_budget', 1, r'random_budget: expected >= budget \(\d+\), or 0'),
      ('measure_latency', True, "expected config.latency.source='predictor'"),
      ('dnas_result', str(tmp_path / 'reslt.json'), 'reslt.json: no such file'),
      ('seeds', (0, -1), 'evolve.seeds: expected a whole number >= 0, got -1'),
  ):
    bad = evolve_quick.get_config('smoke')
    bad.evolve[field] = value
    with pytest.raises(ValueError, match=message):
      evolve.check_config(bad)
  bad = evolve_quick.get_config('smoke')
  bad.latency.source = 'predictor'
  bad.evolve.update(measure_latency=True, latency_residual='Ridge')
  with pytest.raises(ValueError, match="latency_residual: expected one of"):
    evolve.check_config(bad)
  other = tmp_path / 'nb201.json'
  other.write_text(json.dumps({'space': 'nasbench201', 'arch_index': [0] * 6}))
  bad = evolve_quick.get_config('smoke')
  bad.evolve.dnas_result = str(other)
  with pytest.raises(ValueError, match="nb201.json: field space is "
                     "'nasbench201', the config's is 'fbnet'"):
    evolve.check_config(bad)


def test_latency_in_the_loop_measures_here_with_a_device_file(
    tmp_path, file_measured_here):
  config = evolve_quick.get_config('smoke')
  config.latency.source = 'predictor'
  config.latency.device_file = str(tmp_path / 'mine.npz')
  config.evolve.measure_latency = True
  file_measured_here(config.latency.device_file, batch_size=8)
  with pytest.raises(ValueError, match=r'field batch_size is 8.*would use 1'):
    evolve.check_config(config)  # before the supernet trains
  file_measured_here(config.latency.device_file)
  evolve.check_config(config)
  config.evolve.anchors = 11
  with pytest.raises(ValueError, match='expected 0..10 anchor'):
    evolve.check_config(config)
  config.evolve.anchors = 4
  evolve.check_config(config)
  config.evolve.measure_latency = False  # anchors serve the loop only
  with pytest.raises(ValueError, match='only serve latency measured here'):
    evolve.check_config(config)
  config.evolve.update(measure_latency=True, anchors=0)
  model = latency_lib.latency_source(config)
  table = latency_lib.lookup_table_latency('raspi4')
  harness = _StandInHarness(table)
  loop = latency_loop.LatencyInTheLoop(config, model, measure_fn=harness)
  assert loop.measures_here and loop.measured.name == 'measured:mine'
  assert len(loop.support.archs) == 20  # references + num_samples
  # Skip-heavy networks, as on the fast end of a front: the re-adapted
  # predictor learns what the harness measured.
  space, rng = model.space, np.random.default_rng(0)
  archs = np.where(rng.random((32, 22)) < 0.9, 8, space.sample(rng, 32))
  exact = table.arch_ms(archs[16:])
  before = np.abs(model.arch_ms(archs[16:]) / exact - 1)
  after = np.abs(loop(archs[:16])(archs[16:]) / exact - 1)
  assert [len(c) for c in harness.calls] == [16]
  assert np.median(after) < min(0.05, 0.5 * np.median(before))
  config.space = 'nasbench201'
  with pytest.raises(ValueError, match='fbnet and ofa'):
    latency_loop.LatencyInTheLoop(config, model, measure_fn=harness)


def test_random_sessions_are_cut_where_guided_rounds_ended():
  assert evolve_report.session_ends(48, [16, 24, 32, 40, 48], 8) == [
      16, 24, 32, 40, 48]
  assert evolve_report.session_ends(64, [16, 24, 32, 40, 48], 8) == [
      16, 24, 32, 40, 48, 56, 64]
  assert evolve_report.session_ends(20, [16, 24], 8) == [16, 20]
  assert evolve_report.session_ends(10, [], 4) == [4, 8, 10]


def test_report_with_latency_measured_here(
    tmp_path, file_measured_here):
  """Latency in the loop on this machine: the fronts and the hypervolume
  use the harness's measurements (random search's architectures measured
  too), and the report says what was measured."""
  from fbnet_jax import measured_here
  config = evolve_quick.get_config('smoke')
  config.latency.source = 'predictor'
  path = config.latency.device_file = str(tmp_path / 'mine.npz')
  device = file_measured_here(path)
  table = latency_lib.lookup_table_latency('raspi4')
  harness = _StandInHarness(table)
  here = measured_here.MeasuredHere(config, device, path, measure_fn=harness)
  low = table.with_params(jax.tree.map(lambda x: 0.8 * x, table.params))
  encoding, _, runs = _smoke_runs(config, low.arch_ms)
  guided, random = runs['guided'][0], runs['random'][0]
  # The loop measures guided's rounds as it goes, all but the last.
  for end in guided.iteration_ends[:-1]:
    here.arch_ms(np.stack(guided.archs[:end]))
  during = len(harness.calls)
  assert [len(c) for c in harness.calls] == list(np.diff(
      [0] + guided.iteration_ends[:-1]))
  summary = evolve_report.write_results(
      str(tmp_path), config, encoding.space, low, here,
      pareto.HypervolumeIndicator(60.0), runs, _Evaluator(), None, None, {},
      support_size=20, harness=here)
  evaluated = {a.tobytes() for h in runs.values() for a in h[0].archs}
  loop = summary['measured_in_the_loop']
  assert len(harness.calls) == loop['sessions']
  assert loop['architectures'] == len(evaluated)
  assert loop['measurements'] == 10 * loop['sessions'] + len(evaluated)
  # Random's new architectures in sessions cut where guided's rounds ended
  # (never one large session), then guided's last round alone.
  ends = evolve_report.session_ends(len(random.archs), guided.iteration_ends,
                                    config.evolve.per_iteration)
  seen = {a.tobytes() for a in guided.archs[:guided.iteration_ends[-2]]}
  want = []
  for start, end in zip([0] + ends[:-1], ends):
    new = {a.tobytes() for a in random.archs[start:end]} - seen
    seen |= new
    want += [len(new)] if new else []
  last = {a.tobytes() for a in guided.archs} - seen
  want += [len(last)] if last else []
  assert [len(c) for c in harness.calls[during:]] == want
  assert max(want) <= config.evolve.per_iteration
  assert summary['latency_of_evaluated'] == 'measured:mine'
  assert summary['lut_agreement'] is None  # a device file has no table
  for p in json.load(open(tmp_path / 'front.json')):
    assert p['latency_ms'] == pytest.approx(
        float(table.arch_ms(np.asarray(p['arch_index']))), rel=1e-5)
    assert p['predicted_latency_ms'] == pytest.approx(0.8 * p['latency_ms'],
                                                      rel=1e-5)
  for r in summary['prediction_error_by_round']['0']:
    assert r['mean'] == pytest.approx(-0.2, rel=1e-4)


def test_latency_probes_measure_candidates_before_evaluating_them():
  encoding = _encoding()
  latency_fn, accuracy_fn = _synthetic()
  cfg = evolve_quick.get_config().evolve
  cfg.budget, cfg.initial, cfg.per_iteration = 16, 8, 4
  cfg.pop_size, cfg.generations, cfg.latency_probes = 16, 5, 1
  calls = []

  def refine(archs):
    calls.append({a.tobytes() for a in archs})
    return lambda a, k=len(calls): latency_fn(a) * (1 + k)

  initial = nsga.unique_random(encoding, np.random.default_rng(0), 8)
  history = nsga.guided_search(accuracy_fn, latency_fn, encoding, cfg, 0,
                               initial, refine=refine)
  # Per round: the evaluated ones, then they + the round's 4 candidates.
  assert [len(c) for c in calls[::2]] == [8, 12]
  assert all(len(b - a) == 4 and a < b for a, b in zip(calls[::2],
                                                        calls[1::2]))
  assert len(calls) == 4
  # Each round's architectures were all probed, and keep the prediction of
  # the re-adaptation before their probe (calls 1 and 3), not the one that
  # had seen their measurement (calls 2 and 4).
  archs = np.stack(history.archs)
  probed = {a.tobytes() for a in history.probed}
  assert all(a.tobytes() in probed for a in archs[8:])
  want = latency_fn(archs) * np.repeat([1, 2, 4], [8, 4, 4])
  np.testing.assert_allclose(history.predicted_ms, want, rtol=1e-6)


def test_console_summary_prints_every_agreement_of_the_measured_front():
  agree = lambda worst, med: {'max_relative_error': worst,
                              'median_relative_error': med}
  summary = {k: None for k in (
      'latency_source', 'final_hypervolume',
      'guided_evaluations_to_reach_random_at_budget',
      'guided_evaluations_to_reach_random_final', 'speedup_at_random_final',
      'speedup_at_random_final_round_end', 'front_hypervolume',
      'latency_predictions_per_s', 'lut_agreement', 'seconds')}
  summary['by_budget'] = []
  summary['measured_agreement'] = {
      'device': 'here', 'raw': agree(0.2, 0.1),
      'vs_references': agree(0.08, 0.03), 'vs_anchors': agree(0.04, 0.02),
      'drift_vs_device_file': 0.12, 'measured': 30, 'seconds': 61.0}
  printed = evolve_report.console_summary(summary)
  assert ('max 20.0% (median 10.0%); the references moved +12.0% since the '
          'device file, against them max 8.0% (median 3.0%); against the '
          'anchors max 4.0% (median 2.0%); 30 measurements, 61 s') in printed
  summary['measured_agreement']['vs_anchors'] = None  # a loop without anchors
  assert 'anchors' not in evolve_report.console_summary(summary)


def test_validation_uses_at_most_its_limit_of_images():
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  config = evolve_quick.get_config('smoke')  # batches of 16
  searcher = searcher_lib.Searcher(config)
  state = searcher.init_state()
  for limit, expected in ((10, 10), (40, 40), (None, 288)):
    evaluator = evolve.SupernetEvaluator(searcher, state, limit)
    assert evaluator.num_images == expected
    assert sum(float(b['mask'].sum()) for b in evaluator._batches) == expected


def test_budget_comparison_hand_checked():
  """Random needs 1, 3 and 6 evaluations to reach guided's hypervolume
  after 1, 2 and 3; where it never does, the factor is only a lower bound
  (random's budget over guided's)."""
  guided = [[1, .1], [2, .4], [3, .5]]
  random = [[1, .1], [2, .2], [3, .4], [4, .4], [5, .45], [6, .5]]
  rows = evolve_report.budget_comparison(guided, random, [1, 2, 3], 6)
  assert [(r['random_evaluations_to_match'], r['factor'],
           r['factor_at_least']) for r in rows] == [
               (1, 1., 1.), (3, 1.5, 1.5), (6, 2., 2.)]
  assert [(r['guided_hv'], r['random_hv']) for r in rows] == [
      (.1, .1), (.4, .2), (.5, .4)]
  (row,) = evolve_report.budget_comparison([[1, .1], [2, .6]], random, [2], 6)
  assert row['random_evaluations_to_match'] is None and row['factor'] is None
  assert row['factor_at_least'] == 3.


def test_seed_comparison_hand_checked():
  """Seed 0 as in the budget comparison above; seed 1's guided search is
  slower (random needs only 2 evaluations for its 2-evaluation front)."""
  random = [[1, .1], [2, .2], [3, .4], [4, .4], [5, .45], [6, .5]]
  per_seed = {'guided': {'0': [[1, .1], [2, .4], [3, .5]],
                         '1': [[1, .1], [2, .2], [3, .5]]},
              'random': {'0': random, '1': random}}
  out = evolve_report.seed_comparison(per_seed, [1, 2, 3], 6)
  assert out['0']['factor_at_least'] == {'1': 1., '2': 1.5, '3': 2.}
  assert out['1']['factor_at_least'] == {'1': 1., '2': 1., '3': 2.}
  # Random reaches its final 0.5 at 6; guided at 3 in both seeds.
  for seed in '01':
    assert out[seed]['guided_evaluations_to_reach_random_final'] == 3
    assert out[seed]['speedup_at_random_final'] == 2.
    assert out[seed]['target_factor_4x_met'] is False
    assert out[seed]['guided_round_end_to_reach_random_final'] == 3


def test_round_end_crossing_reads_the_ends_of_rounds_only():
  """Random first reaches its final 0.5 after 8; guided crosses it at its
  5th evaluation, inside the round that ends at 6: 8 / 5 read anywhere,
  8 / 6 at the round's end; never reached at a round end, None."""
  random = [[n, min(.5, .1 * n)] for n in range(1, 9)]
  random[-4:] = [[n, .45] for n in (5, 6, 7)] + [[8, .5]]
  guided = [[1, .1], [2, .2], [3, .3], [4, .3], [5, .5], [6, .55]]
  assert evolve_report.random_final_crossing(guided, random) == (5, 8 / 5)
  assert evolve_report.round_end_crossing(guided, random, [2, 4, 6]) == (
      6, 8 / 6)
  assert evolve_report.round_end_crossing(guided, random, [2, 4]) == (
      None, None)
  # Equal up to rounding counts as reached, as evaluations_to_reach has it.
  assert evolve_report.round_end_crossing(
      [[1, .1], [2, .5 - 1e-14]], [[1, .2], [2, .5]], [2]) == (2, 1.)


def test_front_hypervolumes_by_validation_and_test():
  indicator = pareto.HypervolumeIndicator(10.0)
  fronts = {'guided': [{'latency_ms': 2.0, 'accuracy': .9, 'test_accuracy': .8}],
            'random': [{'latency_ms': 5.0, 'accuracy': .9}]}
  out = evolve_report.front_hypervolumes(fronts, indicator)
  assert out['guided'] == {'validation': indicator([2.0], [.9]),
                           'test': indicator([2.0], [.8])}
  assert out['guided']['test'] < out['guided']['validation']
  assert out['random'] == {'validation': indicator([5.0], [.9])}  # no test
