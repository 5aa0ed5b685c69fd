"""Few-shot adaptation API: a meta-trained predictor -> a device's predictor.

    predictor = MetaPredictor.load(f'{workdir}/predictor')  # meta-trained
    adapted = predictor.adapt(support_archs, support_ms, reference_ms)
    adapted.predict_ms(archs)           # milliseconds, jit-compiled, batched
    adapted.save(path); AdaptedPredictor.load(path)

``AdaptedPredictor.latency_fn_with_params(params, probs)`` is what the
supernet's jitted step calls (``latency_fn(probs)`` is the same with the
adapted parameters bound): a pure function ``probs [..., U, C] ->
milliseconds``, differentiable in the architecture probabilities: the network evaluated at the soft architecture
(for a distribution, a plug-in estimate of its expected latency, not the
expectation itself: 23.66 vs 23.71 ms by Monte Carlo at uniform
probabilities on one device).
"""

from __future__ import annotations

import functools
import json
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs
import meta
from meta import latency_data
from meta import maml
from meta import predictor as predictor_lib
from meta import tasks as tasks_lib

PARAMS_FILE = 'params.msgpack'
CONFIG_FILE = 'config.json'
PREDICTOR_DIR = 'predictor'  # a meta_train workdir's saved predictor


def build_models(config: ml_collections.ConfigDict):
  """The net and modulator modules, and their apply functions for maml."""
  net = predictor_lib.LatencyNet(
      space=config.space, hidden=config.model.hidden, trunk=config.model.trunk,
      use_hardware=config.model.use_hardware,
      standardize_physics=config.model.standardize_physics,
      gcn_graph=config.model.get('gcn_graph', 'fixed'))
  modulator = predictor_lib.Modulator(hidden=config.model.hidden,
                                      variational=config.meta.variational)

  apply_net = maml.NetFns(
      embed=lambda params, probs, hardware: net.apply(
          {'params': params}, probs, hardware, method=net.embed),
      head=lambda params, x, probs, modulation: net.apply(
          {'params': params}, x, probs, modulation, method=net.head))

  def apply_modulator(params, hardware, rng):
    return modulator.apply({'params': params}, hardware, rng)

  return net, modulator, apply_net, apply_modulator


def inner_config(config, *, evaluation: bool = False) -> maml.InnerConfig:
  steps = config.meta.inner_steps
  if evaluation and config.meta.get('eval_inner_steps', None) is not None:
    steps = config.meta.eval_inner_steps
  return maml.InnerConfig(num_steps=steps, first_order=config.meta.first_order,
                          modulation=config.meta.modulation,
                          adapt=config.meta.adapt, target=config.meta.target,
                          head=config.meta.head,
                          grad_clip=config.meta.inner_grad_clip)


def init_meta_params(config, rng: jax.Array) -> dict:
  """Fresh meta-parameters ``{'net', 'inner_lr', 'modulator',
  'ridge_log_precision'}``."""
  space = spaces_lib.get_space(config.space)
  net, modulator, _, _ = build_models(config)
  num_refs = len(latency_data.load_space_data(config.space).reference_rows)
  probs = jnp.asarray(space.one_hot(np.zeros((1, space.num_units), int)))
  hardware = jnp.zeros((2 * num_refs,))
  k1, k2 = jax.random.split(rng)
  net_params = net.init(k1, probs, hardware)['params']
  mod_params = modulator.init(k2, hardware)['params']
  inner_lr = jax.tree.map(
      lambda p: jnp.full_like(p, config.meta.inner_lr), net_params)
  _, features = net.apply({'params': net_params}, probs, hardware)
  log_precision = jnp.full((features.shape[-1],),
                           np.log(config.meta.ridge_precision), jnp.float32)
  return {'net': net_params, 'inner_lr': inner_lr, 'modulator': mod_params,
          'ridge_log_precision': log_precision}


@functools.lru_cache(maxsize=None)
def _reference_archs(space: str) -> np.ndarray:
  return latency_data.load_space_data(space).reference_archs


def _reference_index(space: str) -> dict[bytes, int]:
  """Each reference architecture's position, keyed as rows are compared
  (int32 bytes)."""
  return {r.tobytes(): i
          for i, r in enumerate(_reference_archs(space).astype(np.int32))}


