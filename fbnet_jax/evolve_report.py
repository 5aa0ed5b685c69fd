"""What the evolutionary search writes: fronts, hypervolume curves, summary
and plots (matplotlib, Agg backend).

Files in the workdir:

- ``front.json``: the guided search's front, non-dominated among its fully
  evaluated architectures (all seeds): ``[{"arch": [op names],
  "latency_ms", "accuracy", ...}]`` sorted by latency; ``accuracy`` is the
  supernet's validation accuracy, ``test_accuracy`` the held-out one.
- ``fronts.json``: both strategies' fronts and the DNAS points, if any.
- ``evaluations.json``: every full evaluation, per strategy and seed, in
  order.
- ``hypervolume.json``: ``{"guided": [[evaluations, hv], ...], "random":
  [...]}`` (mean over seeds) and the per-seed curves.
- ``summary.json``, ``front.png``, ``hypervolume.png``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections
import numpy as np

from fbnet_jax import latency as latency_lib
from fbnet_jax import pareto
from fbnet_jax import workdirs

STRATEGIES = ('guided', 'random')


def latency_throughput(model: latency_lib.LatencyModel, archs) -> float:
  """Predictions per second of ``model.arch_ms`` after compilation."""
  model.arch_ms(archs)
  t0 = time.perf_counter()
  model.arch_ms(archs)
  return len(archs) / (time.perf_counter() - t0)


def front_entries(space, archs, latency_ms, accuracy) -> list[dict]:
  """The non-dominated (latency, -accuracy) points, sorted by latency;
  duplicates of one architecture appear once."""
  archs = np.asarray(archs)
  _, first = np.unique(archs, axis=0, return_index=True)
  first = np.sort(first)
  lat = np.asarray(latency_ms, np.float64)[first]
  acc = np.asarray(accuracy, np.float64)[first]
  rows = pareto.non_dominated(np.stack([lat, -acc], 1))
  rows = rows[np.argsort(lat[rows], kind='stable')]
  return [{'arch': space.names(archs[first[r]]),
           'arch_index': [int(a) for a in archs[first[r]]],
           'latency_ms': float(lat[r]), 'accuracy': float(acc[r])}
          for r in rows]


def mean_curve(curves: list[list]) -> list[list]:
  """Mean over seeds of equally long [[n, hv], ...] curves."""
  values = np.mean([[hv for _, hv in c] for c in curves], axis=0)
  return [[int(n), float(v)] for (n, _), v in zip(curves[0], values)]


def budget_comparison(guided: list, random: list, budgets: list,
                      random_budget: int) -> list[dict]:
  """For each guided budget: both hypervolumes, and how many random
  evaluations reach guided's hypervolume (the factor ``n / budget``; a
  lower bound ``random_budget / budget`` when random never reaches it)."""
  at = lambda curve, n: curve[min(n, len(curve)) - 1][1]
  rows = []
  for b in budgets:
    needed = pareto.evaluations_to_reach(random, at(guided, b))
    rows.append({
        'evaluations': int(b), 'guided_hv': at(guided, b),
        'random_hv': at(random, b), 'random_evaluations_to_match': needed,
        'factor': None if needed is None else needed / b,
        'factor_at_least': (random_budget / b if needed is None else
                            needed / b)})
  return rows


def random_final_crossing(guided: list, random: list) -> tuple:
  """(guided evaluations to reach random's final hypervolume, how many
  times fewer that is than random itself first reached it with); (None,
  None) when guided never reaches it."""
  final = pareto.evaluations_to_reach(guided, random[-1][1])
  if not final:
    return final, None
  return final, pareto.evaluations_to_reach(random, random[-1][1]) / final


def round_end_crossing(guided: list, random: list, budgets: list) -> tuple:
  """:func:`random_final_crossing` read at the ends of guided's rounds
  (``budgets``) only. Within a round the candidates are evaluated fastest
  first, and the fastest adds the most hypervolume, so a crossing read
  mid-round is earlier than a search stopped at that count would have it
  (a search stopped there picks fewer candidates, spread over its front)."""
  target = random[-1][1]
  at = lambda n: guided[min(n, len(guided)) - 1][1]
  final = next((int(b) for b in budgets  # evaluations_to_reach's tolerance
                if at(b) >= target - 1e-12), None)
  if final is None:
    return None, None
  return final, pareto.evaluations_to_reach(random, target) / final


def factor_4x_met(rows: list):
  """Whether every budget from the second on (the first is the shared
  random start, before guided has searched) has ``factor_at_least`` >= 4;
  None with one budget (nothing to test)."""
  return all(r['factor_at_least'] >= 4 for r in rows[1:]) if rows[1:] else None


def seed_comparison(per_seed: dict, budgets: list, random_budget: int
                    ) -> dict:
  """:func:`budget_comparison` seed by seed (guided seed s against random
  seed s, which start from the same architectures), and each seed's
  speed-up at its random search's final hypervolume: the mean curves'
  crossing can hide how far the seeds are apart."""
  out = {}
  for seed, guided in per_seed['guided'].items():
    random = per_seed['random'][seed]
    rows = budget_comparison(guided, random, budgets, random_budget)
    final, speedup = random_final_crossing(guided, random)
    round_end, round_speedup = round_end_crossing(guided, random, budgets)
    out[seed] = {
        'factor_at_least': {str(r['evaluations']): r['factor_at_least']
                            for r in rows},
        'guided_evaluations_to_reach_random_final': final,
        'speedup_at_random_final': speedup,
        'guided_round_end_to_reach_random_final': round_end,
        'speedup_at_random_final_round_end': round_speedup,
        'target_factor_4x_met': factor_4x_met(rows)}
  return out


def agreement(reported, exact) -> dict:
  """Relative errors of ``reported`` latencies against ``exact`` ones."""
  errors = np.asarray(reported, np.float64) / np.asarray(exact) - 1
  return {'relative_errors': errors.tolist(),
          'max_relative_error': float(np.abs(errors).max()),
          'median_relative_error': float(np.median(np.abs(errors))),
          'within_10_percent': bool(np.abs(errors).max() <= 0.10)}


def measure_points(points: list, measure) -> dict:
  """Measures ``points`` (front or DNAS entries) with ``measure``
  (``latency_loop.FrontMeasurement``), adds ``measured_latency_ms`` and
  ``measured_vs_references_ms`` (divided by the references' drift since the
  device file; without anchors each is the median over the verifying
  sessions; with anchors also ``measured_vs_anchors_ms``, divided by
  ``measured_here.drift_by_latency``) to each, and returns the measurement's
  bookkeeping."""
  check = measure(np.stack([np.asarray(p['arch_index']) for p in points]))
  for i, (p, ms) in enumerate(zip(points, check['measured_ms'])):
    p['measured_latency_ms'] = float(ms)
    p['measured_vs_references_ms'] = float(
        check['measured_vs_references_ms'][i])
    if check.get('anchor_drift') is not None:
      p['measured_vs_anchors_ms'] = float(check['scaled_ms'][i])
  return {**{k: check.get(k) for k in ('drift_vs_device_file', 'anchor_drift',
                                       'measured', 'seconds')},
          # Each verifying session's measurements and references' drift.
          'verify_sessions': check.get('sessions')}


def _dominated(point: dict, front: list, key: str) -> bool:
  """Whether an entry of ``front`` at no more latency than ``point`` and
  no less ``key`` (accuracy) is better in one of the two."""
  return any(e['latency_ms'] <= point['latency_ms'] and e[key] >= point[key]
             and (e['latency_ms'] < point['latency_ms'] or e[key] > point[key])
             for e in front)


def front_hypervolumes(fronts: dict, indicator: pareto.HypervolumeIndicator
                       ) -> dict:
  """Each strategy's front's hypervolume by ``accuracy`` (validation: what
  the fronts were selected on) and, where every entry has it, by
  ``test_accuracy`` (held out: the same architectures, judged fairly)."""
  out = {}
  for name in STRATEGIES:
    front = fronts[name]
    lat = [e['latency_ms'] for e in front]
    out[name] = {'validation': indicator(lat, [e['accuracy'] for e in front])}
    if front and all('test_accuracy' in e for e in front):
      out[name]['test'] = indicator(lat, [e['test_accuracy'] for e in front])
  return out


def dnas_comparison(dnas: list, front: list,
                    indicator: pareto.HypervolumeIndicator,
                    seed_fronts: Optional[dict] = None) -> dict:
  """Each DNAS point against the guided front (both fully evaluated with
  the same supernet): the front's best accuracy at no more latency, and
  whether a front architecture dominates the point, by validation
  accuracy (which the guided search selected its front on, so it favours
  the front) and, where both have it, by held-out ``test_accuracy``.
  ``front`` pools the seeds (their budgets added); ``seed_fronts``, each
  seed's own front, gives how many points each seed alone dominates
  (validation), the comparison at one search's budget."""
  rows = []
  for p in dnas:
    faster = [e for e in front if e['latency_ms'] <= p['latency_ms']]
    best = max((e['accuracy'] for e in faster), default=None)
    row = {'target_ms': p.get('target_ms'), 'latency_ms': p['latency_ms'],
           'accuracy': p['accuracy'],
           'front_best_accuracy_at_or_below': best,
           'dominated_by_guided_front': _dominated(p, front, 'accuracy')}
    if 'test_accuracy' in p and all('test_accuracy' in e for e in front):
      row['test_accuracy'] = p['test_accuracy']
      row['dominated_by_guided_front_on_test'] = _dominated(
          p, front, 'test_accuracy')
    rows.append(row)
  out = {'points': rows,
         'hypervolume': indicator([p['latency_ms'] for p in dnas],
                                  [p['accuracy'] for p in dnas]),
         'dominated': sum(r['dominated_by_guided_front'] for r in rows)}
  if rows and all('dominated_by_guided_front_on_test' in r for r in rows):
    out['dominated_on_test'] = sum(r['dominated_by_guided_front_on_test']
                                   for r in rows)
  if seed_fronts:
    out['dominated_by_seed'] = {
        seed: sum(_dominated(p, f, 'accuracy') for p in dnas)
        for seed, f in seed_fronts.items()}
  return out


