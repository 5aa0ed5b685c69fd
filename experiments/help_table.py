r"""Reproduces the HELP table of one space with every method in one harness.

    python -m experiments.help_table --space=fbnet --root=runs/table

Meta-trains the default predictor and the MAML, Meta-SGD, no-adaptation and
HELP-as-published variants of ``configs/help_<space>.py`` (each resumes if
its workdir exists), then runs meta_test on all of them beside the
linear-mix and FLOPs baselines; the table is printed and
``ROOT/<space>/default/meta_test.json`` holds every number.
"""

import importlib
import os

from absl import flags

from experiments import cli
from meta import latency_data
from meta import meta_test
from meta import train

_SPACE = flags.DEFINE_enum('space', 'fbnet', sorted(latency_data.SPLITS),
                           'Search space (one with bundled latency data).')
_ROOT = flags.DEFINE_string('root', 'runs/table', 'Output root.')
VARIANTS = ('', 'help', 'maml', 'metasgd', 'noadapt')


def main(argv):
  del argv
  module = importlib.import_module(f'configs.help_{_SPACE.value}')
  workdirs = []
  for variant in VARIANTS:
    config = module.get_config(variant)
    workdir = os.path.join(_ROOT.value, _SPACE.value, variant or 'default')
    train.train_and_evaluate(config, workdir)
    workdirs.append(workdir)
  meta_test.run(module.get_config(), workdirs[0], compare=workdirs[1:])


if __name__ == '__main__':
  cli.run(main)