def _check_ms(ms, name: str, shape: tuple[int, ...], missing: str = ''
              ) -> np.ndarray:
  """``ms`` as float32 of ``shape``, every given latency finite and > 0."""
  ms = np.asarray(ms, np.float32)
  if ms.shape != shape:
    raise errors.InputError(f'{name}: expected shape {list(shape)}, got '
                            f'{list(ms.shape)}.')
  given = ~np.isnan(ms) if missing else np.ones(shape, bool)
  bad = given & ~(np.isfinite(ms) & (ms > 0))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise errors.InputError(
        f'{name}: entry {i} is {float(ms[i])}; expected a finite latency > 0 '
        'ms' + (f' ({missing}).' if missing else '.'))
  return ms


def support_arrays(space: str, support_archs, support_ms, reference_ms,
                   target: str, pad_to: int = 0) -> dict:
  """Fixed-shape support set: all references (weight 0 where missing) first,
  then the other measured architectures; labels standardised on the support.

  Args:
    space: search-space name.
    support_archs: int [S, U]: measured architectures. Those equal to a
      reference architecture are taken as references.
    support_ms: float [S].
    reference_ms: optional float [R] latencies of the references (NaN where
      missing); if None, they are looked up in ``support_archs``.
    target: 'log' or 'linear'.
    pad_to: pad with weight-0 rows up to this many (one compiled adaptation
      serves support sets of different sizes).
  """
  sp = spaces_lib.get_space(space)
  refs = _reference_archs(space)
  support_archs = sp.validate_batch(support_archs, where='support_archs')
  support_ms = _check_ms(support_ms, 'support_ms', (len(support_archs),))
  keys = _reference_index(space)
  is_ref = np.array([a.tobytes() in keys for a in support_archs], bool)
  # A reference measured more than once (a search that re-measures what it
  # visits) is the mean of its measurements.
  total, count = np.zeros(len(refs)), np.zeros(len(refs))
  for a, ms in zip(support_archs[is_ref], support_ms[is_ref]):
    total[keys[a.tobytes()]] += ms
    count[keys[a.tobytes()]] += 1
  ref_ms = np.where(count > 0, total / np.maximum(count, 1),
                    np.nan).astype(np.float32)
  if reference_ms is not None:
    given = _check_ms(reference_ms, 'reference_ms', (len(refs),),
                      missing='NaN where a reference was not measured')
    ref_ms = np.where(np.isnan(given), ref_ms, given)
  present = ~np.isnan(ref_ms)
  others = support_archs[~is_ref]
  if not present.any() and not len(others):
    raise errors.InputError(
        'support_archs, reference_ms: no measured latency at all; expected '
        'at least one (the 10 reference architectures and ~10 others are '
        'what the predictor is meant to adapt from).')
  archs = np.concatenate([refs, others]).astype(np.int32)
  ms = np.concatenate([np.where(present, ref_ms, 1.), support_ms[~is_ref]])
  weights = np.concatenate([present, np.ones(len(others), bool)]).astype(
      np.float32)
  pad = max(0, pad_to - len(archs))
  archs = np.concatenate([archs, np.repeat(refs[:1].astype(np.int32), pad, 0)])
  ms = np.concatenate([ms, np.ones(pad, ms.dtype)])
  weights = np.concatenate([weights, np.zeros(pad, np.float32)])
  t = maml.to_target(jnp.asarray(ms), target)
  mean, std = maml.support_stats(t, jnp.asarray(weights))
  return dict(support_probs=jnp.asarray(sp.one_hot(archs)),
              support_y=(t - mean) / std, support_w=jnp.asarray(weights),
              hardware=maml.hardware_embedding(t[:len(refs)],
                                               jnp.asarray(present, jnp.float32),
                                               mean, std),
              mean=mean, std=std, missing_references=int((~present).sum()),
              reference_ms=ref_ms)


# One pure latency function and its jit per predictor config, shared by
# every AdaptedPredictor of that config: a device's adapted parameters are
# an argument, so adapting to another device (or re-adapting) compiles
# nothing new.
_LATENCY_FNS: dict = {}


def _latency_fns(config: ml_collections.ConfigDict):
  key = config.to_json(sort_keys=True)
  if key not in _LATENCY_FNS:
    _, _, apply_net, _ = build_models(config)
    target = config.meta.target

    def latency_fn_with_params(params: dict, probs: jnp.ndarray
                               ) -> jnp.ndarray:
      """Pure ``(params, probs [..., U, C]) -> ms [...]``."""
      y = maml.predict(apply_net, params, probs, params['hardware'])
      t = params['mean'] + params['std'] * y
      return maml.from_target(t, target)

    _LATENCY_FNS[key] = (latency_fn_with_params,
                         jax.jit(latency_fn_with_params))
  return _LATENCY_FNS[key]