def _hypervolume_curves(runs: dict, arch_ms, indicator
                        ) -> tuple[dict, dict]:
  """Per strategy, each seed's hypervolume curve with latencies from
  ``arch_ms`` (``{name: {seed: curve}}``), and their mean curves."""
  per_seed = {name: {str(seed): pareto.hypervolume_curve(
      h.archs, h.accuracy, arch_ms, indicator)
                     for seed, h in runs[name].items()}
              for name in STRATEGIES}
  return per_seed, {name: mean_curve(list(per_seed[name].values()))
                    for name in STRATEGIES}


def _final_hypervolumes(curves: dict, budget: int) -> dict:
  """Both strategies at the guided budget, and random at its own."""
  return {'guided': curves['guided'][budget - 1][1],
          'random': curves['random'][budget - 1][1],
          'random_at_random_budget': curves['random'][-1][1]}


def prediction_error_by_round(histories: dict,
                              measured: latency_lib.LatencyModel) -> dict:
  """``{seed: [{'evaluations', 'median_abs', 'max_abs', 'mean'}, ...]}``:
  relative error of each round's latencies as predicted when chosen,
  against their measurement."""
  out = {}
  for seed, h in histories.items():
    err = (np.asarray(h.predicted_ms) /
           measured.arch_ms(np.stack(h.archs)) - 1)
    rows, start = [], 0
    for end in h.iteration_ends:
      e = err[start:end]
      rows.append({'evaluations': int(end),
                   'median_abs': float(np.median(np.abs(e))),
                   'max_abs': float(np.abs(e).max()), 'mean': float(e.mean())})
      start = end
    out[str(seed)] = rows
  return out


