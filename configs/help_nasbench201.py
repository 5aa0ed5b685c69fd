"""HELP meta-training on the NAS-Bench-201 cells.

    python -m experiments.meta_train --config=configs/help_nasbench201.py --workdir=runs/help_nasbench201
    python -m experiments.meta_test --config=configs/help_nasbench201.py --workdir=runs/help_nasbench201

Variants: ``--config=configs/help_nasbench201.py:maml`` (or metasgd, noadapt,
smoke; comma-separated).
"""

from configs import help_common


def get_config(variant: str = ''):
  c = help_common.base_config('nasbench201')
  # A GCN over the cell's op graph (after HELP's; fixed wiring, ops as node
  # probabilities) sees which operations follow which (NAS-Bench-201
  # latencies on some devices depend on it); the additive trunk carries the
  # op costs.
  c.model.trunk = 'additive+gcn'
  # The cell graph: 'fixed' wiring, or 'pruned' (closer to HELP's; chosen
  # against on meta-valid, benchmarks/nasbench201_gcn_graph.py).
  c.model.gcn_graph = 'fixed'
  return help_common.apply_variant(c, variant)