# Folds of MetaPredictor.leave_one_out at most (an adaptation each).
LEAVE_ONE_OUT_FOLDS = 20


def pad_rows(archs: np.ndarray) -> np.ndarray:
  """``archs [N, U]`` padded with rows of choice 0 to a power of two (at
  least 8): a jitted prediction over them compiles once per size class,
  not once per batch size (every row is predicted on its own)."""
  size = max(8, 1 << (len(archs) - 1).bit_length())
  padded = np.zeros((size, archs.shape[1]), np.int32)
  padded[:len(archs)] = archs
  return padded


class AdaptedPredictor:
  """A predictor adapted to one device: milliseconds for any architecture."""

  def __init__(self, config: ml_collections.ConfigDict, params: dict,
               device: str = ''):
    self.config = config
    # {'net', 'modulation', 'ridge', 'hardware', 'mean', 'std'}
    self.params = params
    self.device = device
    self.space = spaces_lib.get_space(config.space)
    # Pure ``(params, probs [..., U, C]) -> ms [...]``, the same function
    # for every predictor of this config (and its jitted form).
    self.latency_fn_with_params, self._predict = _latency_fns(config)

  def latency_fn(self, probs: jnp.ndarray) -> jnp.ndarray:
    """Pure, differentiable ``probs -> ms`` with the adapted params closed in."""
    return self.latency_fn_with_params(self.params, probs)

  def predict_ms(self, archs, floor: bool = True) -> np.ndarray:
    """Milliseconds for a batch of discrete architectures ``[N, U]``.

    Floored at :data:`meta.MIN_PREDICTED_MS`: the regression can go to or
    below zero for architectures far faster than anything in its support
    (NAS-Bench-201 cells whose edges are mostly 'none', say).
    ``floor=False``: the raw output, which the few-shot evaluation ranks
    (:class:`MetaMethod`; floored values would tie).
    """
    archs = self.space.validate_batch(np.atleast_2d(archs))
    padded = pad_rows(archs)  # one compiled shape per power of two
    ms = np.asarray(self._predict(
        self.params, jnp.asarray(self.space.one_hot(padded))))[:len(archs)]
    return self.floored(ms) if floor else ms

  @staticmethod
  def floored(ms) -> np.ndarray:
    """Raw milliseconds (``predict_ms(..., floor=False)``) as
    :meth:`predict_ms` reports them, without predicting again."""
    return np.maximum(ms, meta.MIN_PREDICTED_MS)

  def predict_ms_soft(self, probs) -> jnp.ndarray:
    return self._predict(self.params, jnp.asarray(probs))

  def save(self, path: str) -> None:
    _save(path, {'config': self.config.to_dict(), 'device': self.device,
                 'kind': 'adapted'}, self.params)

  @classmethod
  def load(cls, path: str) -> 'AdaptedPredictor':
    config, info = _read_config(path, 'adapted')
    template = MetaPredictor(config, init_meta_params(
        config, jax.random.PRNGKey(0))).adapt_arrays(
            _dummy_support(config))
    params = _read_params(path, template.params)
    return cls(config, params, info.get('device', ''))