def session_ends(n: int, guided_ends: list, per_iteration: int) -> list:
  """Where random search's ``n`` evaluations are cut into measuring
  sessions: at guided's round ends, then every ``per_iteration``."""
  ends = [e for e in guided_ends if e < n]
  start = ends[-1] if ends else 0
  ends += list(range(start + per_iteration, n, per_iteration))
  return ends + [n]


def measure_like_guided(harness, runs: dict, per_iteration: int) -> None:
  """Measures every evaluated architecture on this machine, random
  search's in sessions of the sizes guided's rounds were measured in.

  The guided search measured its evaluations round by round (16, then 8 at
  a time) while it ran; what else a session times moves a network's
  latency here by a few percent, so random's are not timed in one large
  session: per seed, in sessions cut where guided's rounds ended (its
  initial architectures are guided's, measured already), then guided's
  last round, never measured during the search, alone.
  """
  for seed, history in runs['random'].items():
    guided = runs['guided'].get(seed)
    ends = session_ends(len(history.archs),
                        guided.iteration_ends if guided else [],
                        per_iteration)
    for start, end in zip([0] + ends[:-1], ends):
      harness.arch_ms(np.stack(history.archs[start:end]))
  for history in runs['guided'].values():
    harness.arch_ms(np.stack(history.archs))


