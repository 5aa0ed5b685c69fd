r"""Multi-objective evolutionary search over NAS-Bench-201 cells, digits data.

    python -m experiments.evolve --config=configs/evolve_nasbench201.py \
        --workdir=runs/evolve_nasbench201

Trains a weight-sharing NAS-Bench-201 supernet (every edge of the cell a
mixture of the five operations; two cells per stage instead of the
benchmark's five) on the embedded digits data at their native 8x8, weights
only, under a uniform architecture distribution (as ``evolve_quick.py``
does for FBNet); then searches latency x accuracy with NSGA-II guided by an
accuracy predictor, against random search at the same budget of full
evaluations (supernet accuracy on the never-trained-on 'arch' split, BN
recalibrated), plus DNAS searches for three latency targets.

Latency: the bundled meta-trained HELP predictor adapted to raspi4 (a
meta-test device of NAS-Bench-201, the device of ``evolve_quick.py``) from
its 10 reference architectures and 10 more measurements; it scores the
benchmark's network (5 cells per stage, 32x32 CIFAR input): the supernet's
fewer cells and smaller images stand in for it during training, as the
digits do for FBNet's CIFAR network. The predictor's linear head would put
cells cut off by ``none`` edges (measured at 0.012 ms) below zero; their
latency is floored at ``latency.MIN_PREDICTED_MS``.
``--config.latency.device`` takes any bundled NAS-Bench-201 device
(``meta/latency_data.py``). HW-NAS-Bench measured every cell on every
device, so the front is re-scored with the measurement itself
(``latency.cell_table_latency``; ``--config.latency.source=lut`` searches
with that exact table instead of the predictor).

Variants: ``configs/evolve_nasbench201.py:smoke`` (tiny, for tests).
"""

import ml_collections

from configs import evolve_quick
from configs import quickstart


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = quickstart.get_config()
  c.space = 'nasbench201'
  c.macro = ''  # the FBNet macro network does not apply
  c.nb201_cells = 2  # cells per stage of the supernet (the benchmark's 5)
  evolve_quick.weights_only_evolve(c)
  c.latency.source = 'predictor'
  c.latency.device = 'raspi4'
  c.latency.target_ms = 15.0  # unused by the weights-only supernet
  if variant == 'smoke':
    evolve_quick.smoke(c)
    c.nb201_cells = 1
  elif variant:
    raise ValueError(f'Unknown variant {variant!r}; expected smoke.')
  return c
