r"""Multi-objective evolutionary search on a trained supernet (DyNAS-T).

    python -m experiments.evolve --config=configs/evolve_quick.py --workdir=runs/evolve_quick
    python -m experiments.evolve --config=configs/evolve_fbnet_cifar100.py \
        --workdir=runs/evolve_c100 --config.latency.device=pixel3
    python -m experiments.evolve --config=configs/evolve_nasbench201.py --workdir=runs/evolve_nb201
    python -m experiments.evolve --config=configs/evolve_ofa.py --workdir=runs/evolve_ofa
    python -m experiments.measure --archs=reference,random:10 --out=runs/my_cpu.npz
    python -m experiments.evolve --config=configs/evolve_quick.py --workdir=runs/evolve_here \
        --config.latency.source=predictor --config.latency.device_file=runs/my_cpu.npz \
        --config.evolve.measure_front=True   # the front measured on this machine
    python -m experiments.evolve --config=configs/evolve_quick.py --workdir=runs/evolve_loop_here \
        --config.latency.source=predictor --config.latency.device_file=runs/my_cpu.npz \
        --config.evolve.measure_latency=True --config.evolve.random_budget=48
        # latency in the loop here: every evaluated architecture measured

Trains (or resumes) the supernet under ``WORKDIR/supernet``, then runs the
predictor-guided NSGA-II search and random search at the same budget of full
evaluations, and (``config.evolve.dnas_quantiles``) DNAS searches for three
latency targets, whose derived architectures are scored the same way. Writes ``front.json``, ``fronts.json``, ``hypervolume.json``,
``evaluations.json``, ``summary.json``, ``front.png`` and
``hypervolume.png`` (see fbnet_jax/evolve_report.py).
"""

import json

from absl import app
from absl import flags
from ml_collections import config_flags

from fbnet_jax import compilation_cache
from fbnet_jax import evolve

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/evolve_quick.py',
                                          'Evolve configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/evolve_quick',
                               'Output directory (resumes the supernet).')


def main(argv):
  del argv
  compilation_cache.enable()
  summary = evolve.run(_CONFIG.value, _WORKDIR.value)
  print(json.dumps({k: summary[k] for k in (
      'latency_source', 'final_hypervolume',
      'guided_evaluations_to_reach_random_at_budget',
      'guided_evaluations_to_reach_random_final', 'speedup_at_random_final',
      'latency_predictions_per_s',
      'lut_agreement', 'seconds')}, indent=1))
  here = summary.get('measured_agreement')
  if here:
    print(f'front measured on {here["device"]}: predicted vs measured max '
          f'{100 * here["raw"]["max_relative_error"]:.1f}% (median '
          f'{100 * here["raw"]["median_relative_error"]:.1f}%); the '
          'references moved '
          f'{100 * here["drift_vs_device_file"]:+.1f}% since the device file, '
          'against them max '
          f'{100 * here["vs_references"]["max_relative_error"]:.1f}% (median '
          f'{100 * here["vs_references"]["median_relative_error"]:.1f}%); '
          f'{here["measured"]} measurements, {here["seconds"]:.0f} s')
  loop = summary.get('measured_in_the_loop')
  if loop:
    drift = loop['drift_vs_device_file']
    print(f'latency in the loop on {loop["device"]}: {loop["architectures"]} '
          f'architectures measured in {loop["sessions"]} sessions '
          f'({loop["measurements"]} measurements with the references), '
          f'{loop["seconds"]:.0f} s; references {100 * min(drift):+.1f}% to '
          f'{100 * max(drift):+.1f}% since the device file')
  for row in summary['by_budget']:
    print(f'{row["evaluations"]:4d} evaluations: hv guided '
          f'{row["guided_hv"]:.4f} random {row["random_hv"]:.4f}; random '
          f'needs {row["random_evaluations_to_match"]} (factor >= '
          f'{row["factor_at_least"]:.2f})')
  if summary.get('dnas'):
    for p in summary['dnas']['points']:
      best = p['front_best_accuracy_at_or_below']
      print(f'DNAS for {p["target_ms"]} ms: {p["latency_ms"]:.2f} ms, '
            f'accuracy {p["accuracy"]:.4f}; guided front at <= that latency '
            f'{"-" if best is None else f"{best:.4f}"}'
            f'{" (dominated)" if p["dominated_by_guided_front"] else ""}')


if __name__ == '__main__':
  app.run(main)