def write_json(workdir: str, name: str, value) -> None:
  workdirs.write_json(os.path.join(workdir, name), value)


def plot_front(workdir: str, points: dict, fronts: dict,
               dnas: Optional[list], latency_name: str) -> None:
  """``front.png``: evaluated points and fronts of both strategies."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors = {'guided': 'tab:blue', 'random': 'tab:orange'}
  for name in STRATEGIES:
    lat, acc = points[name]
    ax.scatter(lat, acc, s=12, alpha=0.35, color=colors[name],
               label=f'{name}: evaluated ({len(lat)})')
    front = fronts[name]
    ax.step([p['latency_ms'] for p in front], [p['accuracy'] for p in front],
            where='post', marker='o', ms=4, color=colors[name],
            label=f'{name}: front ({len(front)})')
  # The guided front's other latencies, where they differ: the prediction
  # made before measuring (latency in the loop), the lookup table's value
  # of a predicted front, its measurement on this machine.
  for other, label, marker in (
      ('predicted_latency_ms', 'guided front: predicted before measuring',
       'o'),
      ('lut_latency_ms', 'guided front: lookup table', 's'),
      ('measured_latency_ms', 'guided front: measured here', 'D')):
    pairs = [(p['latency_ms'], p[other], p['accuracy'])
             for p in fronts['guided'] if other in p]
    if not pairs or all(abs(a / b - 1) <= 1e-4 for a, b, _ in pairs):
      continue
    for a, b, acc in pairs:
      ax.plot([a, b], [acc, acc], color='0.5', lw=0.8, zorder=1)
    ax.scatter([b for _, b, _ in pairs], [acc for _, _, acc in pairs],
               s=28, marker=marker, facecolors='none', edgecolors='tab:blue',
               zorder=4, label=label)
  if dnas:
    ax.scatter([p['latency_ms'] for p in dnas], [p['accuracy'] for p in dnas],
               marker='*', s=120, color='tab:red', label='DNAS', zorder=5)
    here = [p for p in dnas if 'measured_latency_ms' in p]
    for p in here:
      ax.plot([p['latency_ms'], p['measured_latency_ms']],
              [p['accuracy']] * 2, color='tab:red', lw=0.8, zorder=1)
    if here:
      ax.scatter([p['measured_latency_ms'] for p in here],
                 [p['accuracy'] for p in here], marker='*', s=120,
                 facecolors='none', edgecolors='tab:red', zorder=5,
                 label='DNAS: measured here')
  ax.set_xlabel(f'latency (ms, {latency_name})')
  ax.set_ylabel('supernet accuracy (validation)')
  ax.set_title('fully evaluated architectures and their Pareto fronts')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'front.png'), dpi=110)
  plt.close(fig)


def plot_hypervolume(workdir: str, curves: dict, per_seed: dict) -> None:
  """``hypervolume.png``: hypervolume against full evaluations."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors = {'guided': 'tab:blue', 'random': 'tab:orange'}
  for name in STRATEGIES:
    for curve in per_seed[name].values():
      ax.plot(*np.asarray(curve).T, color=colors[name], alpha=0.25, lw=0.8)
    ax.plot(*np.asarray(curves[name]).T, color=colors[name], lw=2,
            label=f'{name} (mean of {len(per_seed[name])} seeds)')
  ax.set_xlabel('full evaluations')
  ax.set_ylabel('hypervolume (normalised)')
  ax.set_title('hypervolume of the evaluated front')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'hypervolume.png'), dpi=110)
  plt.close(fig)


