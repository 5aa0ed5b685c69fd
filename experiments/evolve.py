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

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import compilation_cache
from fbnet_jax import evolve
from fbnet_jax import evolve_report

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/evolve_quick.py',
                                          'Evolve configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/evolve_quick',
                               'Output directory (resumes the supernet).')


def main(argv):
  del argv
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'evolve', 'experiments.evolve')
  summary = evolve.run(config, _WORKDIR.value)
  print(evolve_report.console_summary(summary))


if __name__ == '__main__':
  cli.run(main)
