"""HELP meta-training on the OFA MobileNetV3 space.

    python -m experiments.meta_train --config=configs/help_ofa.py --workdir=runs/help_ofa
    python -m experiments.meta_test --config=configs/help_ofa.py --workdir=runs/help_ofa

Variants: ``--config=configs/help_ofa.py:maml`` (or metasgd, noadapt,
smoke; comma-separated).
"""

from configs import help_common


def get_config(variant: str = ''):
  c = help_common.base_config('ofa')
  # Selected on meta-valid (titan_rtx_1/32): log 0.9455 vs linear 0.9413;
  # OFA latency scales multiplicatively with the input resolution.
  c.meta.target = 'log'
  return help_common.apply_variant(c, variant)
