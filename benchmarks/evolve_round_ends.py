r"""The "x fewer" of stored evolve runs, read anywhere and at round ends.

    python -m benchmarks.evolve_round_ends \
        [--runs=benchmarks/results/cpu_2026-12-05/evolve_quick_current,...] \
        [--out=benchmarks/results/cpu_2026-12-05/evolve_round_ends.json]

Each run is an ``experiments.evolve`` workdir (its ``hypervolume.json`` and
``summary.json``), or the prefix of a pair of files
``<prefix>_hypervolume.json`` / ``<prefix>_summary.json``. For each, the
guided search's evaluations to reach random search's final hypervolume
and the "x fewer" ratio, on the mean curves and seed by seed: read at any
evaluation (``evolve_report.random_final_crossing``, what the runs'
summaries report) and at the ends of guided's rounds only
(``evolve_report.round_end_crossing``; a round's candidates are evaluated
fastest first, so a mid-round reading is earlier than a search stopped
there would give). Also the largest ratio the rule can give: random's
evaluations to its final value over guided's first evaluation after the
shared initial population, and at round ends over guided's first round
end.
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import write_json
from fbnet_jax import evolve_report
from fbnet_jax import pareto

RESULTS = 'benchmarks/results'
_RUNS = flags.DEFINE_list('runs', [
    f'{RESULTS}/cpu_2026-12-03/evolve_quick_lut',
    f'{RESULTS}/cpu_2026-12-05/evolve_quick_current',
    f'{RESULTS}/cpu_2026-12-03/evolve_ofa_uniform_depth',
    f'{RESULTS}/cpu_2026-12-04/evolve_quick_long',
], 'Evolve workdirs or <prefix> of <prefix>_hypervolume.json files.')
_OUT = flags.DEFINE_string(
    'out', f'{RESULTS}/cpu_2026-12-05/evolve_round_ends.json', 'Result file.')


def _read(run: str, name: str) -> dict:
  path = (os.path.join(run, f'{name}.json') if os.path.isdir(run)
          else f'{run}_{name}.json')
  with open(path) as f:
    return json.load(f)


def crossings(guided: list, random: list, budgets: list) -> dict:
  anywhere = evolve_report.random_final_crossing(guided, random)
  round_end = evolve_report.round_end_crossing(guided, random, budgets)
  return {'anywhere': {'guided_evaluations': anywhere[0],
                       'x_fewer': anywhere[1]},
          'round_end': {'guided_evaluations': round_end[0],
                        'x_fewer': round_end[1]},
          'largest_possible_x_fewer': (
              pareto.evaluations_to_reach(random, random[-1][1]) /
              (budgets[0] + 1)),
          # At round ends: guided's first round after the shared start.
          'largest_possible_round_end_x_fewer': (
              pareto.evaluations_to_reach(random, random[-1][1]) /
              budgets[min(1, len(budgets) - 1)])}


def main(argv):
  del argv
  out = {}
  for run in _RUNS.value:
    hv, summary = _read(run, 'hypervolume'), _read(run, 'summary')
    budgets = [row['evaluations'] for row in summary['by_budget']]
    per_seed = hv['per_seed']
    out[run] = {
        'round_ends': budgets,
        'mean': crossings(hv['guided'], hv['random'], budgets),
        'by_seed': {seed: crossings(per_seed['guided'][seed],
                                    per_seed['random'][seed], budgets)
                    for seed in per_seed['guided']}}
    row = out[run]
    seeds = ', '.join(
        f'{s["anywhere"]["x_fewer"] or 0:.1f}x / '
        f'{s["round_end"]["x_fewer"] or 0:.1f}x'
        for s in row['by_seed'].values())
    mean = row['mean']
    print(f'{run}: anywhere {mean["anywhere"]["x_fewer"] or 0:.1f}x (after '
          f'{mean["anywhere"]["guided_evaluations"]}; at most '
          f'{mean["largest_possible_x_fewer"]:.1f}x), at round ends '
          f'{mean["round_end"]["x_fewer"] or 0:.1f}x (after '
          f'{mean["round_end"]["guided_evaluations"]}; at most '
          f'{mean["largest_possible_round_end_x_fewer"]:.1f}x); seeds '
          f'(anywhere / round end): {seeds}')
  write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
