"""HELP meta-training on the FBNet space (HW-NAS-Bench CIFAR-100 setting).

    python -m experiments.meta_train --config=configs/help_fbnet.py --workdir=runs/help_fbnet
    python -m experiments.meta_test --config=configs/help_fbnet.py --workdir=runs/help_fbnet

Variants: ``--config=configs/help_fbnet.py:maml`` (or metasgd, noadapt,
smoke; comma-separated).
"""

from configs import help_common


def get_config(variant: str = ''):
  c = help_common.base_config('fbnet')
  return help_common.apply_variant(c, variant)