def write_results(workdir: str, config: ml_collections.ConfigDict, space,
                  latency: latency_lib.LatencyModel,
                  scoring: latency_lib.LatencyModel,
                  indicator: pareto.HypervolumeIndicator, runs: dict,
                  evaluator, dnas: Optional[list],
                  throughput: Optional[float], seconds: dict,
                  support_size: Optional[int] = None,
                  measure=None, harness=None) -> dict:
  """Fronts, hypervolume curves, LUT agreement, summary and plots.

  Args:
    workdir: output directory.
    config: the run's config.
    space: the search space.
    latency: the search's latency source.
    scoring: the latency of fully evaluated architectures (fronts and
      hypervolume): ``latency``, or the measurements of latency in the loop
      (``config.evolve.measure_latency``).
    indicator: the hypervolume with the run's fixed reference point.
    runs: ``{'guided' | 'random': {seed: nsga.History}}``.
    evaluator: ``evolve.SupernetEvaluator`` (test accuracy of the front).
    dnas: fully evaluated DNAS architectures, or None.
    throughput: latency predictions per second, or None.
    seconds: wall times so far.
    support_size: with latency in the loop, the measurements the predictor
      was first adapted on.
    measure: ``latency_loop.FrontMeasurement``
      (``config.evolve.measure_front``):
      the guided front and the DNAS points are measured on this machine.
    harness: with latency in the loop on this machine, ``scoring`` itself
      (``measured_here.MeasuredHere``), whose measuring sessions are
      summarised.

  Returns:
    The summary (also ``summary.json``).
  """
  cfg = config.evolve
  random_budget = cfg.get('random_budget') or cfg.budget
  if harness is not None:
    measure_like_guided(harness, runs, cfg.per_iteration)
  per_seed, curves = _hypervolume_curves(runs, scoring.arch_ms, indicator)
  fronts, points = _fronts_and_points(space, runs, scoring)
  measured = scoring is not latency
  # With latency in the loop the front's latencies are measurements; what
  # is checked against the table is then what the predictor said of each
  # front architecture before it was measured.
  compared = 'predicted_latency_ms' if measured else 'latency_ms'
  predicted = {}
  for h in runs['guided'].values():
    for arch, ms in zip(h.archs, h.predicted_ms):
      predicted.setdefault(arch.tobytes(), ms)
  by_round = prediction_error_by_round(runs['guided'], scoring) if (
      measured) else None
  lut = latency_lib.device_exact_table(config)
  exact_hv = None
  if lut is not None and not measured and latency.name != lut.name:
    # The latency source is a predictor that the guided search optimised,
    # so its errors can favour guided: the same curves, scored exactly.
    exact_hv = _exact_hypervolumes(runs, lut, indicator, cfg.budget)
  tester = evaluator if cfg.get('test_front') else None
  _annotate_front(fronts['guided'], space, lut,
                  predicted if measured else None, tester)
  if tester is not None:  # random's front too: both judged on held-out data
    _annotate_front(fronts['random'], space, None, None, tester)
  measured_here = None
  if measure is not None:
    t0 = time.time()
    measured_here = _measure_front(fronts['guided'], dnas, measure,
                                   compared, measured)
    seconds = {**seconds, 'measure_front': time.time() - t0}
  budgets = runs['guided'][cfg.seeds[0]].iteration_ends
  comparison = budget_comparison(curves['guided'], curves['random'],
                                 budgets, random_budget)
  to_random_final, speedup = random_final_crossing(curves['guided'],
                                                   curves['random'])
  round_end, round_speedup = round_end_crossing(
      curves['guided'], curves['random'], budgets)
  summary = {
      'space': config.space, 'dataset': config.data.name,
      'latency_source': latency.name,
      'latency_of_evaluated': scoring.name,
      # Every setting of the search and of its latency source (a rerun in
      # the same workdir with other ones overwrites these files).
      'evolve_config': workdirs.as_json(cfg.to_dict()),
      'latency_config': workdirs.as_json(config.latency.to_dict()),
      # With latency in the loop, the guided search's latency measurements
      # per seed: the predictor's support + every distinct architecture it
      # evaluated or probed.
      'latency_measurements': None if support_size is None else {
          str(seed): support_size + len(h.measured_keys())
          for seed, h in runs['guided'].items()},
      'ops': list(config.search.ops or space.units[0].choices),
      'seeds': list(cfg.seeds), 'budget': cfg.budget,
      'random_budget': random_budget, 'initial': cfg.initial,
      'per_iteration': cfg.per_iteration,
      'validation_images': evaluator.num_images,
      'ref_latency_ms': indicator.ref_latency_ms,
      'final_hypervolume': _final_hypervolumes(curves, cfg.budget),
      # A predictor-scored run on a device with an exact table: the same
      # evaluations' hypervolumes with the table's latencies (else None).
      'final_hypervolume_exact_latency': exact_hv,
      'guided_evaluations_to_reach_random_at_budget':
          pareto.evaluations_to_reach(curves['guided'],
                                      curves['random'][cfg.budget - 1][1]),
      'guided_evaluations_to_reach_random_final': to_random_final,
      # How many times fewer evaluations guided needs for random's final
      # hypervolume than random itself first reached it with (None: guided
      # never reaches it).
      'speedup_at_random_final': speedup,
      # The same at the ends of guided's rounds only (round_end_crossing).
      'guided_round_end_to_reach_random_final': round_end,
      'speedup_at_random_final_round_end': round_speedup,
      # Each strategy's front (pooled over seeds: guided's budget against
      # random's) by the validation accuracy it was selected on and by
      # held-out test accuracy (config.evolve.test_front).
      'front_hypervolume': front_hypervolumes(fronts, indicator),
      'by_budget': comparison,
      # The same, seed by seed (the mean curves average before crossing).
      'by_seed': seed_comparison(per_seed, budgets, random_budget),
      'target_factor_4x_met': factor_4x_met(comparison),
      'latency_predictions_per_s': throughput,
      'lut_agreement': None if lut is None else {
          'lut': lut.name, 'compared': compared,
          **agreement([p[compared] for p in fronts['guided']],
                      [p['lut_latency_ms'] for p in fronts['guided']])},
      # config.evolve.measure_front: the front's latencies against their
      # measurement on this machine, raw and relative to the references.
      'measured_agreement': measured_here,
      # With latency in the loop: the guided search's predictions against
      # the measurements, per round of full evaluations and seed.
      'prediction_error_by_round': by_round,
      # With latency in the loop on this machine: its harness sessions.
      'measured_in_the_loop': harness.summary() if harness else None,
      'front_size': len(fronts['guided']),
      'dnas': dnas_comparison(dnas, fronts['guided'], indicator,
                              _seed_fronts(space, runs['guided'], scoring))
              if dnas else None,
      'supernet_evaluations': evaluator.num_evaluations,
      # Of those, read back from an earlier run's store (not evaluated).
      'supernet_evaluations_read_back': evaluator.read_back,
      'seconds': seconds,
  }
  _write_files(workdir, fronts, dnas, curves, per_seed, indicator, runs,
               summary)
  plot_front(workdir, points, fronts, dnas, scoring.name)
  plot_hypervolume(workdir, curves, per_seed)
  return summary


