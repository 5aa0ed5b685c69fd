"""Shared defaults of the DNAS search configs."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.space = 'fbnet'
  c.macro = 'cifar'
  c.seed = 0
  c.batch_size = 64
  c.epochs = 90
  c.checkpoint_every = 200
  c.steps_per_epoch = None  # None: one pass over the weights split
  c.nb201_cells = 5  # nasbench201: supernet cells per stage (benchmark: 5)
  # ofa: the pinned resolution unit that latency scores; None = image_size.
  c.ofa_resolution = None

  c.data = ml_collections.ConfigDict()
  c.data.name = 'cifar100'
  c.data.image_size = 32
  c.data.data_dir = ''  # '' = tfds default (~/tensorflow_datasets)
  c.data.eval_limit = None  # evaluate on at most this many images
  c.data.augment = True  # the dataset's standard training augmentation

  c.latency = ml_collections.ConfigDict()
  c.latency.source = 'lut'  # 'lut' (exact tables) or 'predictor'; see latency.SOURCES
  c.latency.device = 'raspi4'  # a bundled device
  c.latency.device_file = ''  # or a device file (source='predictor')
  c.latency.target_ms = 25.0
  c.latency.predictor_dir = ''  # '' = the bundled meta-trained predictor
  c.latency.adapted_dir = ''  # or a predictor saved by experiments.adapt
  c.latency.num_samples = 10  # measurements besides the references
  c.latency.seed = 0
  # Predictor support besides the references: 'random' measured rows of the
  # device, or 'spread' (uniform to nearly the cheapest architectures, timed
  # by the device's exact table; FBNet CIFAR / NAS-Bench-201 devices).
  c.latency.support = 'random'

  # The measurement harness (fbnet_jax.measure), where a search measures on
  # this machine: a missing latency.device_file, the found architecture,
  # an evolutionary search's front or its latency in the loop.
  c.measure = ml_collections.ConfigDict()
  c.measure.batch_size = 1
  c.measure.dtype = 'float32'
  c.measure.time_budget_s = 300.0
  c.measure.spread_bound = 0.05
  # Rounds of interleaved timings: at least min_rounds, at most max_rounds
  # (on the 2-core VM the spread bound is never met, so max_rounds or the
  # time budget stops them); repeats_per_round timed calls per round.
  c.measure.min_rounds = 3
  c.measure.max_rounds = 20
  c.measure.repeats_per_round = 5
  c.measure.seed = 0
  # 'jax': the local JAX backend; 'onnxruntime': every network exported to
  # ONNX and timed on ONNX Runtime's CPU provider (the onnx extra).
  c.measure.runtime = 'jax'
  c.measure.onnx_threads = 0  # ONNX Runtime intra-op threads; 0: its default
  # What latency_ms holds: each network's 'median' or 'min' over its timings;
  # and 0 (all cores) or k: every measuring session timed on k pinned cores.
  # On the 2-core VM, 1 core with 'min' put 8 of 9 closed-loop networks
  # within 10% of their targets, 2 cores with the median 4 of 9
  # (docs/closed_loop.md).
  c.measure.statistic = 'median'
  c.measure.cpu_cores = 0
  # Every measuring session in a new process: after a search, the same
  # networks timed 8-23% slower in the searching process (2-core VM).
  c.measure.fresh_process = True
  # A found network's measured latency (experiments.search, closed_loop):
  # its median over this many measuring sessions. One session's speed is
  # one draw: the same network moved 3-5% between sessions on one pinned
  # core, 15-20% on two (2-core VM, benchmarks.session_noise).
  c.measure.verify_sessions = 3

  c.loss = ml_collections.ConfigDict()
  c.loss.form = 'target'  # 'fbnet', 'target' (about T) or 'budget' (<= T)
  c.loss.alpha = 0.2
  c.loss.beta = 0.6
  c.loss.unit_ms = 1.0  # latency unit of the fbnet form's log
  c.loss.lam = 2.0
  c.loss.margin = 0.01
  # Latency in the loss: 'distribution' (expected latency of softmax(theta))
  # or 'sample' (each example's Gumbel sample, FBNet's choice).
  c.loss.latency_of = 'distribution'

  c.search = ml_collections.ConfigDict()
  c.search.tau0 = 5.0
  c.search.tau_decay = 0.956
  c.search.warmup_epochs = 10
  c.search.arch_every = 4  # one arch step (20% split) per 4 weight steps
  c.search.hard = False  # straight-through hard Gumbel samples
  # What each weight step trains: 'gumbel', every example its own Gumbel
  # sample of the architecture distribution (FBNet); 'uniform' (weights-only
  # runs), the whole batch one sub-network drawn uniformly from the searched
  # choices (SPOS; what the 'elastic' supernet always does).
  c.search.weight_paths = 'gumbel'
  # 'mixture': every candidate its own weights, mixed per example (DNAS).
  # 'elastic' (ofa only, weights only): OFA's weight sharing, one sampled
  # sub-network per batch (supernet.OFAElasticSupernet). 'masked' (ofa
  # only): the same weights, each example its own soft choice (FBNetV2's
  # masked DNAS): OFA's DNAS supernet that compiles in minutes on a CPU.
  c.search.supernet = 'mixture'
  c.search.num_derived_samples = 3
  c.search.derive = ''  # '' = 'target' for target/budget losses, else 'argmax'
  c.search.derive_tolerance = 0.02  # relative band of 'target' derivation
  c.search.calib_batches = 10  # BN recalibration of derived architectures
  c.search.ops = ()  # () = every candidate; or a subset (FBNet op names)

  c.retrain = ml_collections.ConfigDict()  # experiments.train
  c.retrain.batch_size = 128
  c.retrain.epochs = 200
  c.retrain.lr = 0.1
  c.retrain.weight_decay = 5e-4
  c.retrain.steps_per_epoch = None
  c.retrain.checkpoint_every = 500

  c.optim = ml_collections.ConfigDict()
  c.optim.weight_lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-4
  c.optim.grad_clip = 5.0
  c.optim.arch_lr = 0.01
  c.optim.arch_weight_decay = 5e-4
  return c
