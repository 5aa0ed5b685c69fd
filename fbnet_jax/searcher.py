"""The DNAS search's state, optimisers and steps (FBNet).

``Searcher(config)`` holds what a search compiles once: the supernet, its
latency source, the two optimisers and the jitted, sharded weight,
architecture, evaluation and batch-norm recalibration steps.
:func:`fbnet_jax.search.train_and_evaluate` runs them.

Design choices:
- Steps are pure and jitted once; the temperature and the latency target
  are traced arguments, so annealing never recompiles.
- Two optax ``multi_transform`` optimisers over one parameter tree
  ``{'net', 'arch'}``: SGD + momentum + cosine for the net (the arch group
  frozen), Adam for the architecture (the net group frozen); each keeps its
  own state, so neither drifts during the other's steps.
- Batch norm: weight steps normalise with batch statistics and update the
  running averages; architecture steps also normalise with batch statistics
  (the running averages mix all candidates' past mixtures and would bias the
  comparison) but discard their updates, so the 20% arch split never leaks
  into the statistics that evaluation uses.
- ``config.search.supernet = 'elastic'`` (OFA only): OFA's weight-sharing
  supernet trains weights only, each weight step one sub-network drawn by
  the space's own sampler (``Searcher.sample_path``), as OFA and DyNAS-T
  train theirs; evaluation and BN recalibration are the same as for the
  mixture. ``config.search.weight_paths = 'uniform'`` trains any
  supernet's weights that way (single-path one-shot, SPOS).
- Data parallel over all devices with ``jax.sharding``: a 1-D mesh
  ``('data',)``, batches sharded on axis 0, state replicated.
"""

from __future__ import annotations

from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from fbnet_jax import blocks
from fbnet_jax import data as data_lib
from fbnet_jax import dnas
from fbnet_jax import errors
from fbnet_jax import initializers
from fbnet_jax import latency as latency_lib
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import supernet as supernet_lib


class SearchState(flax.struct.PyTreeNode):
  step: jnp.ndarray  # weight steps done
  arch_step: jnp.ndarray  # architecture steps done
  params: Any  # {'net': ..., 'arch': theta [U, C]}
  batch_stats: Any
  weight_opt: optax.OptState
  arch_opt: optax.OptState
  rng: jax.Array


def _labels(params):
  return {'net': jax.tree.map(lambda _: 'net', params['net']),
          'arch': jax.tree.map(lambda _: 'arch', params['arch'])}


