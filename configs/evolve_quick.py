r"""Multi-objective evolutionary search (DyNAS-T style) on the digits data.

    python -m experiments.evolve --config=configs/evolve_quick.py --workdir=runs/evolve_quick

Trains a weight-sharing FBNet supernet (CIFAR macro network, a subset of
four candidate ops) on the embedded digits data under a uniform
architecture distribution, then searches latency x accuracy with NSGA-II guided by an
accuracy predictor, against random search at the same budget of full
evaluations (supernet accuracy on the never-trained-on 'arch' split, BN
recalibrated). Latency: raspi4's lookup table (exact);
``--config.latency.source=predictor`` searches with the meta-trained
predictor adapted from 10 measurements instead, and the front is then
re-scored with the table. About ten minutes on 2 busy CPU cores (the
supernet's XLA compile is two of them; a rerun resumes the supernet).

The supernet's accuracy is a weak estimate on digits: it ranks 12
retrained networks with Spearman 0.26 (their table latency: 0.71); a
supernet trained 3x longer with a slower anneal
(``configs/evolve_quick.py:long``: 24 epochs, tau x 0.85 per epoch)
reaches 0.45 (docs/evolve.md, "Does the supernet's accuracy rank networks
as retraining does?").

Variants: ``configs/evolve_quick.py:smoke`` (tiny, for tests),
``configs/evolve_quick.py:long`` (the longer supernet above).
"""

import ml_collections

from configs import quickstart


def evolve_config() -> ml_collections.ConfigDict:
  """The ``config.evolve`` fields and their defaults."""
  e = ml_collections.ConfigDict()
  e.budget = 48  # full evaluations of the guided search
  e.random_budget = 192  # random search's (>= budget): 4x, the target
  e.initial = 16  # random architectures evaluated first (shared)
  e.per_iteration = 8  # evaluated per guided iteration
  e.pop_size = 64  # NSGA-II on predicted accuracy
  e.generations = 60
  e.predictor = 'ridge'  # 'ridge' or 'gbrt' (pareto.AccuracyPredictor)
  # Also fit on SearchSpace.path_features (NAS-Bench-201: which
  # input->output paths stay connected, and their ops).
  e.path_features = False
  e.seeds = (0, 1, 2)
  e.eval_limit = None  # validation images ('arch' split); None = all
  e.test_front = True  # also score the front on the held-out eval split
  e.ref_samples = 2000  # reference latency: max of this many random archs
  e.ref_factor = 1.1  # ... times this
  e.throughput_archs = 100_000  # time the latency source on this many
  # Latency in the loop (DyNAS-T): measure each fully evaluated architecture
  # and re-adapt the predictor on the measurements (predictor source; on a
  # bundled device its exact table stands in for measuring; with
  # latency.device_file a device file of this machine, the harness measures
  # here, random search's architectures too: set random_budget to what you
  # can afford to measure).
  e.measure_latency = False
  # ... and measure each round's candidates before evaluating them, re-adapt
  # and re-run NSGA-II, this many times (more measurements, no more full
  # evaluations).
  e.latency_probes = 0
  # ... and add an additive ridge model (one-hot features) of what the
  # re-adapted predictor still misses on the measured rows ('none': off;
  # 'ridge_costs': also the architectures' analytic costs as features,
  # which did not help on the lookup-table devices, docs/evolve.md).
  e.latency_residual = 'ridge'
  # With latency.device_file a device file of this machine: measure the
  # reported front (and DNAS points) here with the harness, beside the
  # reference architectures, and report how far the predictor was off.
  e.measure_front = False
  # With latency measured here: also time this many fixed skip-heavy
  # networks in every session and correct each network by the drift of the
  # anchors and references near its own latency
  # (measured_here.drift_by_latency); 0: the references' drift alone.
  e.anchors = 0
  # DNAS points to compare with: result.json files (comma-separated) and/or
  # DNAS searches run here, one per target at these quantiles of random
  # architectures' latency (same ops, data, schedule and latency source).
  e.dnas_result = ''
  e.dnas_quantiles = ()
  e.dnas_warmup_epochs = 2  # weights only, then alternating steps
  e.dnas_tau_decay = 0.8  # the quickstart's: stays in the soft regime
  return e


def weights_only_evolve(c: ml_collections.ConfigDict, epochs: int = 8
                        ) -> ml_collections.ConfigDict:
  """The evolve configs' supernet and search settings, set on ``c``.

  Weights only: the architecture distribution stays uniform (OFA/DyNAS-T
  sample sub-networks uniformly). Per-example Gumbel samples of it, whose
  temperature anneals 5.0 -> 0.14: mixtures of ops early, nearly single
  paths at the end. (Hard single paths from the first step did not train at
  all on digits: cross-entropy stayed at chance for 8 epochs.)
  """
  c.epochs = epochs
  c.search.warmup_epochs = c.epochs
  c.search.hard = False
  c.search.tau_decay = 0.6
  c.search.calib_batches = 4  # BN recalibration of each evaluated arch
  c.search.num_derived_samples = 1
  c.search.derive = 'argmax'
  c.evolve = evolve_config()
  c.evolve.seeds = (0, 1)
  c.evolve.dnas_quantiles = (0.15, 0.5, 0.85)
  return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Tiny sizes of an evolve config, for tests. No DNAS searches: each
  would add a supernet compile (tests give DNAS points as a result.json;
  ``search.train_and_evaluate`` has its own tests)."""
  c.batch_size = 16
  c.epochs = 2
  c.search.warmup_epochs = 2
  c.steps_per_epoch = 8
  c.checkpoint_every = 8
  c.data.eval_limit = 32
  c.search.calib_batches = 2
  c.evolve.budget = 12
  c.evolve.random_budget = 12
  c.evolve.initial = 6
  c.evolve.per_iteration = 3
  c.evolve.pop_size = 16
  c.evolve.generations = 5
  c.evolve.seeds = (0,)
  c.evolve.dnas_quantiles = ()
  c.evolve.eval_limit = 32
  c.evolve.ref_samples = 200
  c.evolve.throughput_archs = 1000
  return c


def get_config(variant: str = ''):
  c = quickstart.get_config()
  # Four ops (the latency-spread of FBNet's nine): the supernet compiles in
  # about a minute on CPU instead of several.
  c.search.ops = ('k3_e1', 'k3_e3', 'k5_e6', 'skip')
  weights_only_evolve(c)
  c.latency.source = 'lut'
  c.latency.device = 'raspi4'
  if variant == 'smoke':
    smoke(c)
    c.search.ops = ('k3_e1', 'skip')
  elif variant == 'long':
    # 3x the supernet training, annealed to about the same final
    # temperature (5 x 0.85^23 = 0.12): single paths that work better
    # (docs/evolve.md); its supernet trains in 2-3x the default's time.
    c.epochs = c.search.warmup_epochs = 24
    c.search.tau_decay = 0.85
    # The DNAS points' anneal stretched to the same final temperature as
    # the default's (5 x 0.8^7 = 1.05; 5 x 0.934^23 = 1.04): x0.8 over 24
    # epochs would end at 0.03, past where a fast anneal collapses.
    c.evolve.dnas_tau_decay = 0.934
  elif variant:
    raise ValueError(f'Unknown variant {variant!r}; expected smoke or long.')
  return c
