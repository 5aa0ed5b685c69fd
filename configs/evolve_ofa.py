r"""Multi-objective evolutionary search over the OFA / MobileNetV3 space.

    python -m experiments.evolve --config=configs/evolve_ofa.py \
        --workdir=runs/evolve_ofa

Trains OFA's weight-sharing supernet (``config.search.supernet =
'elastic'``: 20 elastic block slots whose weights serve every kernel 3/5/7,
expansion 3/4/6 and, in the optional slots, skip; one uniformly sampled
sub-network per batch, kernel, expansion and depth uniform as in OFA) on the
embedded digits data upsampled to 32x32 (the MobileNetV3 macro network
downsamples 32x: 32 px is the smallest input that keeps a pixel to the end),
then searches latency x accuracy with NSGA-II guided by an accuracy
predictor, against random search with 4x the budget of full evaluations.

Latency: the bundled meta-trained predictor adapted to titan_rtx_64 (OFA's
meta-test device) for the network at ``config.ofa_resolution`` = 224 px,
the resolution unit pinned there (the 32 px digits stand in for it during
training, as the 8x8 digits do for FBNet's CIFAR network). There is no
lookup table for this space; to re-score the front, measure it here:

    python -m experiments.measure --space=ofa --archs=reference,random:10 --out=runs/my_cpu_ofa.npz
    python -m experiments.evolve --config=configs/evolve_ofa.py --workdir=W \
        --config.latency.device_file=runs/my_cpu_ofa.npz --config.evolve.measure_front=True

Compute: one compiled program of 20 blocks (about 1.5 minutes to compile on
2 CPU cores). DNAS points are off by default, for time: each DNAS search
trains its own supernet (``--config.evolve.dnas_quantiles=0.15,0.5,0.85``
runs three, with the 'masked' supernet: the same elastic weights, one soft
choice per example, FBNetV2's masked DNAS; the per-candidate 'mixture'
supernet holds 190 blocks and takes over 10 minutes to compile on a CPU).
Variants: ``configs/evolve_ofa.py:smoke`` (tiny).
"""

import ml_collections

from configs import evolve_quick
from configs import quickstart


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = quickstart.get_config()
  c.space = 'ofa'
  c.macro = ''  # the FBNet macro network does not apply
  c.data.image_size = 32  # digits, upsampled
  c.ofa_resolution = 224  # the pinned resolution unit that latency scores
  evolve_quick.weights_only_evolve(c)
  c.latency.source = 'predictor'
  c.latency.device = 'titan_rtx_64'
  c.latency.target_ms = 25.0  # unused by the weights-only supernet
  c.search.supernet = 'elastic'  # OFA's weight sharing (see above)
  c.evolve.dnas_quantiles = ()  # off for time (see above)
  if variant == 'smoke':  # smaller still: the OFA supernet is large
    evolve_quick.smoke(c)
    c.batch_size = 8
    c.epochs = 1
    c.search.warmup_epochs = 1
    c.steps_per_epoch = 2
    c.checkpoint_every = 2
    c.data.eval_limit = 16
    c.search.calib_batches = 1
    c.evolve.budget = 6
    c.evolve.random_budget = 6
    c.evolve.initial = 4
    c.evolve.per_iteration = 2
    c.evolve.pop_size = 8
    c.evolve.generations = 2
    c.evolve.eval_limit = 16
    c.evolve.ref_samples = 100
    c.evolve.throughput_archs = 100
  elif variant:
    raise ValueError(f'Unknown variant {variant!r}; expected smoke.')
  return c