class MetaPredictor:
  """Meta-trained parameters + their config; adapts to devices."""

  def __init__(self, config: ml_collections.ConfigDict, meta_params: dict):
    self.config = config
    self.meta_params = meta_params
    _, _, apply_net, apply_mod = build_models(config)
    cfg = inner_config(config, evaluation=True)

    def adapt_fn(meta_params, arrays):
      adapted, _ = maml.adapt(
          meta_params, apply_net, apply_mod, cfg, arrays['support_probs'],
          arrays['support_y'], arrays['support_w'], arrays['hardware'])
      return dict(adapted, hardware=arrays['hardware'], mean=arrays['mean'],
                  std=arrays['std'])
    self._adapt = jax.jit(adapt_fn)

  def adapt_arrays(self, arrays: dict, device: str = '') -> AdaptedPredictor:
    arrays = {k: arrays[k] for k in ('support_probs', 'support_y',
                                     'support_w', 'hardware', 'mean', 'std')}
    return AdaptedPredictor(self.config, self._adapt(self.meta_params, arrays),
                            device)

  def adapt(self, support_archs, support_ms, reference_ms=None,
            device: str = '', pad_to: int = 0,
            impute_references: bool = True) -> AdaptedPredictor:
    """Adapts to a device from its measurements (references + samples);
    ``pad_to``: see :func:`support_arrays`.

    Reference architectures that were not measured leave holes in the
    hardware embedding. With ``impute_references`` (the default) the
    predictor first adapts with them masked, predicts them, and adapts
    again with the predictions in their place (in the embedding and as
    support rows; a prediction <= 0 ms leaves its reference masked).
    Chosen on the meta-valid devices with every reference withheld (10
    samples, 5 draws; Spearman masked -> imputed): FBNet 0.956 -> 0.971,
    NAS-Bench-201 0.969 -> 0.969, OFA 0.858 -> 0.859
    (``python -m benchmarks.missing_references``; docs/predictor.md has the
    test devices).
    """
    space, target = self.config.space, self.config.meta.target
    arrays = support_arrays(space, support_archs, support_ms, reference_ms,
                            target, pad_to)
    adapted = self.adapt_arrays(arrays, device)
    if not impute_references or not arrays['missing_references']:
      return adapted
    ref_ms = arrays['reference_ms']
    guess = adapted.predict_ms(_reference_archs(space), floor=False)
    # A prediction that is no latency (<= 0: a linear-target head can
    # extrapolate below zero) leaves its reference masked.
    fill = np.isnan(ref_ms) & np.isfinite(guess) & (guess > 0)
    if not fill.any():
      return adapted
    arrays = support_arrays(space, support_archs, support_ms,
                            np.where(fill, guess, ref_ms), target, pad_to)
    return self.adapt_arrays(arrays, device)

  def leave_one_out(self, support_archs, support_ms, reference_ms=None,
                    impute_references: bool = True,
                    max_folds: int = LEAVE_ONE_OUT_FOLDS) -> np.ndarray:
    """How far off the adapted predictor is on networks it has not seen,
    estimated from the support alone: each measured architecture that is
    not a reference predicted by the predictor adapted on all the other
    rows (every row of that architecture left out, so a repeated
    measurement does not leak; compared with the mean of its rows).
    Returns ``predicted / measured - 1`` per such architecture (empty with
    fewer than two); at most ``max_folds`` of them, evenly spaced, since
    each costs an adaptation (0.3 s on 4,000 rows on the 2-core VM). The
    references stay in every fold: they are the hardware embedding.

    On the bundled predictors' unseen devices (27 devices of the three
    spaces, 5 support draws of 10 samples each) the median of these errors
    tracked the median error on each device's held-out query rows (rank
    correlation 0.86 over the 135 draws; docs/predictor.md), so a user
    without held-out measurements gets an estimate of what to expect.
    """
    space = self.config.space
    archs = spaces_lib.get_space(space).validate_batch(
        support_archs, where='support_archs')
    ms = np.asarray(support_ms, np.float64)
    references = _reference_index(space)
    keys = [a.tobytes() for a in archs]
    is_ref = np.array([k in references for k in keys], bool)
    distinct = list(dict.fromkeys(k for k, r in zip(keys, is_ref) if not r))
    if len(distinct) < 2:
      return np.zeros(0)
    if len(distinct) > max_folds:
      distinct = [distinct[i] for i in np.linspace(
          0, len(distinct) - 1, max_folds).round().astype(int)]
    relative = []
    for key in distinct:  # every fold padded alike: one compiled adaptation
      out = np.array([k == key for k in keys])
      adapted = self.adapt(archs[~out], ms[~out], reference_ms,
                           pad_to=len(references) + int((~is_ref).sum()),
                           impute_references=impute_references)
      predicted = adapted.predict_ms(archs[out][:1])[0]
      relative.append(predicted / ms[out].mean() - 1)
    return np.asarray(relative)

  def adapt_to_device(self, device: latency_data.Device) -> AdaptedPredictor:
    """Adapts on every non-query row of a device (file)."""
    rows = ~device.is_query
    return self.adapt(device.archs[rows], device.latency_ms[rows],
                      device=device.name)

  def save(self, path: str) -> None:
    _save(path, {'config': self.config.to_dict(), 'kind': 'meta'},
          self.meta_params)

  @classmethod
  def load(cls, path: str) -> 'MetaPredictor':
    config, _ = _read_config(path, 'meta')
    template = init_meta_params(config, jax.random.PRNGKey(0))
    return cls(config, _read_params(path, template))


