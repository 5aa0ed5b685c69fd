"""Latency sources behind one interface: soft architecture -> milliseconds.

The supernet's loss needs the expected latency of the architecture
distribution, differentiable in its probabilities. The sources:

- :class:`LookupTableLatency`: HW-NAS-Bench's per-layer lookup tables
  (FBNet space, CIFAR setting): ``const + sum_l sum_c p[l, c] table[l, c]``,
  exact for a discrete architecture, the exact expectation for a
  distribution over independent layers.
- :func:`cell_table_latency`: NAS-Bench-201, where every cell was measured:
  the exact table of all 5^6 cells (and the exact expectation for
  independent per-edge distributions).
- :func:`predictor_latency`: the meta-learned predictor of :mod:`meta`,
  adapted to the target device from a few measurements; the jitted step
  calls its pure ``latency_fn_with_params(params, probs)``. (``fbnet_jax``
  uses ``meta`` through that face and through :mod:`meta.latency_data`,
  the bundled latencies and device files; ``meta`` never imports the
  supernet.)

``latency_source(config)`` builds the one that ``config.latency.source``
names from :data:`SOURCES`: ``'lut'`` (the exact table of the space, when
it has one) or ``'predictor'``. Another source is one function
``config -> LatencyModel`` registered with :func:`register_source`; the
DNAS search, the evolutionary search and the result report then take it
by name.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Any, Callable, NamedTuple, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
import meta
from meta import adaptation
from meta import latency_data

LUT_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'meta',
                        'data', 'hwnasbench_fbnet_lut.npz')
LUT_DEVICES = ('raspi4', 'pixel3', 'eyeriss', 'fpga')
PRETRAINED_DIR = meta.PRETRAINED_DIR
# Rows per compiled call of LatencyModel.arch_ms.
ARCH_CHUNK = 32768
# Smallest latency a predictor reports (see predictor_latency).
MIN_PREDICTED_MS = meta.MIN_PREDICTED_MS


class LatencyConfigError(errors.InputError):
  """A latency configuration that cannot be served."""


@dataclasses.dataclass
class LatencyModel:
  """A named, differentiable map from soft architectures to milliseconds.

  The device-specific numbers (a table, adapted predictor weights) are
  ``params``, an argument of the pure ``fn``, not constants folded into it:
  a compiled search step then serves every device and target of a space
  (one XLA compile of the supernet instead of one per device).

  Attributes:
    name: e.g. ``lut:raspi4`` or ``predictor:raspi4``.
    space: the search space it scores.
    fn: pure function ``(params, probs [..., U, C]) -> ms [...]``; jittable
      and differentiable in ``probs``.
    params: the device's pytree of arrays.
    support: for a predictor adapted here, the measurements it was adapted
      on (:class:`PredictorSupport`: its ``leave_one_out`` estimates the
      predictor's error); None for a table or a saved adapted predictor.
  """
  name: str
  space: spaces_lib.SearchSpace
  fn: Callable[[Any, jnp.ndarray], jnp.ndarray]
  params: Any
  support: Any = None

  def __post_init__(self):
    num_choices = self.space.max_choices
    # Choice indices -> ms in one compiled program (the one-hot encoding
    # included), so that scoring many architectures is not op-by-op.
    self._index_ms = jax.jit(lambda params, archs: self.fn(
        params, jax.nn.one_hot(archs, num_choices, dtype=jnp.float32)))

  def with_params(self, params) -> 'LatencyModel':
    """This model with other params (a re-adapted predictor), sharing its
    compiled programs."""
    other = copy.copy(self)
    other.params = params
    return other

  def expected_ms(self, probs: jnp.ndarray) -> jnp.ndarray:
    """``probs [..., U, C] -> ms [...]`` with this device's params."""
    return self.fn(self.params, probs)

  def __call__(self, probs):
    return self.expected_ms(probs)

  def arch_ms(self, archs) -> np.ndarray:
    """Milliseconds of discrete architectures ``[N, U]`` (or one ``[U]``).

    Batched and jit-compiled: rows go in chunks of at most ``ARCH_CHUNK``,
    each padded to a power of two, so that a handful of shapes is compiled
    whatever the batch sizes a caller asks for.
    """
    archs = np.asarray(archs)
    single = archs.ndim == 1
    archs = self.space.validate_batch(np.atleast_2d(archs))
    out = []
    for start in range(0, len(archs), ARCH_CHUNK):
      chunk = archs[start:start + ARCH_CHUNK]
      out.append(np.asarray(self._index_ms(
          self.params, adaptation.pad_rows(chunk)))[:len(chunk)])
    out = np.concatenate(out) if out else np.zeros((0,), np.float32)
    return out[0] if single else out

  def fastest(self, choice_mask, num_random: int = 2048
              ) -> tuple[np.ndarray, float]:
    """The fastest architecture of the allowed choices (``choice_mask
    [U, C]``) and its ms: the best of ``num_random`` random valid ones,
    then improved one unit at a time until no single change helps (at most
    one pass per unit). For an additive table that is the exact minimum
    (each unit's cheapest choice); for a predictor, a local one."""
    return self._extreme(choice_mask, num_random, sign=1.0)

  def slowest(self, choice_mask, num_random: int = 2048
              ) -> tuple[np.ndarray, float]:
    """The slowest architecture of the allowed choices, as :meth:`fastest`
    finds the fastest."""
    return self._extreme(choice_mask, num_random, sign=-1.0)

  def _extreme(self, choice_mask, num_random: int, sign: float
               ) -> tuple[np.ndarray, float]:
    """The architecture minimising ``sign * ms`` (see :meth:`fastest`)."""
    mask = np.asarray(choice_mask, bool)
    units, choices = mask.shape
    rng = np.random.default_rng(0)
    p = mask / mask.sum(-1, keepdims=True)
    archs = np.stack([[rng.choice(choices, p=row) for row in p]
                      for _ in range(num_random)])
    archs = self.space.make_valid(archs)
    score = sign * self.arch_ms(archs)
    best, best_score = archs[np.argmin(score)], float(np.min(score))
    u, c = np.divmod(np.arange(units * choices), choices)
    for _ in range(units):  # passes, until one changes nothing
      # Every single-unit change of ``best`` (disallowed choices keep it).
      cands = np.repeat(best[None], units * choices, axis=0)
      cands[np.arange(len(cands)), u] = np.where(mask[u, c], c, best[u])
      cands = self.space.make_valid(cands)
      score = sign * self.arch_ms(cands)
      if float(np.min(score)) >= best_score:
        break
      best, best_score = cands[np.argmin(score)], float(np.min(score))
    return best, sign * best_score


def lookup_table_latency(device: str, where: str = 'config.latency.device'
                         ) -> LatencyModel:
  """HW-NAS-Bench lookup table of ``device`` (FBNet, CIFAR macro); an
  unknown device is an error naming ``where``, the setting that gave it."""
  if device not in LUT_DEVICES:
    raise LatencyConfigError(
        f'{where}: no lookup table for {device!r}; the bundled '
        f'FBNet tables are for {", ".join(LUT_DEVICES)} (use '
        "config.latency.source='predictor' for other devices).")
  with np.load(LUT_FILE) as npz:
    if tuple(npz['op_names']) != spaces_lib.fbnet.OP_NAMES:
      raise LatencyConfigError(f'{LUT_FILE}: field op_names does not match '
                               'the FBNet space op order.')
    params = {'table': jnp.asarray(npz[f'{device}_rel'], jnp.float32),
              'const': jnp.asarray(npz[f'{device}_const'], jnp.float32)}
  space = spaces_lib.get_space('fbnet', macro='cifar')
  return LatencyModel(f'lut:{device}', space, table_ms, params)


def cell_table_latency(device: str) -> LatencyModel:
  """NAS-Bench-201's measured latency of every cell on ``device`` (the
  bundled HW-NAS-Bench data: all 5^6 architectures), as an exact table.

  For a discrete cell it returns the measurement; for independent per-edge
  distributions ``p[e, o]`` the exact expectation
  ``sum_arch prod_e p[e, arch_e] * ms[arch]`` (a contraction of the
  ``[5] * 6`` table with the six edge distributions): differentiable, like
  the FBNet lookup tables.
  """
  data = latency_data.load_space_data('nasbench201')
  if device not in data.devices:
    raise LatencyConfigError(
        f'config.latency.device: {device!r} is not a bundled NAS-Bench-201 '
        f'device; expected one of {", ".join(data.devices)}.')
  space = spaces_lib.get_space('nasbench201')
  shape = (space.max_choices,) * space.num_units
  table = np.full(shape, np.nan, np.float32)
  table[tuple(data.archs.T)] = data.device_latency(device)
  if np.isnan(table).any():
    raise LatencyConfigError('nasbench201 data: not every cell has a '
                             'latency; cannot build an exact table.')
  return LatencyModel(f'table:{device}', space, _cell_table_ms,
                      {'table': jnp.asarray(table)})


def _cell_table_ms(params, probs):
  """``probs [..., E, C]`` -> expected ms under the full cell table."""
  table = params['table']
  edges = table.ndim
  letters = 'abcdefghij'[:edges]
  spec = (letters + ',' + ','.join(f'...{c}' for c in letters) + '->...')
  return jnp.einsum(spec, table, *[probs[..., e, :] for e in range(edges)])


def table_ms(params, probs):
  """Expected latency under an additive lookup table (FBNet's): ``const +
  sum_u sum_c probs[..., u, c] * table[u, c]``, params ``{'table': [U, C]
  ms, 'const': ms}``; exact for one-hot ``probs``."""
  return params['const'] + jnp.einsum('...uc,uc->...', probs,
                                      params['table'])


def predictor_latency(adapted) -> LatencyModel:
  """Wraps a :class:`meta.adaptation.AdaptedPredictor`, its milliseconds
  floored at ``MIN_PREDICTED_MS``.

  The adapted head is linear and extrapolates below zero for architectures
  faster than any it was adapted on: NAS-Bench-201 cells whose output is cut
  off by ``none`` edges, measured at 0.012 ms on raspi4, are predicted down
  to -1.4 ms. A latency must stay positive for the hypervolume's box and
  the fbnet loss's logarithm; the floor has no gradient, and touches only
  such degenerate architectures, never a soft distribution of a search.
  """
  fn = adapted.latency_fn_with_params

  def floored_ms(params, probs):
    return jnp.maximum(fn(params, probs), MIN_PREDICTED_MS)

  return LatencyModel(f'predictor:{adapted.device}', adapted.space,
                      floored_ms, adapted.params)


def _load_predictor(space: str, predictor_dir: Optional[str]):
  """The meta-trained predictor in ``predictor_dir`` (default: the bundled
  one of ``space``), checked to be one of ``space``. A ``meta_train``
  workdir stands for its ``predictor/`` folder."""
  path = predictor_dir or os.path.join(PRETRAINED_DIR, space)

  def holds_predictor(folder):
    return all(os.path.exists(os.path.join(folder, f))
               for f in (adaptation.CONFIG_FILE, adaptation.PARAMS_FILE))

  # meta.train.PREDICTOR_DIR, where a meta_train workdir keeps its predictor
  # (the workdir's own config.json is the training run's, not a predictor).
  in_workdir = os.path.join(path, 'predictor')
  if not holds_predictor(path) and holds_predictor(in_workdir):
    path = in_workdir
  if not holds_predictor(path):
    raise LatencyConfigError(
        f'config.latency.predictor_dir (--predictor_dir): {path} holds no '
        f'meta-trained predictor ({adaptation.CONFIG_FILE} and '
        f'{adaptation.PARAMS_FILE}), nor does {in_workdir}; expected a '
        'meta_train workdir or its predictor/ folder (run python -m '
        'experiments.meta_train first).')
  predictor = adaptation.MetaPredictor.load(path)
  if predictor.config.space != space:
    raise LatencyConfigError(f'{path}: predictor of space '
                             f'{predictor.config.space!r}, not {space!r}.')
  return predictor


class ExactTable(NamedTuple):
  """How a space's exact latencies are had (an entry of :data:`EXACT_TABLES`).

  Attributes:
    build: device name -> its table, a differentiable :class:`LatencyModel`
      (a LatencyConfigError naming ``config.latency.device`` for a device
      without one).
    devices: the devices with a table; None: every bundled device of the
      space (any device, for a space without bundled data: ``build``
      then refuses those it has no table for).
    macros: the macro networks (``config.macro``) the tables are of; empty:
      the space's one network.
  """
  build: Callable[[str], LatencyModel]
  devices: Optional[tuple[str, ...]] = None
  macros: tuple[str, ...] = ()


#: The spaces with exact latencies of bundled devices, by space name: the
#: latency source 'lut', the evolutionary search's re-scoring and the
#: reports' "exact" column use them.
EXACT_TABLES: dict[str, ExactTable] = {
    'fbnet': ExactTable(lookup_table_latency, devices=LUT_DEVICES,
                        macros=('cifar',)),
    'nasbench201': ExactTable(cell_table_latency),
}


def _table_devices(space: str, table: ExactTable
                   ) -> Optional[tuple[str, ...]]:
  """The devices ``table`` has tables for; None: any (its ``build`` says
  which it has not; a space without bundled devices)."""
  if table.devices is not None:
    return table.devices
  return latency_data.bundled_devices(space) or None


def exact_table(config: ml_collections.ConfigDict) -> Optional[LatencyModel]:
  """``config.latency.device``'s exact latencies (:data:`EXACT_TABLES`):
  NAS-Bench-201's measured cells or an FBNet CIFAR lookup table; None for
  other spaces and macro networks (a device without a table is an error)."""
  table = EXACT_TABLES.get(config.space)
  if table is None or (table.macros and
                       config.get('macro', 'cifar') not in table.macros):
    return None
  device = config.latency.device
  devices = _table_devices(config.space, table)
  if devices is not None and device not in devices:
    raise LatencyConfigError(
        f'config.latency.device: no exact {config.space} table for '
        f'{device!r}; expected one of {", ".join(devices) or "(none)"} (use '
        "config.latency.source='predictor' for other devices).")
  return table.build(device)


@dataclasses.dataclass
class PredictorSupport:
  """A meta-trained predictor and the measurements it adapts on.

  ``adapt(archs, ms)`` adapts on these measurements plus more: the
  evolutionary search's latency-in-the-loop (``config.evolve.
  measure_latency``) re-adapts on the architectures it has measured.
  """
  predictor: Any  # meta.adaptation.MetaPredictor
  archs: np.ndarray  # int [S, U]
  ms: np.ndarray  # float [S]
  device: str

  def adapt(self, archs=None, ms=None, pad_to: int = 0):
    """A :class:`meta.adaptation.AdaptedPredictor` on the support plus the
    ``archs`` measured at ``ms``; ``pad_to`` fixes the support size (one
    compiled adaptation for growing sets)."""
    all_archs, all_ms = self.archs, self.ms
    if archs is not None and len(archs):
      all_archs = np.concatenate([all_archs, np.asarray(archs, np.int32)])
      all_ms = np.concatenate([all_ms, np.asarray(ms, np.float64)])
    return self.predictor.adapt(all_archs, all_ms, device=self.device,
                                pad_to=pad_to)

  def leave_one_out(self) -> dict:
    """The adapted predictor's error on networks it was not adapted on,
    estimated from this support alone
    (:meth:`meta.adaptation.MetaPredictor.leave_one_out`): each sample
    predicted after adapting on the other rows."""
    relative = self.predictor.leave_one_out(self.archs, self.ms)
    return {'num_rows': int(len(relative)),
            'median_abs_relative_error': (
                float(np.median(np.abs(relative))) if len(relative)
                else None),
            'relative_errors': relative.tolist()}


def predictor_support(space: str, device, *,
                      predictor_dir: Optional[str] = None,
                      num_samples: int = 10, seed: int = 0) -> PredictorSupport:
  """The meta-trained predictor and a device's measurements to adapt it on:
  the reference architectures + ``num_samples`` random non-query rows (all
  non-query rows if ``num_samples`` is 0 or larger than what is there).

  Args:
    space: search-space name.
    device: a :class:`meta.latency_data.Device`.
    predictor_dir: a meta-trained predictor (a ``meta_train`` workdir, or
      its ``predictor/``); default: the bundled one of this space.
    num_samples: measurements besides the references (>= 0).
    seed: seed of the sample draw.

  Raises:
    LatencyConfigError: ``num_samples`` < 0, or no predictor of ``space``
      in ``predictor_dir``.
  """
  if num_samples < 0:
    raise LatencyConfigError(
        f'config.latency.num_samples (--num_samples): {num_samples}; '
        'expected >= 0 measurements besides the references (0: every '
        'non-query row).')
  predictor = _load_predictor(space, predictor_dir)
  _warn_if_seen(space, device)
  refs = device.reference_rows()
  others = device.sample_rows()
  if 0 < num_samples < len(others):
    others = np.random.default_rng(seed).choice(others, num_samples,
                                                replace=False)
  elif num_samples > len(others):
    logging.warning(
        '%s: %d samples asked for, but only %d non-query rows besides the '
        'reference architectures; adapting on all of them.', device.source,
        num_samples, len(others))
  rows = np.concatenate([refs[refs >= 0], others])
  _warn_if_few(device, refs, len(rows))
  return PredictorSupport(predictor, device.archs[rows],
                          device.latency_ms[rows], device.name)


# Fewer measurements than this to adapt on draw a warning (the predictor
# is meant to adapt from the 10 reference architectures + about 10 more).
FEW_SUPPORT_ROWS = 10


def _warn_if_few(device, refs: np.ndarray, num_rows: int) -> None:
  """Says when adaptation sees few measurements, and when reference
  architectures the file has are held out as query rows."""
  query_refs = int(((refs < 0) & (device.reference_rows(query=True) >= 0))
                   .sum())
  if query_refs:
    logging.warning(
        '%s: %d reference architectures are only among the is_query rows; '
        'query rows are held out for evaluation, so adaptation does not use '
        'them (mark them is_query false to use them).', device.source,
        query_refs)
  if num_rows < FEW_SUPPORT_ROWS:
    logging.warning(
        '%s: adapting on %d measurements only; the predictor is meant to '
        'adapt from the 10 reference architectures and about 10 others.',
        device.source, num_rows)


def _warn_if_seen(space: str, device) -> None:
  """A warning when a bundled device is one that meta-training used: the
  predictor's accuracy there is not that of a device it has never seen."""
  if not device.source.startswith('bundled:'):
    return
  split = latency_data.SPLITS[space]
  role = split.seen_as(device.name)
  if role:
    logging.warning(
        'latency predictor: %s is a %s device of the %s predictor (HELP '
        "split, meta/data/README.md): it has seen this device's "
        'latencies, so its accuracy here is not that of a new device '
        '(the meta-test devices are: %s).', device.name, role, space,
        ', '.join(split.meta_test))


def adapt_predictor(space: str, device, **kwargs):
  """The predictor adapted on :func:`predictor_support` (same arguments)."""
  return predictor_support(space, device, **kwargs).adapt()


def spread_support(config: ml_collections.ConfigDict,
                   device) -> PredictorSupport:
  """The references + ``num_samples`` architectures spread from uniform to
  nearly the cheapest (``SearchSpace.sample_spread``), timed by the device's
  exact table.

  The table stands in for measuring the chosen architectures on the device
  (on your own device: ``experiments.measure --archs=reference,spread:10``
  and ``config.latency.device_file``). Random measured rows of a bundled
  device leave the fast end unseen, where a search's front ends.
  """
  lat = config.latency
  if lat.get('device_file'):
    raise LatencyConfigError(
        "config.latency.support='spread' times the chosen architectures "
        'with a bundled device\'s table; a device file holds what was '
        'measured (measure them: experiments.measure --archs=reference,'
        'spread:10).')
  table = exact_table(config)
  if table is None:
    raise LatencyConfigError(
        "config.latency.support='spread' needs an exact table to time the "
        'chosen architectures (FBNet CIFAR or NAS-Bench-201); '
        f'{config.space} has none.')
  space = spaces_lib.space_for(config.space, config.get('macro', 'cifar'))
  refs = device.reference_rows()
  rng = np.random.default_rng(lat.get('seed', 0))
  num = lat.get('num_samples', 10)
  if num < 1:
    raise LatencyConfigError(
        "config.latency.num_samples: support='spread' draws that many "
        f'architectures besides the references; expected >= 1, got {num}.')
  archs = np.concatenate([device.archs[refs[refs >= 0]],
                          space.sample_spread(rng, num)])
  predictor = _load_predictor(config.space, lat.get('predictor_dir') or None)
  return PredictorSupport(predictor, archs,
                          np.asarray(table.arch_ms(archs), np.float64),
                          device.name)


def support_for(config: ml_collections.ConfigDict,
                device=None) -> PredictorSupport:
  """The predictor and measurements that ``config.latency`` (source
  'predictor', not ``adapted_dir``) adapts on; ``device``: the file of
  ``config.latency.device_file``, if the caller has read it already."""
  lat = config.latency
  if lat.get('device_file'):
    if device is None:
      device = latency_data.load_device_file(lat.device_file)
    if device.space != config.space:
      raise LatencyConfigError(
          f'{lat.device_file}: field space is {device.space!r}, the search '
          f'space is {config.space!r}.')
  elif not lat.get('device'):
    raise LatencyConfigError(
        'config.latency.device, config.latency.device_file: neither is set; '
        'expected a bundled device name or a device file of yours '
        '(experiments.measure writes one).')
  elif not latency_data.bundled_devices(config.space):
    raise LatencyConfigError(
        f'config.latency.device: the {config.space!r} space has no bundled '
        'devices (the bundled latency data are of '
        f'{", ".join(latency_data.bundled_spaces())}); expected '
        'config.latency.device_file, measurements of yours.')
  else:
    try:
      device = latency_data.bundled_device(config.space, lat.device)
    except latency_data.DeviceFileError as e:
      raise LatencyConfigError(f'config.latency.device: {e}') from e
  support = lat.get('support', 'random')
  if support == 'spread':
    return spread_support(config, device)
  if support != 'random':
    raise LatencyConfigError("config.latency.support: expected 'random' "
                             f"or 'spread', got {support!r}.")
  return predictor_support(config.space, device,
                           predictor_dir=lat.get('predictor_dir') or None,
                           num_samples=lat.get('num_samples', 10),
                           seed=lat.get('seed', 0))


# config.latency.source -> build(config) -> LatencyModel.
SOURCES: dict[str, Callable[[ml_collections.ConfigDict], LatencyModel]] = {}


def register_source(name: str):
  """Decorator: ``build(config) -> LatencyModel`` serves
  ``config.latency.source == name``. Raise :class:`LatencyConfigError`
  naming the ``config.latency`` field for a config it cannot serve."""
  def register(build):
    if name in SOURCES:
      raise ValueError(f'latency source {name!r} is already registered.')
    SOURCES[name] = build
    return build
  return register


def latency_source(config: ml_collections.ConfigDict) -> LatencyModel:
  """The latency model that ``config.latency`` asks for.

  Fields: ``source`` (a key of :data:`SOURCES`: 'lut' or 'predictor'),
  ``device`` (a bundled device name) or ``device_file`` (a device file),
  and for the predictor ``predictor_dir``, ``num_samples``, ``seed``,
  ``support`` ('random': measured rows of the device; 'spread':
  :func:`spread_support`) or ``adapted_dir`` (a saved adapted predictor).
  """
  build = SOURCES.get(config.latency.source)
  if build is None:
    raise LatencyConfigError(
        f'config.latency.source: expected one of '
        f'{", ".join(map(repr, sorted(SOURCES)))}, got '
        f'{config.latency.source!r}.')
  return build(config)


@register_source('lut')
def _exact_table_source(config: ml_collections.ConfigDict) -> LatencyModel:
  if config.latency.get('device_file'):
    raise LatencyConfigError(
        "config.latency.device_file: needs config.latency.source="
        "'predictor' (a file has no table; set it, or use "
        'configs/closed_loop.py, which measures the file if it is missing, '
        'adapts, searches and verifies).')
  if config.latency.get('adapted_dir'):
    raise LatencyConfigError(
        "config.latency.adapted_dir: needs config.latency.source='predictor' "
        f"(got 'lut', which would search {config.latency.get('device')!r}'s "
        'table instead).')
  table = exact_table(config)
  if table is None:
    have = ', '.join(
        name + (f' (macro {"/".join(t.macros)})' if t.macros else '')
        for name, t in EXACT_TABLES.items())
    macro = (f' with macro {config.get("macro", "cifar")!r}'
             if config.space in EXACT_TABLES else '')
    raise LatencyConfigError(
        "config.latency.source='lut' needs a space with exact tables "
        f'({have}), not {config.space!r}{macro}; use '
        "config.latency.source='predictor'.")
  return table


@register_source('predictor')
def _predictor_source(config: ml_collections.ConfigDict) -> LatencyModel:
  lat = config.latency
  if lat.get('adapted_dir') and lat.get('device_file'):
    raise LatencyConfigError(
        'config.latency.adapted_dir, config.latency.device_file: both name '
        'the device; expected one (adapted_dir: a predictor experiments.adapt '
        'saved; device_file: measurements to adapt to).')
  if lat.get('adapted_dir'):  # a predictor saved by experiments.adapt
    try:
      adapted = adaptation.AdaptedPredictor.load(lat.adapted_dir)
    except (FileNotFoundError, errors.InputError) as e:
      raise LatencyConfigError(f'config.latency.adapted_dir: {e}') from e
    if adapted.config.space != config.space:
      raise LatencyConfigError(
          f'config.latency.adapted_dir: {lat.adapted_dir} is a '
          f'{adapted.config.space} predictor, the search space is '
          f'{config.space!r}.')
    return predictor_latency(adapted)
  support = support_for(config)
  model = predictor_latency(support.adapt())
  model.support = support
  return model


def user_device(config: ml_collections.ConfigDict) -> Optional[str]:
  """The path that names a user's device (``config.latency.device_file``
  or a saved adapted predictor's ``adapted_dir``); None for a bundled
  device (``config.latency.device``)."""
  lat = config.latency
  return lat.get('device_file') or lat.get('adapted_dir') or None


def all_sources(config) -> dict[str, LatencyModel]:
  """Every latency source available for the config's space and device, for
  the result report (the configured one first): the space's exact table
  and the bundled predictor, besides the configured source."""
  out = {}
  main = latency_source(config)
  out[main.name] = main
  lat = config.latency
  # A user's device has its own latencies; a bundled table named by
  # latency.device would be another device's.
  if lat.source != 'lut':
    exact = device_exact_table(config)
    if exact is not None and exact.name not in out:
      out[exact.name] = exact
  # The bundled predictor adapts to a bundled device or the user's
  # (a device another source names may be neither: then it is left out).
  if (lat.source != 'predictor' and
      os.path.exists(os.path.join(PRETRAINED_DIR, config.space)) and
      (user_device(config) or
       lat.get('device') in latency_data.bundled_devices(config.space))):
    alt = ml_collections.ConfigDict(config.to_dict())
    alt.latency.source = 'predictor'
    model = latency_source(alt)
    out[model.name] = model
  return out


def device_exact_table(config) -> Optional[LatencyModel]:
  """The exact latencies of the config's device (:func:`exact_table`), if
  there are any: None for a user's device (:func:`user_device`; a bundled
  table named by ``latency.device`` would be another device's), a space
  without tables, or a device without one (an FBNet device not in
  ``LUT_DEVICES``)."""
  device = None if user_device(config) else config.latency.get('device')
  table = EXACT_TABLES.get(config.space)
  if not device or table is None:
    return None
  devices = _table_devices(config.space, table)
  if devices is not None and device not in devices:
    return None
  try:
    return exact_table(config)
  except LatencyConfigError:
    if devices is not None:
      raise
    return None  # a table of any device's, whose build has none for it
