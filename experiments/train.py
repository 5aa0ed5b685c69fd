r"""Retrains an architecture found by experiments.search, from scratch.

    python -m experiments.train --arch=runs/quickstart/result.json \
        --config=configs/quickstart.py --workdir=runs/quickstart/retrain

Writes ``WORKDIR/retrain.json`` with the eval-split accuracy. Run again,
it resumes a killed retraining or reads back a finished one, only under
the architecture, seed and settings it started with (else a clear error).
"""

import os

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import compilation_cache
from fbnet_jax import retrain

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Config (data and retrain settings).')
_ARCH = flags.DEFINE_string('arch', None, 'result.json of a search.',
                            required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory '
                               '(default: next to the result, retrain/).')


def main(argv):
  del argv
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.train')
  # Checked before anything is written: its space and macro are config's.
  arch, found = retrain.load_arch(_ARCH.value, config)
  workdir = _WORKDIR.value or os.path.join(os.path.dirname(_ARCH.value),
                                           'retrain')
  result = retrain.train_and_evaluate(config, arch, workdir)
  names = retrain.result_space(_ARCH.value, found).names(arch)
  print(f'accuracy {result["accuracy"]:.4f} on {result["num_eval"]} '
        f'{config.data.name} eval images ({" ".join(names)})')


if __name__ == '__main__':
  cli.run(main)
