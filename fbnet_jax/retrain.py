"""Retrain a discrete architecture from scratch and report its accuracy.

``train_and_evaluate(config, arch, workdir)`` builds the standalone network
of ``arch`` (:mod:`fbnet_jax.models`), trains it on the whole training split
with SGD + momentum + cosine decay, and evaluates it on the eval split.
Checkpoints with orbax; a restarted run resumes, and a finished one is
read back. Both only under the settings they were started with
(:func:`run_settings`, kept in ``settings.json`` and ``retrain.json``): a
workdir of another architecture, seed or setting is a clear error, never
silently reused.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from fbnet_jax import data as data_lib
from fbnet_jax import errors
from fbnet_jax import initializers
from fbnet_jax import models
from fbnet_jax import spaces
from fbnet_jax import workdirs

RESULT_FILE = 'retrain.json'
SETTINGS_FILE = 'settings.json'
# The loss curve and training time up to the last checkpoint, so that a
# resumed run reports the whole run's, not only the steps after the resume.
LOG_FILE = 'train_log.json'
# Settings that do not change the result: a run may resume under others.
_IRRELEVANT = ('retrain.checkpoint_every', 'data.data_dir')
# The numeric settings of a retraining (errors.check_bounds).
BOUNDS = (
    errors.Bound('seed', 0, integer=True),
    errors.Bound('retrain.batch_size', 1, integer=True),
    errors.Bound('retrain.epochs', 1, integer=True),
    errors.Bound('retrain.steps_per_epoch', 0, integer=True, none_ok=True),
    errors.Bound('retrain.checkpoint_every', 1, integer=True),
    errors.Bound('retrain.lr', 0, open_low=True),
    errors.Bound('retrain.weight_decay', 0),
    # Read only by the evaluation at the end: checked before training.
    errors.Bound('data.eval_limit', 1, integer=True, none_ok=True),
)


class TrainState(flax.struct.PyTreeNode):
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: optax.OptState


def build_model(config, arch: Sequence[int], num_classes: int):
  """The standalone network of ``arch`` for ``config`` (its space, macro)."""
  return models.standalone(config.space, arch,
                           macro=config.get('macro', 'cifar'),
                           num_classes=num_classes)


def load_trained(config: ml_collections.ConfigDict, arch: Sequence[int],
                 workdir: str) -> tuple[Any, dict, int]:
  """(model, variables, step) of ``arch`` retrained in ``workdir``.

  Reads the latest orbax checkpoint that :func:`train_and_evaluate` wrote
  and checks that it was trained with this config's :func:`run_settings`
  for ``arch`` (its ``settings.json``) and that its parameters are those of
  ``arch``'s network. An unfinished retraining (no ``retrain.json``) is
  read with a warning.
  """
  info = data_lib.dataset_info(config.data.name, config.data.image_size)
  model = build_model(config, arch, info.num_classes)  # one that can be built
  directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir}: no checkpoints/ directory; retrain '
                            'the architecture first (experiments.train).')
  settings_path = os.path.join(workdir, SETTINGS_FILE)
  recorded = workdirs.read_json(settings_path)
  if recorded is not None:
    workdirs.check(settings_path, recorded, run_settings(config, arch),
                   remedy='use the architecture and config it was retrained '
                   'with (--arch, --config).')
  else:
    logging.warning('%s: no %s, so the settings it was retrained with '
                    'cannot be checked against this config.', workdir,
                    SETTINGS_FILE)
  if not os.path.exists(os.path.join(workdir, RESULT_FILE)):
    logging.warning('%s: no %s, so the retraining did not finish; reading '
                    'its latest checkpoint.', workdir, RESULT_FILE)
  # The state this config and architecture train, on one device: a
  # checkpoint saved from a mesh of other devices (data-parallel
  # retraining) is restored onto this process's first device.
  variables = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, info.image_size, info.image_size,
                                        info.channels)), train=False))
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one),
      jax.eval_shape(lambda: _initial_state(config, variables, 1)[0]))
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'{directory}: holds no checkpoint.')
    try:
      state = workdirs.restore_checkpoint(manager, target, step)
    except errors.InputError as e:  # its message advises a search's resume
      raise errors.InputError(
          f'{directory}: checkpoint {step}: its parameters are not those of '
          f'the architecture {list(arch)} with {info.num_classes} classes '
          'retrained under this config; expected experiments.train\'s '
          'workdir of this architecture and config (--retrain_dir, --arch, '
          '--config).') from e
  return model, {'params': state.params,
                 'batch_stats': state.batch_stats}, int(step)


def load_arch(path: str, config: Optional[ml_collections.ConfigDict] = None,
              where: Optional[str] = None,
              check: Optional[Callable[[dict], None]] = None
              ) -> tuple[list[int], dict]:
  """The derived architecture of a search's ``result.json``, checked.

  Args:
    path: a ``result.json`` written by ``experiments.search``.
    config: the config the architecture is to be built with, if any: its
      ``space`` must be the file's, and so must its FBNet ``macro`` where
      the file records one (files written before it did are not checked).
    where: how errors name the file (default: ``path``).
    check: called with the result before its architecture is validated
      (e.g. a caller's own space check, the clearer error).

  Returns:
    (the ``arch_index`` field as a list of ints, the whole result).

  Raises:
    ValueError: naming ``path``, the field and what was expected (an
      ``ArchitectureError`` for an architecture not of the file's space).
  """
  where = where or path
  if not os.path.exists(path):
    raise errors.InputError(
        f'{where}: no such file; expected the result.json that '
        'experiments.search wrote (python -m experiments.search '
        '--workdir=W writes W/result.json).')
  if os.path.isdir(path):
    raise errors.InputError(
        f'{where}: is a folder; expected the result.json that '
        f'experiments.search wrote (e.g. {os.path.join(path, "result.json")}).')
  try:
    with open(path) as f:
      result = json.load(f)
  except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
    raise errors.InputError(f'{where}: not a JSON file ({e}); expected a '
                            'result.json written by experiments.search.') from e
  if not isinstance(result, dict):
    raise errors.InputError(f'{where}: holds a JSON {type(result).__name__}; '
                            'expected the object of a result.json written by '
                            'experiments.search.')
  for key in ('space', 'arch_index'):
    if key not in result:
      raise errors.InputError(f'{where}: field {key!r} missing; expected a '
                              'result.json written by experiments.search.')
  space = result_space(where, result)
  if config is not None:
    _check_config(where, result, config)
  if check is not None:
    check(result)
  arch = result_arch(result['arch_index'], space, f'{where}: field '
                     'arch_index')
  names = space.names(arch)
  if 'arch' in result and result['arch'] != names:
    got = result['arch']
    if isinstance(got, list) and len(got) == len(names):
      differ = [i for i, (a, b) in enumerate(zip(got, names)) if a != b]
      what = (f'{len(differ)} unit{"s" * (len(differ) > 1)} differ'
              f'{"s" * (len(differ) == 1)}, first unit {differ[0]}: arch '
              f'{got[differ[0]]!r}, arch_index {arch[differ[0]]} = '
              f'{names[differ[0]]!r}')
    else:
      what = f'arch is {got!r}, expected a list of {len(names)} op names'
    raise errors.InputError(
        f'{where}: fields arch and arch_index name different architectures '
        f'({what}); arch_index is the one built. Edit both, or delete '
        'arch.')
  return arch, result


def result_arch(arch, space, where: str) -> list[int]:
  """One architecture field of a result.json (``where`` names it), checked
  to be a list of choice indices valid in ``space``."""
  if not (isinstance(arch, list) and all(
      isinstance(a, int) and not isinstance(a, bool) for a in arch)):
    raise spaces.ArchitectureError(
        f'{where} is {arch!r}; expected a list of {space.num_units} '
        f'{space.name} choice indices.')
  space.validate(arch, where=where)
  return [int(a) for a in arch]


def result_space(path: str, result: dict):
  """The search space a result.json names (fields ``space``, ``macro``)."""
  name = result['space']
  if not isinstance(name, str) or name not in spaces.SPACES:
    raise errors.InputError(f'{path}: field space is {name!r}; expected one of '
                            f'{", ".join(sorted(spaces.SPACES))}.')
  macro = result.get('macro') or 'cifar'  # '' or absent: the default
  macros = spaces.get_space_class(name).MACROS
  if macros and (not isinstance(macro, str) or macro not in macros):
    raise errors.InputError(
        f'{path}: field macro is {macro!r}; expected one of '
        f'{", ".join(macros)}.')
  return spaces.space_for(name, macro)


def _check_config(path: str, result: dict,
                  config: ml_collections.ConfigDict) -> None:
  """The file's space and FBNet macro network must be ``config``'s."""
  if result['space'] != config.space:
    raise errors.InputError(
        f'{path}: field space is {result["space"]!r}, the '
        f'config\'s is {config.space!r}; use the config the '
        'search ran with.')
  if (not spaces.get_space_class(config.space).MACROS or
      not result.get('macro')):
    return  # a space of one network; or an older file, which has no macro
  mine = config.get('macro', 'cifar') or 'cifar'
  if result['macro'] != mine:
    raise errors.InputError(
        f'{path}: field macro is {result["macro"]!r}, the '
        f'config\'s is {mine!r}; use the config the search ran '
        f'with (or --config.macro={result["macro"]}).')


def run_settings(config: ml_collections.ConfigDict,
                 arch: Sequence[int]) -> dict:
  """What a retraining's result depends on, as JSON values."""
  settings = {'arch': [int(a) for a in arch], 'seed': int(config.seed),
              'space': config.space, 'macro': config.get('macro', 'cifar'),
              'retrain': config.retrain.to_dict(),
              'data': config.data.to_dict()}
  return workdirs.as_json(workdirs.without(settings, _IRRELEVANT))


def train_and_evaluate(config: ml_collections.ConfigDict,
                       arch: Sequence[int], workdir: str, *,
                       progress: bool = True, devices=None) -> dict:
  """Trains ``arch`` with ``config.retrain`` settings; returns the result.

  Data-parallel over ``devices`` (default: this process's devices): the
  state replicated, each batch split over them along a 1-D ``data`` mesh
  (batch norm's statistics are the whole batch's, as on one device). One
  process only: a multi-host job is refused (the search runs multi-host).

  A finished run in ``workdir`` (its ``retrain.json``) is returned as it
  is; a half-finished one resumes from its checkpoint. Either only if its
  :func:`run_settings` are this run's; otherwise a ``ValueError`` names the
  settings that differ.
  """
  errors.check_bounds(config, BOUNDS)
  settings = run_settings(config, arch)
  result_path = os.path.join(workdir, RESULT_FILE)
  finished = workdirs.read_json(result_path)
  if finished is not None:  # read back, on any devices
    workdirs.check(result_path, finished, settings)
    logging.info('retrain: %s is finished; read back, not retrained.',
                 result_path)
    return finished
  if jax.process_count() > 1:
    raise errors.InputError(
        f'retraining runs in one process, not {jax.process_count()}: '
        'expected experiments.train on one host (data-parallel over its '
        'devices).')
  devices = list(devices or jax.local_devices())
  if config.retrain.batch_size % len(devices):
    raise errors.InputError(
        f'config.retrain.batch_size ({config.retrain.batch_size}) must be a '
        f'multiple of the device count ({len(devices)}); expected a batch '
        'size that divides, or fewer visible devices (e.g. '
        'CUDA_VISIBLE_DEVICES).')
  r = config.retrain
  info = data_lib.dataset_info(config.data.name, config.data.image_size)
  model = build_model(config, arch, info.num_classes)  # checks the arch
  arch_size = getattr(model, 'input_size', None)  # OFA: its resolution unit
  if arch_size is not None and arch_size != info.image_size:
    logging.warning(
        'retrain: the architecture\'s resolution unit is %d px, but it is '
        'trained and evaluated at config.data.image_size = %d px (its '
        'latency was scored at %d).', arch_size, info.image_size, arch_size)
  # Before the workdir is written: a run that cannot start leaves nothing
  # that a corrected run would have to match.
  data_lib.check_prepared(config.data.name, config.data.get('data_dir'))
  manager = workdirs.checkpoint_manager(
      workdir, max_to_keep=1, every=r.get('checkpoint_every', 500))
  workdirs.record_or_check(os.path.join(workdir, SETTINGS_FILE), settings,
                           resuming=manager.latest_step() is not None)
  x = jnp.zeros((2, info.image_size, info.image_size, info.channels))
  variables = initializers.fast_init(model, config.seed, x, train=False)
  steps_per_epoch = r.get('steps_per_epoch') or max(
      1, info.num_train // r.batch_size)
  total = steps_per_epoch * r.epochs
  state, tx = _initial_state(config, variables, total)
  mesh = jax.sharding.Mesh(np.array(devices), ('data',))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  state = jax.device_put(state, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))  # replicated
  if manager.latest_step() is not None:
    state = workdirs.restore_checkpoint(manager, state)

  train_step, eval_step = _steps(model, tx)
  put = lambda batch: jax.device_put(batch, split)

  batches = data_lib.train_batches(
      config.data.name, split='train', batch_size=r.batch_size,
      seed=config.seed, image_size=config.data.image_size,
      data_dir=config.data.get('data_dir'), start_step=int(state.step),
      augment=config.data.get('augment', True))
  start = int(state.step)
  log_path = os.path.join(workdir, LOG_FILE)
  log = workdirs.read_json(log_path) if start else None
  losses = [l for l in (log or {}).get('train_loss', []) if l[0] < start]
  seconds = (log or {}).get('train_seconds', 0.0)
  resumed = (log or {}).get('resumed_at_steps', []) + ([start] if start else [])
  t0 = time.time()

  def save(step, force=False):
    if manager.save(step, args=ocp.args.StandardSave(state), force=force):
      workdirs.write_json(log_path, {
          'step': step, 'train_loss': losses,
          'train_seconds': seconds + time.time() - t0,
          'resumed_at_steps': resumed})

  if start:
    logging.info('retrain: resumed %s at step %d of %d.', workdir, start,
                 total)
  try:
    for step in tqdm.tqdm(range(start, total), total=total, initial=start,
                          disable=not progress, desc='retrain', unit='step'):
      state, loss = train_step(state, put(next(batches)))
      if step % 10 == 0 or step == total - 1:
        losses.append([step, float(loss)])
      save(step + 1)
    if manager.latest_step() != total:
      save(total, force=True)
  finally:  # interrupted (Ctrl-C), it still completes the checkpoint begun
    manager.wait_until_finished()
  train_seconds = seconds + time.time() - t0  # evaluation left out
  correct, count = _evaluate(config, eval_step, state, put)
  result = {**settings, 'accuracy': correct / count,
            'num_eval': int(count), 'steps': total,
            'input_size': info.image_size,
            'num_devices': len(devices),  # data-parallel over them
            'train_seconds': train_seconds,
            'train_loss': losses, 'resumed_at_steps': resumed,
            'environment': workdirs.environment()}
  logging.info('retrain: accuracy %.4f on %d images', result['accuracy'],
               count)
  workdirs.write_json(os.path.join(workdir, RESULT_FILE), result)
  return result


def _initial_state(config: ml_collections.ConfigDict, variables: dict,
                   total_steps: int) -> tuple[TrainState, Any]:
  """(the state at step 0, the optimiser) for the network's initial
  ``variables``: SGD with Nesterov momentum and a cosine schedule over
  ``total_steps``, weight decay on the kernels."""
  r = config.retrain
  decay = jax.tree_util.tree_map_with_path(
      lambda p, _: initializers.is_kernel(p), variables['params'])
  tx = optax.chain(optax.add_decayed_weights(r.weight_decay, mask=decay),
                   optax.sgd(optax.cosine_decay_schedule(r.lr, total_steps),
                             momentum=0.9, nesterov=True))
  return TrainState(step=jnp.zeros((), jnp.int32),
                    params=variables['params'],
                    batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(variables['params'])), tx


def _steps(model: flax.linen.Module, tx: optax.GradientTransformation):
  """The jitted training step (cross-entropy, BN statistics updated; the
  state donated, updated in place, as the search's steps are) and the
  evaluation step (correct predictions among a batch's real images)."""
  @functools.partial(jax.jit, donate_argnums=0)
  def train_step(state, batch):
    def loss_fn(params):
      logits, updates = model.apply(
          {'params': params, 'batch_stats': state.batch_stats},
          batch['image'], train=True, mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(
          logits, batch['label']).mean()
      return loss, updates['batch_stats']
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(step=state.step + 1,
                         params=optax.apply_updates(state.params, updates),
                         batch_stats=stats, opt_state=opt_state), loss

  @jax.jit
  def eval_step(state, batch):
    logits = model.apply({'params': state.params,
                          'batch_stats': state.batch_stats},
                         batch['image'], train=False)
    return ((jnp.argmax(logits, -1) == batch['label']) * batch['mask']).sum()

  return train_step, eval_step


def _evaluate(config: ml_collections.ConfigDict, eval_step,
              state: TrainState, put) -> tuple[float, float]:
  """(correct predictions, images) over the evaluation split; ``put``
  places a batch on the devices. Summed on the device, read once (no wait
  per batch)."""
  correct, count = jnp.zeros(()), 0.0
  for batch in data_lib.eval_batches(
      config.data.name, batch_size=config.retrain.batch_size,
      image_size=config.data.image_size, data_dir=config.data.get('data_dir'),
      limit=config.data.get('eval_limit')):
    correct = correct + eval_step(state, put(batch))
    count += float(batch['mask'].sum())
  return float(correct), count