def _decay_mask(params):
  """Weight decay on convolution / dense kernels only (the fused mixed
  layers' ``<op>_*_kernel`` included)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: initializers.is_kernel(path), params)


def make_optimizers(config, steps_total: int, warmup_steps: int = 0):
  """(weight optimiser, architecture optimiser), each freezing the other.

  Weights: SGD + Nesterov momentum, linear warm-up then cosine decay, weight
  decay on kernels, gradient norm clipped (a supernet of 200 blocks at a
  cold start otherwise overshoots). Architecture: Adam.
  """
  o = config.optim
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, o.weight_lr, min(warmup_steps, steps_total // 2),
      max(steps_total, 1))
  weights = optax.chain(
      optax.clip_by_global_norm(o.get('grad_clip', 5.0)),
      optax.add_decayed_weights(o.weight_decay, mask=_decay_mask),
      optax.sgd(schedule, momentum=o.momentum, nesterov=True))
  arch = optax.chain(optax.add_decayed_weights(o.arch_weight_decay),
                     optax.adam(o.arch_lr, b1=0.5, b2=0.999))  # DARTS's
  frozen = optax.set_to_zero()
  return (optax.multi_transform({'net': weights, 'arch': frozen}, _labels),
          optax.multi_transform({'net': frozen, 'arch': arch}, _labels))


def fixed_units(config: ml_collections.ConfigDict,
                space: spaces_lib.SearchSpace) -> Optional[np.ndarray]:
  """Units that the search does not search, as one-hot rows (else zeros).

  OFA's resolution unit is fixed: to ``config.ofa_resolution``, the
  resolution whose latency is searched for (smaller training images stand
  in for it, as the 8x8 digits do for FBNet's 32x32 CIFAR network), or by
  default to ``config.data.image_size``. Other spaces fix nothing (None).
  """
  if config.space != 'ofa':
    return None
  fixed = np.zeros((space.num_units, space.max_choices), np.float32)
  size = config.get('ofa_resolution') or config.data.image_size
  if size not in spaces_lib.ofa.RESOLUTIONS:
    field = ('config.ofa_resolution' if config.get('ofa_resolution')
             else 'config.data.image_size (config.ofa_resolution unset)')
    raise errors.InputError(
        f'{field}: {size} is not an OFA resolution (expected '
        f'{spaces_lib.ofa.RESOLUTIONS[0]}..'
        f'{spaces_lib.ofa.RESOLUTIONS[-1]} in steps of 4).')
  fixed[-1, spaces_lib.ofa.RESOLUTIONS.index(size)] = 1.0
  return fixed


WEIGHT_PATHS = ('gumbel', 'uniform')  # config.search.weight_paths
# The last word of sample_path's seed: its random stream, no other's.
_PATH_STREAM = 0x9A7

# The numeric settings of a search (errors.check_bounds).
BOUNDS = (
    errors.Bound('seed', 0, integer=True),
    errors.Bound('latency.seed', 0, integer=True),
    errors.Bound('batch_size', 1, integer=True),
    errors.Bound('epochs', 1, integer=True),
    errors.Bound('steps_per_epoch', 0, integer=True, none_ok=True),
    errors.Bound('checkpoint_every', 1, integer=True),
    errors.Bound('search.tau0', 0, open_low=True),
    errors.Bound('search.tau_decay', 0, 1, open_low=True),
    errors.Bound('search.warmup_epochs', 0, integer=True),
    errors.Bound('search.arch_every', 1, integer=True),
    errors.Bound('search.num_derived_samples', 0, integer=True),
    errors.Bound('search.derive_tolerance', 0, open_low=True),
    errors.Bound('search.calib_batches', 1, integer=True),
    errors.Bound('data.eval_limit', 1, integer=True, none_ok=True),
    errors.Bound('latency.num_samples', 0, integer=True),
    errors.Bound('optim.weight_lr', 0, open_low=True),
    errors.Bound('optim.arch_lr', 0, open_low=True),
    errors.Bound('optim.momentum', 0, 1, open_high=True),
    errors.Bound('optim.weight_decay', 0),
    errors.Bound('optim.arch_weight_decay', 0),
    errors.Bound('optim.grad_clip', 0, open_low=True),
)


class Searcher:
  """Holds the model, latency source and jitted steps of one search."""

  def __init__(self, config: ml_collections.ConfigDict, devices=None):
    self.config = config
    errors.check_bounds(config, BOUNDS)
    dnas.check_loss_config(
        config, arch_steps=config.search.warmup_epochs < config.epochs)
    derive = config.search.get('derive') or ''
    if derive not in ('', 'argmax', 'target'):
      raise errors.InputError(
          "config.search.derive: expected 'argmax', 'target' or "
          f"'' (the loss form's default), got {derive!r}.")
    # By process, then id: process p's rows of a batch are rows
    # [p * B / P, (p + 1) * B / P) of the global array (put_local).
    devices = sorted(devices or jax.devices(),
                     key=lambda d: (d.process_index, d.id))
    self.space = spaces_lib.space_for(config.space,
                                      config.get('macro', 'cifar'))
    self.info = data_lib.dataset_info(config.data.name, config.data.image_size)
    ops = tuple(config.search.get('ops', ()))
    self.elastic = config.search.get('supernet', 'mixture') == 'elastic'
    weight_paths = config.search.get('weight_paths', 'gumbel')
    if weight_paths not in WEIGHT_PATHS:
      raise errors.InputError(
          f'config.search.weight_paths: expected one of {WEIGHT_PATHS}, got '
          f'{weight_paths!r}.')
    # One sub-network per weight step (Searcher.sample_path), not
    # per-example Gumbel samples of the distribution.
    self.uniform_paths = self.elastic or weight_paths == 'uniform'
    if self.uniform_paths and config.search.warmup_epochs < config.epochs:
      what = ("config.search.supernet: the 'elastic' supernet" if self.elastic
              else "config.search.weight_paths: 'uniform'")
      raise errors.InputError(
          f'{what} trains weights only (one sampled sub-network per batch) '
          'and has no architecture steps; expected '
          f'config.search.warmup_epochs >= config.epochs, got '
          f'{config.search.warmup_epochs} < {config.epochs}.')
    self.model = supernet_lib.build_supernet(
        config.space, macro=config.get('macro', 'cifar'),
        num_classes=self.info.num_classes, ops=ops,
        kind=config.search.get('supernet', 'mixture'),
        cells_per_stage=config.get('nb201_cells') or
        spaces_lib.nasbench201.CELLS_PER_STAGE)
    self.fixed = fixed_units(config, self.space)  # errors before latency
    self.latency = latency_lib.latency_source(config)
    self.mask = self.space.choice_mask.copy()
    if ops:  # search a subset of the candidates (tests, benchmarks)
      allowed = np.array([c in ops for c in self.space.units[0].choices])
      self.mask &= allowed[None, :]
    self.steps_per_epoch = config.get('steps_per_epoch') or max(
        1, len(data_lib.split_indices('weights', self.info.num_train)) //
        config.batch_size)
    self.total_steps = self.steps_per_epoch * config.epochs
    self.weight_tx, self.arch_tx = make_optimizers(
        config, self.total_steps, warmup_steps=self.steps_per_epoch)
    self.mesh = jax.sharding.Mesh(np.array(devices), ('data',))
    self.data_sharding = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec('data'))
    self.replicated = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec())
    if config.batch_size % len(devices):
      raise errors.InputError(
          f'config.batch_size ({config.batch_size}) must be a '
          f'multiple of the device count ({len(devices)}).')
    # The latency source's device numbers are an argument of the step, so
    # one compiled step serves every device and target (see LatencyModel).
    self.lat_params = jax.device_put(self.latency.params, self.replicated)
    self.step_fn = jax.jit(self._step, donate_argnums=0)
    self.eval_step = jax.jit(self._eval_step)
    self.calib_step = jax.jit(self._calib_step)

  # ------------------------------------------------------------ set-up
  def init_state(self) -> SearchState:
    state_rng = jax.random.PRNGKey(self.config.seed)
    size = self.info.image_size
    x = jnp.zeros((2, size, size, self.info.channels))
    w = jnp.broadcast_to(jnp.asarray(self.mask / self.mask.sum(-1,
                                                               keepdims=True),
                                     jnp.float32), (2,) + self.mask.shape)
    variables = initializers.fast_init(self.model, self.config.seed, x, w,
                                       train=False)
    params = {'net': variables['params'],
              'arch': jnp.zeros(self.mask.shape, jnp.float32)}
    state = SearchState(step=jnp.zeros((), jnp.int32),
                        arch_step=jnp.zeros((), jnp.int32), params=params,
                        batch_stats=variables.get('batch_stats', {}),  # none without BN
                        weight_opt=self.weight_tx.init(params),
                        arch_opt=self.arch_tx.init(params), rng=state_rng)
    return jax.device_put(state, self.replicated)

  def temperature(self, step: int) -> float:
    s = self.config.search
    return s.tau0 * s.tau_decay ** (step // self.steps_per_epoch)

  # ------------------------------------------------------------- steps
  def _step(self, state: SearchState, batch, tau, target_ms, arch_step,
            lat_params, path=None):
    """One weight step (``arch_step`` False) or architecture step (True).

    Both kinds share one compiled program (``arch_step`` is traced): the
    forward pass and per-example Gumbel sampling are the same, the loss and
    which parameters move differ. Compiling the supernet once instead of
    twice matters on CPU, where XLA takes minutes for it.

    ``path`` (one-hot ``[units, choices]``; the elastic supernet's weight
    steps): the whole batch trains that one sub-network instead of
    per-example Gumbel samples of the mixture.
    """
    stream = jnp.where(arch_step, state.arch_step, state.step)
    rng = jax.random.fold_in(
        jax.random.fold_in(state.rng, arch_step.astype(jnp.int32)), stream)
    cfg = self.config

    def loss_fn(params):
      if path is None:
        weights = dnas.gumbel_softmax(rng, params['arch'], self.mask, tau,
                                      batch['image'].shape[0],
                                      hard=cfg.search.hard, fixed=self.fixed)
      else:
        weights = jnp.broadcast_to(path, (batch['image'].shape[0],) +
                                   path.shape)
      logits, updates = self.model.apply(
          {'params': params['net'], 'batch_stats': state.batch_stats},
          batch['image'], weights, train=True, mutable=['batch_stats'])
      ce = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           batch['label'])
      if cfg.loss.get('latency_of', 'distribution') == 'distribution':
        # Expected latency of the architecture distribution itself. Soft
        # Gumbel samples at a high temperature are flatter than the
        # distribution, so their latency is biased towards the uniform
        # mixture's (quickstart at tau 2.6: samples 25.4 ms, distribution
        # 17.9 ms for a 25 ms target).
        probs = dnas.probabilities(params['arch'], self.mask, self.fixed)
        lat = jnp.broadcast_to(self.latency.fn(lat_params, probs),
                               ce.shape)
      else:  # 'sample': each example's sampled architecture (FBNet)
        lat = self.latency.fn(lat_params, weights)
      arch_loss = dnas.architecture_loss(ce, lat, cfg.loss, target_ms)
      loss = jnp.where(arch_step, arch_loss, jnp.mean(ce))
      acc = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
      return loss, (updates.get('batch_stats', {}), jnp.mean(ce),
                    jnp.mean(lat), acc)

    (loss, (stats, ce, lat, acc)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    w_updates, w_opt = self.weight_tx.update(grads, state.weight_opt,
                                             state.params)
    a_updates, a_opt = self.arch_tx.update(grads, state.arch_opt,
                                           state.params)
    pick = lambda a, w: jax.tree.map(lambda x, y: jnp.where(arch_step, x, y),
                                     a, w)
    state = state.replace(
        step=state.step + 1 - arch_step.astype(jnp.int32),
        arch_step=state.arch_step + arch_step.astype(jnp.int32),
        params=optax.apply_updates(state.params, pick(a_updates, w_updates)),
        # Architecture steps normalise with batch statistics but do not
        # update the running averages (see the module docstring).
        batch_stats=pick(state.batch_stats, stats),
        weight_opt=pick(state.weight_opt, w_opt),
        arch_opt=pick(a_opt, state.arch_opt))
    return state, {'loss': loss, 'ce': ce, 'accuracy': acc,
                   'loss_latency_ms': lat}

  def weight_step(self, state, batch, tau, target_ms, path=None):
    return self.step_fn(state, batch, tau, target_ms, jnp.asarray(False),
                        self.lat_params, path)

  def sample_path(self, step: int) -> np.ndarray:
    """One-hot ``[units, choices]`` of the sub-network that weight step
    ``step`` trains with uniform weight paths (the elastic supernet, or
    ``config.search.weight_paths = 'uniform'``): drawn by the space's own
    sampler (OFA's: kernel, expansion and depth uniform) among the searched
    choices, fixed units pinned, a function of (seed, step) so that a
    resumed run draws the same ones. Its stream is its own: a seed list
    ending in 0 is numpy's seed alone (``default_rng([s, 0])`` draws as
    ``default_rng(s)``), so without the tag step 0's path was the first
    random architecture of any sampler seeded with ``config.seed``."""
    rng = np.random.default_rng([self.config.seed, step, _PATH_STREAM])
    arch = self.space.sample_allowed(rng, 1, self.allowed())[0]
    if self.fixed is not None:
      rows = self.fixed.sum(-1) > 0
      arch[rows] = self.fixed[rows].argmax(-1)
    return self.space.one_hot(arch).astype(np.float32)

  def arch_step(self, state, batch, tau, target_ms):
    return self.step_fn(state, batch, tau, target_ms, jnp.asarray(True),
                        self.lat_params, None)

  def _eval_step(self, state: SearchState, batch, arch_probs):
    """(correct, counted) on ``batch`` for one discrete architecture
    (``arch_probs``: its one-hot rows) or a mixture (probabilities)."""
    weights = jnp.broadcast_to(arch_probs, (batch['image'].shape[0],) +
                               arch_probs.shape)
    logits = self.model.apply(
        {'params': state.params['net'], 'batch_stats': state.batch_stats},
        batch['image'], weights, train=False)
    correct = (jnp.argmax(logits, -1) == batch['label']) * batch['mask']
    return correct.sum(), batch['mask'].sum()

  # ----------------------------------------------------------- helpers
  @property
  def shard(self) -> tuple[int, int]:
    """``(process index, process count)``: which rows of each global
    training batch this process reads (``data.train_batches(shard=...)``)."""
    return jax.process_index(), jax.process_count()

  def put_local(self, rows):
    """One field of this process's rows of a global batch (a training
    stream read with :attr:`shard`) as the global array sharded over the
    mesh. The global stream is the same whatever the host count, so a run
    resumes and ends the same."""
    return jax.make_array_from_process_local_data(self.data_sharding,
                                                  np.asarray(rows))

  def put_batch(self, batch):
    """One field of a global batch as an array sharded over the mesh, for
    batches every process reads whole (the evaluation split's, padded and
    masked): each contributes its own rows, the ones its devices hold.
    Training streams read only their rows instead (:meth:`put_local`)."""
    rows = np.asarray(batch)
    count = jax.process_count()
    if count > 1:
      if len(rows) % count:
        raise ValueError(f'batch of {len(rows)} rows: expected a multiple of '
                         f'the {count} processes.')
      part = len(rows) // count
      index = jax.process_index()
      rows = rows[index * part:(index + 1) * part]
    return jax.make_array_from_process_local_data(self.data_sharding, rows)

  def allowed(self) -> np.ndarray:
    """``[U, C]`` bool: the choices a derived architecture may take (the
    searched ones; a fixed unit, e.g. OFA's resolution, only its one)."""
    return self.space.allowed_choices(self.mask, self.fixed)

  def probs(self, state) -> np.ndarray:
    return np.asarray(dnas.probabilities(state.params['arch'], self.mask,
                                         self.fixed))

  def _calib_step(self, state: SearchState, batch, arch_probs, sums):
    """Adds one batch's BN statistics (architecture fixed) to ``sums``.

    Flax updates ``ra' = m * ra + (1 - m) * batch_stat``; the batch statistic
    is recovered exactly as ``(ra' - m * ra) / (1 - m)``.
    """
    weights = jnp.broadcast_to(arch_probs, (batch['image'].shape[0],) +
                               arch_probs.shape)
    _, updates = self.model.apply(
        {'params': state.params['net'], 'batch_stats': state.batch_stats},
        batch['image'], weights, train=True, mutable=['batch_stats'])
    m = blocks.BN_MOMENTUM
    return jax.tree.map(lambda acc, new, old: acc + (new - m * old) / (1 - m),
                        sums, updates.get('batch_stats', {}),
                        state.batch_stats)

  def recalibrate(self, state: SearchState, arch: np.ndarray,
                  num_batches: Optional[int] = None) -> SearchState:
    """``state`` with BN statistics re-estimated for one architecture.

    The running averages of the search mix every candidate's outputs; a
    single architecture's layers see other input statistics. Its exact
    statistics are averaged over ``num_batches`` (default
    ``config.search.calib_batches``) batches of the weights split, without
    augmentation, as in single-path one-shot NAS and OFA.
    """
    num_batches = num_batches or self.config.search.get('calib_batches', 10)
    probs = jnp.asarray(self.space.one_hot(arch))
    sums = jax.tree.map(jnp.zeros_like, state.batch_stats)
    batches = data_lib.train_batches(
        self.config.data.name, split='weights',
        batch_size=self.config.batch_size, seed=self.config.seed,
        image_size=self.config.data.image_size,
        data_dir=self.config.data.get('data_dir'), augment=False,
        shard=self.shard)
    for _ in range(num_batches):
      batch = jax.tree.map(self.put_local, next(batches))
      sums = self.calib_step(state, batch, probs, sums)
    return state.replace(batch_stats=jax.tree.map(lambda x: x / num_batches,
                                                  sums))

  def accuracy(self, state, arch: np.ndarray, limit: Optional[int],
               recalibrate: bool = True) -> float:
    """Supernet accuracy of a discrete architecture (inherited weights, BN
    statistics recalibrated for it unless ``recalibrate`` is False)."""
    if recalibrate:
      state = self.recalibrate(state, arch)
    return self._accuracy(state, self.space.one_hot(arch), limit)

  def mixture_accuracy(self, state, limit: Optional[int]) -> Optional[float]:
    """Accuracy of the supernet as the search trained it: every layer the
    mixture of its candidates under the architecture distribution (no
    noise), with the search's own BN statistics. Far above a single
    architecture's after a short search (weights trained on mixtures).
    None for the elastic supernet, which runs one sub-network per batch
    and has no mixture to evaluate. (A supernet trained with uniform weight
    paths returns its mixture's accuracy, though it never trained as it.)"""
    if self.elastic:
      return None
    return self._accuracy(state, self.probs(state), limit)

  def _accuracy(self, state, probs: np.ndarray, limit: Optional[int]
                ) -> float:
    probs = jnp.asarray(probs, jnp.float32)
    correct = total = jnp.zeros(())  # summed on the device, read once
    for batch in data_lib.eval_batches(
        self.config.data.name, batch_size=self.config.batch_size,
        image_size=self.config.data.image_size,
        data_dir=self.config.data.get('data_dir'), limit=limit):
      batch = jax.tree.map(self.put_batch, batch)
      c, n = self.eval_step(state, batch, probs)
      correct, total = correct + c, total + n
    return float(correct) / max(float(total), 1.0)