class MetaMethod:
  """:class:`meta.tasks.Method` wrapper, for the shared evaluation protocol."""

  def __init__(self, predictor: MetaPredictor, name: str = 'meta',
               impute_references: bool = True):
    self.predictor = predictor
    self.name = name
    self.impute_references = impute_references

  def adapt(self, task: tasks_lib.FewShotTask):
    adapted = self.predictor.adapt(
        task.support_archs, task.support_ms, task.reference_ms, task.device,
        impute_references=self.impute_references)
    return functools.partial(adapted.predict_ms, floor=False)


def _save(path: str, info: dict, params) -> None:
  """Parameters, then the config that describes them, each written
  atomically: a save that is killed leaves whole files."""
  os.makedirs(path, exist_ok=True)
  with workdirs.atomic_open(os.path.join(path, PARAMS_FILE), 'wb') as f:
    f.write(flax.serialization.to_bytes(params))
  workdirs.write_json(os.path.join(path, CONFIG_FILE), info)


def _read_config(path: str, kind: str):
  file = os.path.join(path, CONFIG_FILE)
  if not os.path.exists(file):
    example = {'meta': 'the predictor/ folder of a meta_train workdir',
               'adapted': 'the workdir of python -m experiments.adapt'}
    raise FileNotFoundError(
        f'{path}: no {CONFIG_FILE}; expected a predictor saved by '
        f'{"MetaPredictor" if kind == "meta" else "AdaptedPredictor"}.save '
        f'({example[kind]}).')
  try:
    with open(file) as f:
      info = json.load(f)
  except json.JSONDecodeError as e:
    raise errors.InputError(f'{file}: not valid JSON ({e}); expected the '
                            'config a predictor was saved with.') from e
  if not isinstance(info, dict):
    info = {}  # the kind check below names the file
  if info.get('kind') != kind:
    hint = {'meta': ' (a meta-trained predictor: MetaPredictor.load)',
            'adapted': ' (an adapted one: AdaptedPredictor.load)'}
    inner = os.path.join(path, PREDICTOR_DIR)
    if os.path.exists(os.path.join(inner, CONFIG_FILE)):
      where = f'; this is a meta_train workdir, its predictor is {inner}'
    else:
      where = hint.get(info.get('kind'), '')
    raise errors.InputError(
        f'{file}: field kind is {info.get("kind")!r}, expected '
        f'{kind!r}{where}.')
  if not isinstance(info.get('config'), dict):
    raise errors.InputError(f'{file}: no field config (an object); expected '
                            'the config the predictor was saved with.')
  return ml_collections.ConfigDict(info['config']), info


def _read_params(path: str, template):
  """The parameters saved in ``path``, which must have the structure and
  shapes of ``template`` (those its config.json describes)."""
  file = os.path.join(path, PARAMS_FILE)
  if not os.path.exists(file):
    raise FileNotFoundError(f'{file}: missing; a saved predictor holds '
                            f'{CONFIG_FILE} and {PARAMS_FILE}.')
  with open(file, 'rb') as f:
    data = f.read()
  try:
    params = flax.serialization.from_bytes(template, data)
  except Exception as e:  # msgpack and flax raise several types
    raise errors.InputError(
        f'{file}: not the parameters that {CONFIG_FILE} beside it describes '
        f'({type(e).__name__}: {e}); was it cut short, or copied from '
        'another predictor?') from e
  want = {key: np.shape(leaf) for key, leaf in
          jax.tree_util.tree_flatten_with_path(template)[0]}
  for key, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if want.get(key) != np.shape(leaf):
      raise errors.InputError(
          f'{file}: parameter {jax.tree_util.keystr(key)} has shape '
          f'{np.shape(leaf)}, but {CONFIG_FILE} beside it describes '
          f'{want.get(key)}; the two files are of different predictors.')
  return params


def _dummy_support(config) -> dict:
  data = latency_data.load_space_data(config.space)
  refs = data.reference_archs
  return support_arrays(config.space, refs, np.arange(1, len(refs) + 1,
                                                      dtype=np.float32),
                        None, config.meta.target)
