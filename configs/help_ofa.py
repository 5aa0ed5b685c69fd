"""HELP meta-training on the OFA MobileNetV3 space.

    python -m experiments.meta_train --config=configs/help_ofa.py --workdir=runs/help_ofa
    python -m experiments.meta_test --config=configs/help_ofa.py --workdir=runs/help_ofa

Variants: ``--config=configs/help_ofa.py:maml`` (or metasgd, noadapt,
smoke; comma-separated).
"""

from configs import help_common


def get_config(variant: str = ''):
  c = help_common.base_config('ofa')
  return help_common.apply_variant(c, variant)
