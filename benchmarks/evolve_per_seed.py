r"""Per-seed crossings of stored evolve runs (the summaries' numbers are
those of the mean-over-seeds curves).

    python -m benchmarks.evolve_per_seed \
        benchmarks/results/cpu_2026-12-03/evolve_quick_lut_summary.json ... \
        [--out=runs/evolve_per_seed.json]

Each argument is a run's ``summary.json`` (or ``<name>_summary.json``); its
``hypervolume.json`` (or ``<name>_hypervolume.json``) is read beside it.
For each: :func:`fbnet_jax.evolve_report.seed_comparison` with the run's
own budgets, next to the mean curves' numbers. Runs written since
2026-12-05 carry the same in ``summary.json``'s ``by_seed``.
"""

import json
import os

from absl import app
from absl import flags

from benchmarks import write_json
from fbnet_jax import evolve_report

_OUT = flags.DEFINE_string('out', '', 'Write the table here (JSON).')


def per_seed(summary_path: str) -> dict:
  with open(summary_path) as f:
    summary = json.load(f)
  hv_path = summary_path[:-len('summary.json')] + 'hypervolume.json'
  with open(hv_path) as f:
    curves = json.load(f)
  budgets = [r['evaluations'] for r in summary['by_budget']]
  return {'summary': summary_path,
          'mean_curves': {
              'factor_at_least': {str(r['evaluations']): r['factor_at_least']
                                  for r in summary['by_budget']},
              'speedup_at_random_final': summary['speedup_at_random_final']},
          'by_seed': evolve_report.seed_comparison(
              curves['per_seed'], budgets, summary['random_budget'])}


def main(argv):
  rows = [per_seed(path) for path in argv[1:]]
  for row in rows:
    print(os.path.basename(os.path.dirname(row['summary'])) + '/' +
          os.path.basename(row['summary']))
    mean = row['mean_curves']
    print(f'  mean curves: x{mean["speedup_at_random_final"]:.2f} at random '
          f'final; at least {mean["factor_at_least"]}')
    for seed, s in row['by_seed'].items():
      speed = s['speedup_at_random_final']
      print(f'  seed {seed}: x{speed:.2f} at random final; at least '
            f'{ {k: round(v, 2) for k, v in s["factor_at_least"].items()} }; '
            f'4x from the second budget: {s["target_factor_4x_met"]}'
            if speed else f'  seed {seed}: never reaches random final')
  if _OUT.value:
    write_json(_OUT.value, rows)


if __name__ == '__main__':
  app.run(main)