def _fronts_and_points(space, runs: dict, scoring) -> tuple[dict, dict]:
  """Each strategy's front entries over all seeds, and its evaluated
  ``(latency, accuracy)`` points."""
  fronts, points = {}, {}
  for name in STRATEGIES:
    archs = np.concatenate([np.stack(h.archs) for h in runs[name].values()])
    acc = np.concatenate([h.accuracy for h in runs[name].values()])
    lat = scoring.arch_ms(archs)
    fronts[name] = front_entries(space, archs, lat, acc)
    points[name] = (lat, acc)
  return fronts, points


def _seed_fronts(space, histories: dict, scoring) -> dict:
  """Each seed's own front (validation accuracy), by seed."""
  out = {}
  for seed, h in histories.items():
    archs = np.stack(h.archs)
    out[str(seed)] = front_entries(space, archs, scoring.arch_ms(archs),
                                   h.accuracy)
  return out


def _exact_hypervolumes(runs: dict, lut, indicator, budget: int) -> dict:
  """The final hypervolumes with the exact table's latencies."""
  _, exact = _hypervolume_curves(runs, lut.arch_ms, indicator)
  return {'latency': lut.name, **_final_hypervolumes(exact, budget),
          'guided_evaluations_to_reach_random_final':
              random_final_crossing(exact['guided'], exact['random'])[0]}


