r"""Meta-trains the HELP latency predictor of one search space.

    python -m experiments.meta_train --config=configs/help_fbnet.py \
        --workdir=runs/help_fbnet

Selects the checkpoint on the meta-valid devices only, writes
``WORKDIR/predictor`` (the meta-trained predictor), ``WORKDIR/history.json``
and a resumable ``WORKDIR/checkpoint.msgpack``.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from meta import train

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/help_fbnet.py',
                                          'Meta-training configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/help_fbnet',
                               'Where checkpoints and the predictor go.')


def main(argv):
  del argv
  config = cli.config_of_kind(_CONFIG, 'meta-training',
                              'experiments.meta_train')
  train.train_and_evaluate(config, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
