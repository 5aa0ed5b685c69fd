"""Shared defaults of the HELP meta-training configs (one per space)."""

import ml_collections


def base_config(space: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.space = space
  c.seed = 0

  c.model = ml_collections.ConfigDict()
  c.model.hidden = 64
  c.model.trunk = 'additive'  # '+'-joined: additive, gcn, mlp
  c.model.use_hardware = True
  c.model.standardize_physics = True

  c.meta = ml_collections.ConfigDict()
  # Label only; the switches below define it. 'help_ridge': HELP (hardware
  # embedding, modulation, Meta-SGD) with an ANIL inner loop on the head and
  # a closed-form ridge last layer over learned + analytic features.
  c.meta.algorithm = 'help_ridge'
  c.meta.num_episodes = 4000
  c.meta.tasks_per_episode = 8
  c.meta.num_support = 10
  c.meta.num_query = 200
  c.meta.inner_steps = 2
  c.meta.eval_inner_steps = None  # None: same as inner_steps
  c.meta.inner_lr = 1e-2
  c.meta.learn_inner_lr = True  # Meta-SGD
  c.meta.inner_grad_clip = 1.0  # bound on each inner step's gradient norm
  c.meta.modulation = True  # HELP's hardware-conditioned modulation
  c.meta.variational = False
  c.meta.kl_weight = 1e-3
  c.meta.first_order = False
  c.meta.adapt = 'head'
  c.meta.target = 'linear'
  c.meta.head = 'ridge'  # 'gradient' (plain MAML head) or 'ridge'
  c.meta.ridge_precision = 1.0  # initial prior precision of the ridge head
  c.meta.meta_lr = 1e-3
  c.meta.prior_lr_scale = 1.0  # ridge prior's learning rate / meta_lr
  c.meta.grad_clip = 10.0
  c.meta.ref_dropout = 0.2  # episodes with some references missing
  c.meta.task_mixup = 0.5  # episodes on a random mixture of devices
  c.meta.episodes_per_call = 100

  c.eval = ml_collections.ConfigDict()
  c.eval.num_samples = 10
  c.eval.seeds = 5
  c.eval.trim = False  # primary protocol: untrimmed; meta_test reports both
  c.eval.every = 200
  c.eval.valid_fraction = 0.2
  c.eval.valid_seeds = 10
  return c


def apply_variant(c: ml_collections.ConfigDict, variant: str):
  """Baseline variants in the same harness: maml, metasgd, noadapt, smoke."""
  for v in filter(None, variant.split(',')):
    if v == 'maml':
      c.meta.algorithm = 'maml'
      c.model.use_hardware = False
      c.meta.learn_inner_lr = False
      c.meta.modulation = False
      c.meta.head = 'gradient'
      c.meta.adapt = 'all'
    elif v == 'metasgd':
      c.meta.algorithm = 'metasgd'
      c.model.use_hardware = False
      c.meta.modulation = False
      c.meta.head = 'gradient'
      c.meta.adapt = 'all'
    elif v == 'noadapt':
      c.meta.algorithm = 'noadapt'
      c.meta.inner_steps = 0
      c.meta.learn_inner_lr = False
      c.meta.modulation = False
      c.meta.head = 'gradient'
    elif v == 'help':  # HELP as published: full MAML inner loop, no ridge
      c.meta.algorithm = 'help'
      c.meta.head = 'gradient'
      c.meta.adapt = 'all'
    elif v == 'smoke':
      c.meta.num_episodes = 40
      c.meta.tasks_per_episode = 2
      c.meta.num_query = 20
      c.meta.episodes_per_call = 20
      c.model.hidden = 16
      c.eval.every = 20
      c.eval.seeds = 2
      c.eval.valid_seeds = 1
    else:
      raise ValueError(f'Unknown config variant {v!r}; expected maml, '
                       'metasgd, noadapt, help or smoke.')
  return c