def _annotate_front(front: list[dict], space, lut, predicted: Optional[dict],
                    evaluator) -> None:
  """Adds to each front entry its FLOPs, the prediction made before it
  was measured (``predicted``: with latency in the loop), its exact table
  latency (``lut``) and test accuracy (``evaluator``), where given."""
  for entry in front:
    arch = np.asarray(entry['arch_index'])
    entry['flops'] = space.flops(arch)
    if predicted is not None:
      entry['predicted_latency_ms'] = predicted[
          arch.astype(np.int32).tobytes()]
    if lut is not None:
      entry['lut_latency_ms'] = float(lut.arch_ms(arch))
    if evaluator is not None:
      entry['test_accuracy'] = evaluator.test(arch)


def _measure_front(front: list[dict], dnas: Optional[list], measure,
                   compared: str, measured: bool) -> dict:
  """``config.evolve.measure_front``: the front (and DNAS points) measured
  on this machine, and the front's latencies (``compared``) against it."""
  bookkeeping = measure_points(front + (dnas or []), measure)
  # The predictions against the new measurement: with latency measured in
  # the loop, the front's latency_ms is itself a measurement, and the
  # predictions the search made before measuring are predicted_latency_ms.
  out = {
      'device': measure.name, 'compared': compared,
      'raw': agreement([p[compared] for p in front],
                       [p['measured_latency_ms'] for p in front]),
      # The machine's own speed change since the device file divided out.
      'vs_references': agreement(
          [p[compared] for p in front],
          [p['measured_vs_references_ms'] for p in front]),
      # With anchors: divided by the loop's latency-dependent drift.
      'vs_anchors': agreement(
          [p[compared] for p in front],
          [p['measured_vs_anchors_ms'] for p in front]) if (
              bookkeeping['anchor_drift'] is not None) else None,
      **bookkeeping}
  if measured:  # and the loop's measurement against the new one, both on
    # the device file's scale (each divided by its session's drift)
    scaled = ('measured_vs_anchors_ms' if bookkeeping['anchor_drift']
              is not None else 'measured_vs_references_ms')
    out['loop_vs_remeasured'] = {
        'compared_with': scaled,
        **agreement([p['latency_ms'] for p in front],
                    [p[scaled] for p in front])}
  return out


