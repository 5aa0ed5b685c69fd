"""Meta-training: episodes sampled on the accelerator, scanned under jit.

``train_and_evaluate(config, workdir)`` meta-trains on the meta-train
devices' pool rows, selects the checkpoint with the best Spearman on the
meta-valid devices (scored on held-out pool rows: no query row of any device
is ever seen), checkpoints to ``workdir`` (with ``history.json`` and the curves of
``meta_train.png``) and resumes from it, only under
the config it was started with (``config.json``). Chunking and meta-test
settings may change, and ``meta.num_episodes`` may grow to train on: the
rest then follows the longer run's cosine schedule, which is not what a
fresh run of that length would have done.
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs
from meta import adaptation
from meta import latency_data
from meta import maml
from meta import plots
from meta import tasks as tasks_lib

CHECKPOINT = 'checkpoint.msgpack'
PREDICTOR_DIR = adaptation.PREDICTOR_DIR
HISTORY = 'history.json'
PLOT_FILE = 'meta_train.png'
CONFIG_FILE = 'config.json'
# May change on resume: how long to train (only to grow), how episodes are
# chunked into jitted calls, and the meta-test's support draws.
_RESUMABLE_CHANGES = ('meta.num_episodes', 'meta.episodes_per_call',
                      'eval.seeds')
# The numeric settings of an evaluation (meta-valid here, meta-test in
# meta.meta_test) and of meta-training (errors.check_bounds).
EVAL_BOUNDS = (
    errors.Bound('seed', 0, integer=True),
    errors.Bound('eval.num_samples', 0, integer=True),
    errors.Bound('eval.seeds', 1, integer=True),
    errors.Bound('eval.every', 1, integer=True),
    errors.Bound('eval.valid_fraction', 0, 1, open_low=True, open_high=True),
    errors.Bound('eval.valid_seeds', 1, integer=True),
)
BOUNDS = EVAL_BOUNDS + (
    errors.Bound('model.hidden', 1, integer=True),
    errors.Bound('meta.num_episodes', 1, integer=True),
    errors.Bound('meta.tasks_per_episode', 1, integer=True),
    errors.Bound('meta.num_support', 0, integer=True),
    errors.Bound('meta.num_query', 1, integer=True),
    errors.Bound('meta.inner_steps', 0, integer=True),
    errors.Bound('meta.eval_inner_steps', 0, integer=True, none_ok=True),
    errors.Bound('meta.inner_lr', 0),
    errors.Bound('meta.inner_grad_clip', 0),
    errors.Bound('meta.kl_weight', 0),
    errors.Bound('meta.ridge_precision',
                 *np.exp(maml.RIDGE_LOG_PRECISION_RANGE).round(6).tolist()),
    errors.Bound('meta.meta_lr', 0, open_low=True),
    errors.Bound('meta.prior_lr_scale', 0),
    errors.Bound('meta.grad_clip', 0, open_low=True),
    errors.Bound('meta.ref_dropout', 0, 1),
    errors.Bound('meta.task_mixup', 0, 1),
    errors.Bound('meta.episodes_per_call', 1, integer=True),
)


@flax.struct.dataclass
class MetaState:
  step: jnp.ndarray
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


@flax.struct.dataclass
class EpisodeData:
  """Everything episodes are drawn from, resident on the device."""
  probs: jnp.ndarray  # [N, U, C] one-hot of the space's architecture list
  latency: jnp.ndarray  # [D, N] meta-train devices
  scale: jnp.ndarray  # [D] per-device median pool latency (for mixing)
  pool: jnp.ndarray  # [P] rows episodes may use (pool, minus references)
  refs: jnp.ndarray  # [R] reference-architecture rows


def episode_data(config) -> EpisodeData:
  data = latency_data.load_space_data(config.space)
  sp = spaces_lib.get_space(config.space)
  pool = np.arange(data.split.pool_rows)
  pool = pool[~np.isin(pool, data.reference_rows)]
  lat = np.stack([data.device_latency(d) for d in data.split.meta_train])
  return EpisodeData(probs=jnp.asarray(sp.one_hot(data.archs)),
                     latency=jnp.asarray(lat),
                     scale=jnp.asarray(np.median(lat[:, pool], axis=1)),
                     pool=jnp.asarray(pool), refs=jnp.asarray(data.reference_rows))


def sample_task(rng: jax.Array, data: EpisodeData, config) -> dict:
  """One meta-train task: a device (or a mixture), support and query rows."""
  m = config.meta
  keys = jax.random.split(rng, 6)
  num_devices = data.latency.shape[0]
  lat = data.latency[jax.random.randint(keys[0], (), 0, num_devices)]
  if m.task_mixup > 0:
    w = jax.random.dirichlet(keys[1], jnp.full((num_devices,), 0.5))
    mixed = (w / data.scale) @ data.latency * jnp.mean(data.scale)
    lat = jnp.where(jax.random.bernoulli(keys[2], m.task_mixup), mixed, lat)
  # Rows drawn with replacement: a draw without replacement (permutation or
  # top-k of the pool) costs as much as the whole meta-gradient on CPU, and
  # a support row reappearing among 200 query rows (p ~ 0.05 per row) is
  # harmless for training.
  picks = jax.random.randint(keys[3], (m.num_support + m.num_query,), 0,
                             data.pool.shape[0])
  sample_rows = data.pool[picks[:m.num_support]]
  query_rows = data.pool[picks[m.num_support:]]
  num_refs = data.refs.shape[0]
  drop = jax.random.bernoulli(keys[4], m.ref_dropout)
  keep = jax.random.bernoulli(keys[5], 0.5, (num_refs,)) | ~drop
  ref_mask = keep.astype(jnp.float32)
  support_rows = jnp.concatenate([data.refs, sample_rows])
  weights = jnp.concatenate([ref_mask, jnp.ones((m.num_support,))])
  t_support = maml.to_target(lat[support_rows], m.target)
  mean, std = maml.support_stats(t_support, weights)
  return dict(
      support_probs=data.probs[support_rows],
      support_y=(t_support - mean) / std, support_w=weights,
      query_probs=data.probs[query_rows],
      query_y=(maml.to_target(lat[query_rows], m.target) - mean) / std,
      hardware=maml.hardware_embedding(t_support[:num_refs], ref_mask, mean,
                                       std))


def make_optimizer(config) -> optax.GradientTransformation:
  """Adam on the meta-parameters; step sizes trained only for Meta-SGD."""
  m = config.meta
  labels = {'net': 'meta', 'modulator': 'meta', 'ridge_log_precision': 'prior',
            'inner_lr': 'meta' if m.learn_inner_lr else 'frozen'}
  def label_fn(params):
    return {k: jax.tree.map(lambda _: labels[k], v) for k, v in params.items()}
  schedule = optax.cosine_decay_schedule(m.meta_lr, m.num_episodes, alpha=0.1)
  trainable = {'meta': optax.identity(), 'prior': optax.identity(),
               'frozen': optax.set_to_zero()}
  return optax.apply_if_finite(optax.chain(
      # Frozen step sizes (MAML) are zeroed before the global norm is
      # taken, so that their gradients do not shrink the real update.
      optax.multi_transform(trainable, label_fn),
      optax.clip_by_global_norm(m.grad_clip),
      optax.multi_transform({
          'meta': optax.adam(schedule),
          # The ridge prior is a handful of log-precisions: a larger step.
          'prior': optax.adam(lambda step: schedule(step) * m.prior_lr_scale),
          'frozen': optax.set_to_zero()}, label_fn)),
                                max_consecutive_errors=20)


def make_train_chunk(config, optimizer, num_episodes: int):
  """``(state, data) -> (state, metrics)``: ``num_episodes`` episodes in one
  scan. The data is an argument, not a closure: captured arrays would be
  baked into the program as constants."""
  _, _, apply_net, apply_mod = adaptation.build_models(config)
  cfg = adaptation.inner_config(config)
  m = config.meta

  def one_episode(state: MetaState, data: EpisodeData):
    rng = jax.random.fold_in(state.rng, state.step)
    k_tasks, k_loss = jax.random.split(rng)
    episode = jax.vmap(lambda k: sample_task(k, data, config))(
        jax.random.split(k_tasks, m.tasks_per_episode))
    (loss, aux), grads = jax.value_and_grad(maml.episode_loss, has_aux=True)(
        state.params, apply_net, apply_mod, cfg, episode, k_loss, m.kl_weight)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    state = state.replace(step=state.step + 1, params=params,
                          opt_state=opt_state)
    return state, dict(loss=loss, **aux)

  def chunk(state, data):
    state, metrics = jax.lax.scan(lambda s, _: one_episode(s, data), state,
                                  None, length=num_episodes)
    return state, jax.tree.map(jnp.mean, metrics)

  return jax.jit(chunk, donate_argnums=0)


def validation_device(space: str, name: str, valid_fraction: float,
                      unseen_query: bool = False) -> latency_data.Device:
  """Meta-valid device ``name`` as model selection sees it.

  Its pool is cut in two: support is drawn from the first ``1 -
  valid_fraction`` (and the reference architectures); the query is the
  rest of the pool (selection's rows: architectures that meta-training's
  episodes draw on other devices) or, with ``unseen_query``, the device's
  own query rows (architectures no episode draws; for
  ``benchmarks.metavalid_rows``).
  """
  data = latency_data.load_space_data(space)
  dev = latency_data.bundled_device(space, name)
  rows = dev.meta['benchmark_rows']
  ref = np.isin(rows, data.reference_rows)
  cut = int(data.split.pool_rows * (1 - valid_fraction))
  support = (rows < cut) | ref
  query = (dev.is_query if unseen_query
           else (rows >= cut) & (rows < data.split.pool_rows)) & ~ref
  keep = support | query
  return latency_data.Device(
      name=name, space=space, archs=dev.archs[keep],
      latency_ms=dev.latency_ms[keep], is_query=query[keep],
      source=dev.source)


def validation_tasks(config, split: str = 'meta_valid'
                     ) -> list[tasks_lib.FewShotTask]:
  """Meta-valid tasks scored on held-out *pool* rows, never query rows
  (:func:`validation_device`)."""
  data = latency_data.load_space_data(config.space)
  out = []
  for name in getattr(data.split, split):
    held_dev = validation_device(config.space, name,
                                 config.eval.valid_fraction)
    try:
      out += tasks_lib.make_tasks(
          held_dev, num_samples=config.eval.num_samples,
          seeds=list(range(config.eval.valid_seeds)), trim=config.eval.trim)
    except latency_data.DeviceFileError as e:  # a split the settings made
      raise errors.InputError(
          f'config.eval.valid_fraction: {config.eval.valid_fraction} leaves '
          f'{split} device {name} {int(held_dev.is_query.sum())} query rows '
          f'and {int((~held_dev.is_query).sum())} support rows of its '
          f'{data.split.pool_rows} pool rows, too few for '
          f'config.eval.num_samples={config.eval.num_samples} samples and '
          'a Spearman correlation on at least 2 query rows.') from e
  return out


def make_validator(config, val_tasks):
  """``meta_params -> mean Spearman`` over the validation tasks."""
  _, _, apply_net, apply_mod = adaptation.build_models(config)
  cfg = adaptation.inner_config(config, evaluation=True)
  arrays = [adaptation.support_arrays(config.space, t.support_archs,
                                      t.support_ms, t.reference_ms,
                                      config.meta.target) for t in val_tasks]
  batch = {k: jnp.stack([a[k] for a in arrays])
           for k in ('support_probs', 'support_y', 'support_w', 'hardware')}
  sp = spaces_lib.get_space(config.space)
  query = jnp.stack([jnp.asarray(sp.one_hot(t.query_archs)) for t in val_tasks])

  @jax.jit
  def predict(meta_params, batch, query):  # data as arguments, not constants
    def one(task, q):
      adapted, _ = maml.adapt(meta_params, apply_net, apply_mod, cfg,
                              task['support_probs'], task['support_y'],
                              task['support_w'], task['hardware'])
      return maml.predict(apply_net, adapted, q, task['hardware'])
    return jax.vmap(one)(batch, query)

  def validate(meta_params) -> float:
    pred = np.asarray(predict(meta_params, batch, query))
    return float(np.mean([tasks_lib.spearman(p, t.query_ms)
                          for p, t in zip(pred, val_tasks)]))
  return validate


def _save(path: str, obj) -> None:
  with workdirs.atomic_open(path, 'wb') as f:
    f.write(flax.serialization.to_bytes(obj))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, progress: bool = True) -> adaptation.MetaPredictor:
  """Meta-trains, selects on meta-valid, saves ``workdir/predictor``.

  Returns:
    The selected meta-trained predictor.
  """
  errors.check_bounds(config, BOUNDS)
  m = config.meta
  if m.num_support == 0 and m.ref_dropout > 0:
    raise errors.InputError(
        f'config.meta.num_support: 0 with config.meta.ref_dropout '
        f'{m.ref_dropout}: an episode can then drop every reference and '
        'adapt on no measurement at all; expected num_support >= 1, or '
        'ref_dropout 0.')
  chunk_size = min(m.episodes_per_call, config.eval.every)
  if m.num_episodes % chunk_size or config.eval.every % chunk_size:
    raise errors.InputError(
        f'config.meta.num_episodes ({m.num_episodes}) and config.eval.every '
        f'({config.eval.every}): expected multiples of '
        f'min(meta.episodes_per_call, eval.every) = {chunk_size}, the '
        'episodes of one compiled call (otherwise training runs past '
        'num_episodes, or validates and checkpoints less often than asked).')
  adaptation.inner_config(config)  # meta.head/adapt/target, before writing
  val_tasks = validation_tasks(config)  # config.eval's split, likewise
  os.makedirs(workdir, exist_ok=True)
  ckpt = os.path.join(workdir, CHECKPOINT)
  workdirs.record_or_check(
      os.path.join(workdir, CONFIG_FILE),
      workdirs.without(config.to_dict(), _RESUMABLE_CHANGES),
      resuming=os.path.exists(ckpt))
  data = episode_data(config)
  optimizer = make_optimizer(config)
  params = adaptation.init_meta_params(config, jax.random.PRNGKey(config.seed))
  state = MetaState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params),
                    rng=jax.random.PRNGKey(config.seed + 1))
  # A host copy (np.array copies; device_get alone may return a view that
  # pins the buffer): the training chunk donates ``state.params`` (and so
  # ``params``) to its output, which must not touch a best that no
  # validation replaced.
  best = {'params': jax.tree.map(np.array, jax.device_get(params)),
          'score': -2.0, 'step': 0}
  history = []
  if os.path.exists(ckpt):
    with open(ckpt, 'rb') as f:
      try:
        restored = flax.serialization.from_bytes(
            {'state': state, 'best': best}, f.read())
      except ValueError as e:  # another tree, or not a whole msgpack file
        raise errors.InputError(
            f"{ckpt}: does not hold this run's state ({e}); expected a "
            'checkpoint this code wrote for this config (one written '
            'before the clipping fixes of 2026-12-03 has another '
            'structure): start again in a new workdir.') from e
    state, best = restored['state'], restored['best']
    with open(os.path.join(workdir, HISTORY)) as f:
      history = json.load(f)['history']
    # The history is written before the checkpoint: a run killed between
    # the two has a record of a chunk that it will train again.
    history = [h for h in history if h['episode'] <= int(state.step)]
    logging.info('Resumed from %s at episode %d.', ckpt, int(state.step))
    if int(state.step) > m.num_episodes:
      raise errors.InputError(
          f'{ckpt}: is at episode {int(state.step)}, past '
          f'meta.num_episodes={m.num_episodes}; resume with at '
          'least as many episodes, or use another workdir.')

  chunk = make_train_chunk(config, optimizer, chunk_size)
  validate = make_validator(config, val_tasks)
  start = int(state.step)
  bar = tqdm.tqdm(total=m.num_episodes, initial=start, disable=not progress,
                  desc=f'meta-train {config.space}', unit='ep')
  t0 = time.time()
  # Once the first chunk and the first validation (both compiling) are
  # done: the compiled rate is timed from there.
  compiled_from = None
  while int(state.step) < m.num_episodes:
    state, metrics = chunk(state, data)
    step = int(state.step)
    bar.update(chunk_size)
    if compiled_from is None and history and history[-1]['episode'] > start:
      compiled_from = (step, time.time())
    if step % config.eval.every == 0 or step >= m.num_episodes:
      score = validate(state.params)
      if not np.isfinite(score):  # e.g. constant predictions: never selected
        logging.warning('Episode %d: meta-valid Spearman is %s; this '
                        'checkpoint cannot be selected.', int(state.step),
                        score)
      rec = {'episode': step, 'valid_spearman': score,
             **{k: float(v) for k, v in metrics.items()}}
      history.append(rec)
      if score > best['score']:
        best = {'params': jax.device_get(state.params), 'score': score,
                'step': step}
      bar.set_postfix(loss=f'{rec["loss"]:.3f}', valid=f'{score:.4f}',
                      best=f'{best["score"]:.4f}')
      _write_history(workdir, history, best)
      _save(ckpt, {'state': state, 'best': best})
  bar.close()
  end = time.time()
  elapsed = end - t0
  done = int(state.step) - start
  compiled = None
  if compiled_from is not None and int(state.step) > compiled_from[0]:
    compiled = (int(state.step) - compiled_from[0]) / max(
        end - compiled_from[1], 1e-9)
  logging.info('%d episodes in %.1fs (%.1f episodes/s; once compiled %s).',
               done, elapsed, done / max(elapsed, 1e-9),
               'n/a' if compiled is None else f'{compiled:.1f}')
  predictor = adaptation.MetaPredictor(config, best['params'])
  predictor.save(os.path.join(workdir, PREDICTOR_DIR))
  # episodes_per_s includes compiling the training chunk and the
  # validation; episodes_per_s_compiled starts after both.
  _write_history(workdir, history, best,
                 episodes_per_s=done / max(elapsed, 1e-9),
                 episodes_per_s_compiled=compiled)
  plots.plot_meta_train(history, int(best['step']),
                        os.path.join(workdir, PLOT_FILE))
  return predictor


def _write_history(workdir, history, best, **extra) -> None:
  workdirs.write_json(  # atomic: a kill leaves the previous file whole
      os.path.join(workdir, HISTORY),
      {'history': history, 'best_episode': int(best['step']),
       'best_valid_spearman': float(best['score']), **extra})
