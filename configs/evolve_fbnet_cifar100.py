r"""Multi-objective evolutionary search on CIFAR-100 (FBNet space, all ops).

    python -m experiments.evolve --config=configs/evolve_fbnet_cifar100.py \
        --workdir=runs/evolve_c100 --config.latency.device=pixel3

Needs CIFAR-100 prepared for tfds (see fbnet_jax/data.py's error message).
The supernet trains its weights for 120 epochs under a uniform
architecture distribution (OFA/DyNAS-T), on per-example Gumbel samples whose
temperature anneals from mixtures to nearly single paths; the search scores architectures on the 'arch'
split (10,000 training images never trained on) with BN recalibrated on 20
batches, 200 full evaluations for the guided search (DyNAS-T's order), 800
for random search, three seeds. Latency from the device's lookup table;
``--config.latency.source=predictor`` for the adapted meta-predictor.
"""

from configs import evolve_quick
from configs import search_common


def get_config():
  c = search_common.base_config()
  c.data.name = 'cifar100'
  c.data.image_size = 32
  c.batch_size = 128
  c.epochs = 120
  c.search.warmup_epochs = c.epochs
  c.search.hard = False
  c.search.tau_decay = 0.96  # 5.0 -> 0.04 over 120 epochs
  c.search.derive = 'argmax'
  c.search.num_derived_samples = 1
  c.search.calib_batches = 20
  c.latency.source = 'lut'
  c.latency.device = 'raspi4'
  c.evolve = evolve_quick.evolve_config()
  c.evolve.budget = 200
  c.evolve.random_budget = 800
  c.evolve.initial = 50
  c.evolve.per_iteration = 16
  c.evolve.pop_size = 100
  c.evolve.generations = 200
  c.evolve.eval_limit = 5000
  # FBNet's own schedule for the DNAS points: 10 warm-up epochs, x0.956/epoch.
  c.evolve.dnas_quantiles = (0.15, 0.5, 0.85)
  c.evolve.dnas_warmup_epochs = 10
  c.evolve.dnas_tau_decay = 0.956
  return c