def _write_files(workdir: str, fronts: dict, dnas: Optional[list],
                 curves: dict, per_seed: dict, indicator, runs: dict,
                 summary: dict) -> None:
  """``front.json``, ``fronts.json``, ``hypervolume.json``,
  ``evaluations.json`` and ``summary.json``."""
  write_json(workdir, 'front.json', fronts['guided'])
  write_json(workdir, 'fronts.json', {**fronts, 'dnas': dnas})
  write_json(workdir, 'hypervolume.json', {
      **curves, 'per_seed': per_seed,
      'ref_latency_ms': indicator.ref_latency_ms})
  write_json(workdir, 'evaluations.json', {
      name: {str(seed): {'arch_index': [a.tolist() for a in h.archs],
                         'accuracy': h.accuracy,
                         'predicted_ms': h.predicted_ms,
                         'probed': [a.tolist() for a in h.probed],
                         'iteration_ends': h.iteration_ends}
             for seed, h in runs[name].items()}
      for name in STRATEGIES})
  write_json(workdir, 'summary.json', summary)


def console_summary(summary: dict) -> str:
  """What ``experiments.evolve`` prints: the headline numbers as JSON, then
  the measurements here (if any), the hypervolume by budget and the DNAS
  points."""
  lines = [json.dumps({k: summary[k] for k in (
      'latency_source', 'final_hypervolume',
      'guided_evaluations_to_reach_random_at_budget',
      'guided_evaluations_to_reach_random_final', 'speedup_at_random_final',
      'speedup_at_random_final_round_end', 'front_hypervolume',
      'latency_predictions_per_s', 'lut_agreement', 'seconds')}, indent=1)]
  here = summary.get('measured_agreement')
  if here:
    lines.append(
        f'front measured on {here["device"]}: predicted vs measured max '
        f'{100 * here["raw"]["max_relative_error"]:.1f}% (median '
        f'{100 * here["raw"]["median_relative_error"]:.1f}%); the '
        'references moved '
        f'{100 * here["drift_vs_device_file"]:+.1f}% since the device file, '
        'against them max '
        f'{100 * here["vs_references"]["max_relative_error"]:.1f}% (median '
        f'{100 * here["vs_references"]["median_relative_error"]:.1f}%); '
        + (f'against the anchors max '
           f'{100 * here["vs_anchors"]["max_relative_error"]:.1f}% (median '
           f'{100 * here["vs_anchors"]["median_relative_error"]:.1f}%); '
           if here.get('vs_anchors') else '') +
        f'{here["measured"]} measurements, {here["seconds"]:.0f} s')
  loop = summary.get('measured_in_the_loop')
  if loop:
    drift = loop['drift_vs_device_file']
    lines.append(
        f'latency in the loop on {loop["device"]}: {loop["architectures"]} '
        f'architectures measured in {loop["sessions"]} sessions '
        f'({loop["measurements"]} measurements with the references), '
        f'{loop["seconds"]:.0f} s; references {100 * min(drift):+.1f}% to '
        f'{100 * max(drift):+.1f}% since the device file')
  for row in summary['by_budget']:
    needed = row['random_evaluations_to_match']
    lines.append(
        f'{row["evaluations"]:4d} evaluations: hv guided '
        f'{row["guided_hv"]:.4f} random {row["random_hv"]:.4f}; random '
        + (f'needs {needed} (factor {row["factor"]:.2f})' if needed else
           f'never reaches it in {summary["random_budget"]} (factor >= '
           f'{row["factor_at_least"]:.2f})'))
  for p in (summary.get('dnas') or {}).get('points', []):
    best = p['front_best_accuracy_at_or_below']
    lines.append(
        f'DNAS for {p["target_ms"]} ms: {p["latency_ms"]:.2f} ms, '
        f'accuracy {p["accuracy"]:.4f}; guided front at <= that latency '
        f'{"-" if best is None else f"{best:.4f}"}'
        f'{" (dominated)" if p["dominated_by_guided_front"] else ""}')
  return '\n'.join(lines)
