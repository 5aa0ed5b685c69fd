"""Measured latency data: the bundled benchmarks, their splits, device files.

Three bundled files (HELP and HW-NAS-Bench, MIT; provenance in
``meta/data/README.md``) give whole-network latencies of one architecture
list per space on many devices. A *device* is one row of such a file, or a
user's own device file: a set of architectures with measured milliseconds,
some of them flagged ``is_query`` (held out, never shown to adaptation).

The HELP splits (which devices meta-train, meta-validate, meta-test; which
rows form the pool and the query set) are fixed here in one table.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np

from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs

DATA_DIR = os.path.join(os.path.dirname(__file__), 'data')

_FILES = {
    'fbnet': 'fbnet_latency.npz',
    'nasbench201': 'nasbench201_latency.npz',
    'ofa': 'ofa_latency.npz',
}


@dataclasses.dataclass(frozen=True)
class Split:
  """HELP's protocol for one space (``meta/data/README.md``)."""
  meta_train: tuple[str, ...]
  meta_valid: tuple[str, ...]
  meta_test: tuple[str, ...]
  pool_rows: int  # rows [0, pool_rows) are the pool
  query_rows: tuple[int, int]  # rows [start, stop) are the query set

  def seen_as(self, device: str) -> Optional[str]:
    """'meta-train' or 'meta-valid' for a device that meta-training or
    model selection used (a predictor has seen its latencies), else None."""
    if device in self.meta_train:
      return 'meta-train'
    if device in self.meta_valid:
      return 'meta-valid'
    return None


SPLITS = {
    'fbnet': Split(
        ('1080ti_1', '1080ti_32', '1080ti_64', 'silver_4114', 'silver_4210r',
         'samsung_a50', 'pixel3', 'essential_ph_1', 'samsung_s7'),
        ('titanx_1', 'titanx_32', 'titanx_64', 'gold_6240'),
        ('fpga', 'raspi4', 'eyeriss'), 4000, (4000, 5000)),
    'nasbench201': Split(
        ('1080ti_1', '1080ti_32', '1080ti_256', 'silver_4114', 'silver_4210r',
         'samsung_a50', 'pixel3', 'essential_ph_1', 'samsung_s7'),
        ('titanx_1', 'titanx_32', 'titanx_256', 'gold_6240'),
        ('titan_rtx_256', 'gold_6226', 'fpga', 'pixel2', 'raspi4', 'eyeriss'),
        900, (900, 1900)),
    'ofa': Split(
        ('2080ti_1', '2080ti_32', '2080ti_64', 'titan_xp_1', 'titan_xp_32',
         'titan_xp_64', 'v100_1', 'v100_32', 'v100_64'),
        ('titan_rtx_1', 'titan_rtx_32'),
        ('titan_rtx_64',), 4000, (4000, 5000)),
}

# Spearman with 10 samples published by HELP (its README); OFA: its released
# checkpoint, as quoted in the project's issue.
PUBLISHED_HELP = {
    'fbnet': {'raspi4': 0.887, 'eyeriss': 0.943, 'fpga': 0.892},
    'nasbench201': {'titan_rtx_256': 0.987, 'gold_6226': 0.989,
                    'pixel2': 0.802, 'raspi4': 0.890, 'eyeriss': 0.940,
                    'fpga': 0.985},
    'ofa': {'titan_rtx_64': 0.982},
}


class DeviceFileError(errors.InputError):
  """A device file (or device name) that cannot be used, and why."""


@dataclasses.dataclass(frozen=True)
class SpaceData:
  """One bundled benchmark file."""
  space: str
  archs: np.ndarray  # int32 [N, num_units]
  devices: tuple[str, ...]
  latency_ms: np.ndarray  # float32 [D, N]
  reference_rows: np.ndarray  # int [10]: HELP's hardware-embedding archs
  split: Split

  @property
  def reference_archs(self) -> np.ndarray:
    return self.archs[self.reference_rows]

  def device_latency(self, name: str) -> np.ndarray:
    if name not in self.devices:
      close = difflib.get_close_matches(name, self.devices, n=1)
      raise DeviceFileError(
          f'Unknown device {name!r} for space {self.space!r}'
          + (f' (did you mean {close[0]!r}?)' if close else '') +
          f'; bundled devices are: {", ".join(self.devices)}; a device of '
          'your own is a device file (config.latency.device_file, '
          '--device_file).')
    return self.latency_ms[self.devices.index(name)]


@functools.lru_cache(maxsize=None)
def load_space_data(space: str) -> SpaceData:
  """The bundled latency file of ``space`` (cached)."""
  if space not in _FILES:
    raise DeviceFileError(f'Unknown space {space!r}; expected one of '
                          f'{", ".join(sorted(_FILES))}.')
  path = os.path.join(DATA_DIR, _FILES[space])
  with np.load(path) as npz:
    sp = spaces_lib.get_space(space)
    archs = sp.validate_batch(sp.from_data(npz), where=path)
    return SpaceData(space, archs, tuple(str(d) for d in npz['devices']),
                     np.asarray(npz['latency_ms'], np.float32),
                     np.asarray(npz['hw_emb_idx'], np.int64), SPLITS[space])


@dataclasses.dataclass
class Device:
  """Measured latencies of one device: bundled, or from a device file.

  Attributes:
    name: device name.
    space: search-space name.
    archs: int32 [M, num_units].
    latency_ms: float32 [M], finite and > 0.
    is_query: bool [M]: evaluation-only rows, never used for adaptation.
    source: where the data came from (file path or ``bundled:<space>``).
    meta: extra arrays of a device file (measurement noise figures...).
  """
  name: str
  space: str
  archs: np.ndarray
  latency_ms: np.ndarray
  is_query: np.ndarray
  source: str = ''
  meta: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    # The dtypes the rows are matched by (architectures compared as bytes):
    # a Device built from int64 arrays would find none of its references.
    self.archs = np.asarray(self.archs, np.int32)
    self.latency_ms = np.asarray(self.latency_ms, np.float32)
    self.is_query = np.asarray(self.is_query, bool)

  def reference_rows(self, query: bool = False) -> np.ndarray:
    """Row of each of the space's 10 reference archs among the non-query
    rows (``query``: among the query rows), or -1 where it is not there."""
    lookup = {}
    for i in np.nonzero(self.is_query == query)[0]:
      lookup.setdefault(self.archs[i].tobytes(), i)
    return np.array([lookup.get(key, -1) for key in self._reference_keys()],
                    np.int64)

  def sample_rows(self) -> np.ndarray:
    """The non-query rows that support samples are drawn from: all but the
    reference architectures' rows. A reference measured more than once
    gives its first row (:meth:`reference_rows`); its repeats are not
    samples either, so every method adapts on as many distinct rows."""
    refs = set(self._reference_keys())
    rows = np.nonzero(~self.is_query)[0]
    return rows[np.array([self.archs[i].tobytes() not in refs
                          for i in rows], bool)]

  def _reference_keys(self) -> list[bytes]:
    """The space's reference architectures as the rows are compared."""
    return [r.astype(np.int32).tobytes()
            for r in load_space_data(self.space).reference_archs]


def bundled_spaces() -> tuple[str, ...]:
  """The spaces with bundled latency data."""
  return tuple(sorted(_FILES))


def bundled_devices(space: str) -> tuple[str, ...]:
  """The names of ``space``'s bundled devices; () for a space without
  bundled latency data (a space added through the registries)."""
  return load_space_data(space).devices if space in _FILES else ()


def bundled_device(space: str, name: str) -> Device:
  """A bundled device under HELP's protocol.

  Rows: the pool, the reference architectures (support, wherever they sit in
  the benchmark list) and the query rows (``is_query``), minus any reference
  architecture, which is support and so never scored.
  """
  data = load_space_data(space)
  lat = data.device_latency(name)
  split = data.split
  query = np.arange(*split.query_rows)
  query = query[~np.isin(query, data.reference_rows)]
  support = np.union1d(np.arange(split.pool_rows), data.reference_rows)
  rows = np.concatenate([support, query])
  return Device(name=name, space=space, archs=data.archs[rows],
                latency_ms=lat[rows],
                is_query=np.r_[np.zeros(len(support), bool),
                               np.ones(len(query), bool)],
                source=f'bundled:{space}',
                meta={'benchmark_rows': rows})


def trim_mask(latency_ms: np.ndarray, fraction: float = 0.1) -> np.ndarray:
  """HELP's outlier removal: keep ranks [fraction, 1 - fraction) of a set.

  The bounds are HELP's loader's, ``int(n * 0.1):int(n * 0.9)``, so that
  its protocol is reproduced: where ``n`` is not a multiple of 10 one more
  of the slowest rows than of the fastest is dropped (the bundled 999 query
  rows: 99 fastest, 100 slowest).
  """
  n = len(latency_ms)
  order = np.argsort(latency_ms, kind='stable')
  keep = np.zeros(n, bool)
  keep[order[int(n * fraction):int(n * (1 - fraction))]] = True
  return keep


# ------------------------------------------------------------ device files
# Fields every device file may hold besides its space's architecture keys;
# any other field is kept as metadata (``Device.meta``).
_COMMON_FIELDS = ('space', 'latency_ms', 'is_query', 'name', 'index')
# A device file's median latency below this (ms) looks like seconds;
# above this (100 s a network), like microseconds or nanoseconds.
_SECONDS_SUSPECT_MS = 0.05
_MICROSECONDS_SUSPECT_MS = 1e5
_OUTLIER_FACTOR = 10.0  # x the spread of the space's bundled devices
# How close (difflib ratio) an unknown field must be to a known one to be
# taken for a misspelling: ``is_querry`` (0.94) is one, the measured
# ``latency_min_ms`` (0.83 to ``latency_ms``) is metadata.
_MISSPELLING_CUTOFF = 0.85


def _fail(path: str, field: str, expectation: str) -> DeviceFileError:
  return DeviceFileError(f'{path}: field {field!r}: {expectation}')


def _check_spelling(path: str, files, known) -> None:
  """Refuses an unknown field that looks like a misspelt known one (it
  would be kept as metadata, and the field it meant taken as absent)."""
  for key in sorted(set(files) - set(known)):
    close = difflib.get_close_matches(key.lower(), known, n=1,
                                      cutoff=_MISSPELLING_CUTOFF)
    if close:
      raise _fail(path, key, f'not a device-file field; did you mean '
                  f'{close[0]!r}? Rename it to {close[0]!r}, or give extra '
                  'metadata a name less like the format\'s fields '
                  f'({", ".join(known)}).')


def _read(npz, path: str, key: str) -> np.ndarray:
  """Field ``key`` as an array; an object array (or an unreadable member)
  is the file's error, not numpy's."""
  try:
    return np.asarray(npz[key])
  except ValueError as e:
    if 'allow_pickle' not in str(e):
      raise _damaged(path, key, e) from e
    raise _fail(path, key, f'cannot be read without pickle ({e}); expected '
                'a plain array of numbers, bools or strings, not Python '
                'objects (dtype object).') from e
  except Exception as e:  # zipfile's BadZipFile (CRC), zlib, EOFError...
    raise _damaged(path, key, e) from e


def _damaged(path: str, key: str, e: Exception) -> DeviceFileError:
  return _fail(path, key, f'cannot be read ({type(e).__name__}: {e}): the '
               'file is damaged; expected an .npz as np.savez wrote it '
               '(copy or write it again).')


def _string(npz, path: str, key: str) -> str:
  """A string field: one string (a 0-d str or bytes array)."""
  arr = _read(npz, path, key)
  if arr.shape != () or arr.dtype.kind not in 'SU':
    raise _fail(path, key, f'expected one string, got {arr.dtype} array of '
                f'shape {arr.shape}.')
  value = arr.item()
  return value.decode() if isinstance(value, bytes) else value


def load_device_file(path: str, name: Optional[str] = None,
                     label: Optional[str] = None) -> Device:
  """Reads and checks a user's device file (format: ``meta/data/README.md``).

  ``label``: what the messages call the file (default ``path``; a file
  written only to be checked names what it was made from).

  Raises:
    DeviceFileError: naming the file, the field and what was expected.
  """
  where = label or path  # what the messages name
  with _open_npz(path, where) as npz:
    files = set(npz.files)
    sp = _read_space(npz, where, files)
    lat = _read(npz, where, 'latency_ms')
    if lat.ndim != 1 or lat.size == 0:
      raise _fail(where, 'latency_ms',
                  f'expected a non-empty 1-D array [N], got shape {lat.shape}.')
    n = len(lat)
    archs = _read_archs(npz, where, sp, n)
    _check_latencies(where, lat, sp.name)
    _warn_duplicates(where, sp.data_keys()[0], archs)
    is_query = np.zeros(n, bool)
    if 'is_query' in files:
      is_query = _read_is_query(npz, where, archs)
    if 'index' in files:
      _check_index(npz, where, sp.name, archs)
    _warn_constant(where, lat, is_query)
    meta = {k: _read(npz, where, k) for k in files
            if k not in set(sp.data_keys()) | {'space', 'latency_ms',
                                               'is_query', 'name'}}
    _warn_other_spaces_keys(where, sp, files)
    if name is None:
      name = (_string(npz, where, 'name') if 'name' in files else
              os.path.splitext(os.path.basename(path))[0])
      if not name.strip():
        raise _fail(where, 'name', 'is empty; expected the device\'s name '
                    '(or no name field: the file name is used).')
  return Device(name=name, space=sp.name, archs=archs,
                latency_ms=lat.astype(np.float32), is_query=is_query.copy(),
                source=path, meta=meta)


def _open_npz(path: str, where: str) -> np.lib.npyio.NpzFile:
  """The file as an open .npz archive, or an error (naming ``where``)
  saying what it is."""
  if not path:
    raise DeviceFileError('device file: an empty path; expected the path '
                          'of an .npz device file.')
  if not os.path.exists(path):
    hint = (f' (there is {path}.npz)' if os.path.exists(f'{path}.npz')
            else '')
    raise DeviceFileError(f'{where}: no such device file{hint}.')
  if os.path.isdir(path):
    raise DeviceFileError(f'{where}: a directory; expected a device file '
                          '(.npz).')
  with open(path, 'rb') as f:
    head = f.read(6)
  if head[:4] != b'PK\x03\x04' and head != b'\x93NUMPY':  # zip / .npy
    raise DeviceFileError(
        f'{where}: not an .npz archive (it starts with {head!r}); expected '
        'an .npz with the fields space, arch (or ks, e, d, r for ofa) and '
        'latency_ms (np.savez, or meta.latency_data.save_device_file).')
  try:
    npz = np.load(path, allow_pickle=False)
  except Exception as e:  # numpy raises several types for a non-npz file.
    raise DeviceFileError(f'{where}: not a readable .npz file ({e}); truncated '
                          'or corrupt? Expected an .npz written by np.savez '
                          'or meta.latency_data.save_device_file.') from e
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise DeviceFileError(
        f'{where}: a single .npy array ({np.asarray(npz).dtype} '
        f'{np.asarray(npz).shape}), not an .npz archive; expected an .npz '
        'with the fields space, arch (or ks, e, d, r for ofa) and latency_ms '
        '(np.savez, or meta.latency_data.save_device_file).')
  return npz


def _read_space(npz, path: str, files: set):
  """The file's search space; its fields present and spelt right."""
  if 'space' not in files:
    _check_spelling(path, files, _COMMON_FIELDS)  # 'spaces', say
    raise _fail(path, 'space', 'missing; expected one of '
                f'{", ".join(sorted(_FILES))}.')
  space = _string(npz, path, 'space')
  if space not in spaces_lib.SPACES:
    raise _fail(path, 'space', f'{space!r} is unknown; expected one of '
                f'{", ".join(sorted(spaces_lib.SPACES))}.')
  sp = spaces_lib.get_space(space)
  _check_spelling(path, files, sp.data_keys() + _COMMON_FIELDS)
  for key in sp.data_keys() + ('latency_ms',):
    if key not in files:
      article = 'an' if space[0] in 'aeiou' else 'a'
      raise _fail(path, key, f'missing; {article} {space} device file needs '
                  f'{", ".join(sp.data_keys() + ("latency_ms",))}.')
  return sp


def _read_archs(npz, path: str, sp, n: int) -> np.ndarray:
  """The architecture fields as validated int32 ``[n, units]``."""
  data = {key: _read(npz, path, key) for key in sp.data_shapes()}
  # Architecture fields that agree with each other but not with
  # latency_ms: latency_ms is the odd one out (a field that disagrees
  # with the others is named by its shape below).
  rows = {len(arr) if arr.ndim else -1 for arr in data.values()}
  if len(rows) == 1 and rows != {n} and all(
      arr.shape[1:] == shape for arr, shape in
      zip(data.values(), sp.data_shapes().values())):
    fields = ', '.join(repr(k) for k in data)
    raise _fail(path, 'latency_ms', f'{n} latencies for the {rows.pop()} '
                f'rows of field{"s" if len(data) > 1 else ""} {fields}; '
                'expected one per row.')
  for key, shape in sp.data_shapes().items():
    arr = data[key]
    if arr.shape != (n,) + shape:
      want = ', '.join(str(d) for d in (n,) + shape)
      raise _fail(path, key, f'expected shape [{want}] ({n} rows like '
                  f'latency_ms), got {arr.shape}.')
    if not np.issubdtype(arr.dtype, np.integer):
      raise _fail(path, key, f'expected integers, got dtype {arr.dtype}.')
  try:
    return sp.validate_batch(sp.from_data(data),
                             where=f'{path}: field {sp.data_keys()[0]!r}')
  except spaces_lib.ArchitectureError as e:
    message = str(e)  # OFA's native fields are checked before `where`
    raise DeviceFileError(message if message.startswith(path) else
                          f'{path}: {message}') from e


@functools.lru_cache(maxsize=None)
def _bundled_spread(space: str) -> float:
  """The largest factor between a row's latency and its device's median
  on any bundled device of ``space`` (fbnet 2.9, ofa 3.0, nasbench201
  3258: its nearly empty cells)."""
  data = load_space_data(space)
  spread = 1.0
  for device in data.devices:
    ratio = data.device_latency(device) / np.median(
        data.device_latency(device))
    spread = max(spread, float(ratio.max()), float(1 / ratio.min()))
  return spread


def _warn_outliers(path: str, lat: np.ndarray, space: str) -> None:
  """A warning for rows ``_OUTLIER_FACTOR`` times further from the median
  than any bundled device of the space has one (a misplaced decimal point:
  13773 for 1.3773); a space without bundled data is not checked."""
  if space not in _FILES or len(lat) < 2:
    return
  limit = _OUTLIER_FACTOR * _bundled_spread(space)
  ratio = lat / np.median(lat)
  far = np.nonzero((ratio > limit) | (ratio < 1 / limit))[0]
  if len(far):
    i = int(far[np.argmax(np.abs(np.log(ratio[far])))])
    logging.warning(
        '%s: field latency_ms: %d row(s) over %.3gx off the median %.4g ms '
        '(the farthest: row %d, %.4g ms), %gx further than any bundled %s '
        'device has one; a misplaced decimal point, or another unit?', path,
        len(far), limit, float(np.median(lat)), i, float(lat[i]),
        _OUTLIER_FACTOR, space)


def _check_latencies(path: str, lat: np.ndarray, space: str) -> None:
  """Real, finite, positive milliseconds (a warning if they look like
  seconds)."""
  if not (np.issubdtype(lat.dtype, np.integer) or
          np.issubdtype(lat.dtype, np.floating)):
    raise _fail(path, 'latency_ms', 'expected real numbers (integer or '
                f'float milliseconds), got dtype {lat.dtype}.')
  bad = ~np.isfinite(lat) | (lat <= 0)
  if bad.any():
    i = int(np.nonzero(bad)[0][0])
    raise _fail(path, 'latency_ms',
                f'row {i} is {float(lat[i])} ({int(bad.sum())} bad '
                f'row{"s" if bad.sum() > 1 else ""} in all); '
                'expected a finite latency > 0 ms (unmeasured rows must be '
                'left out, not marked -1 or NaN).')
  with np.errstate(over='ignore', under='ignore'):
    as_read = lat.astype(np.float32)  # what the loader keeps
  bad = ~np.isfinite(as_read) | (as_read <= 0)
  if bad.any():
    i = int(np.nonzero(bad)[0][0])
    raise _fail(path, 'latency_ms',
                f'row {i} is {float(lat[i]):g}, outside float32\'s range '
                f'(latencies are read as float32: it would be '
                f'{float(as_read[i]):g}); expected milliseconds that float32 '
                f'holds: at most {float(np.finfo(np.float32).max):.3g}, and '
                'not so small that they become 0.')
  _warn_outliers(path, lat, space)
  if np.median(lat) < _SECONDS_SUSPECT_MS:
    logging.warning(
        '%s: field latency_ms: the median latency is %.3g ms; the field '
        'holds milliseconds: if these are seconds, multiply them by 1000.',
        path, float(np.median(lat)))
  if np.median(lat) > _MICROSECONDS_SUSPECT_MS:
    logging.warning(
        '%s: field latency_ms: the median latency is %.3g ms; the field '
        'holds milliseconds: if these are microseconds (or nanoseconds), '
        'divide them by 1000 (or 1e6).', path, float(np.median(lat)))


def _warn_other_spaces_keys(path: str, sp, files) -> None:
  """A warning for architecture fields of the bundled spaces that this
  file's space does not read (an OFA file's ``arch``): kept as metadata."""
  others = {k for s in _FILES for k in spaces_lib.get_space(s).data_keys()}
  unread = sorted((others - set(sp.data_keys())) & set(files))
  if unread:
    logging.warning(
        '%s: field %s: not read in a %s file (its architectures are %s); '
        'kept as metadata.', path, ', '.join(unread), sp.name,
        ', '.join(sp.data_keys()))


def _warn_constant(path: str, lat: np.ndarray, is_query: np.ndarray) -> None:
  """A warning when the rows a predictor adapts on all measured the same:
  adapted on them it can only predict that constant (and a leave-one-out
  estimate on them reads 0%)."""
  support = lat[~is_query]
  if len(support) > 1 and np.ptp(support) == 0:
    logging.warning(
        '%s: field latency_ms: all %d non-query rows measured %g ms; a '
        'predictor adapted on them predicts that for every network (a '
        'timer too coarse for them? Time them over more runs).',
        path, len(support), float(support[0]))


def _read_is_query(npz, path: str, archs: np.ndarray) -> np.ndarray:
  """The held-out rows: bool ``[n]``, not all of them (see
  :func:`_hold_out`)."""
  n = len(archs)
  is_query = _read(npz, path, 'is_query')
  if is_query.shape != (n,) or is_query.dtype != bool:
    raise _fail(path, 'is_query', f'expected bool [{n}], got '
                f'{is_query.dtype} {is_query.shape}.')
  if is_query.all():
    raise _fail(path, 'is_query', 'every row is a query row; adaptation '
                'needs some rows with is_query false.')
  return _hold_out(path, archs, is_query)


def _check_index(npz, path: str, space: str, archs: np.ndarray) -> None:
  """The optional benchmark-list row of each architecture: in the list's
  range (an error), and the row's architecture (a warning where not)."""
  n = len(archs)
  index = _read(npz, path, 'index')
  want = (f"expected int [{n}] >= 0 (each architecture's row in the "
          "space's benchmark list), got")
  if index.shape != (n,) or not np.issubdtype(index.dtype, np.integer):
    raise _fail(path, 'index', f'{want} {index.dtype} {index.shape}.')
  if (index < 0).any():
    raise _fail(path, 'index', f'{want} min {index.min()}.')
  if space not in _FILES:  # a registered space without a benchmark list
    return
  listed = load_space_data(space).archs
  if (index >= len(listed)).any():
    raise _fail(path, 'index', f'max {index.max()}; expected rows of the '
                f'{space} benchmark list, 0..{len(listed) - 1}.')
  other = np.nonzero((listed[index] != archs).any(1))[0]
  if len(other):
    logging.warning(
        "%s: field index: %d of %d rows name a benchmark-list row of "
        'another architecture (the first: row %d, index %d); the field is '
        'kept, not used: each row is the architecture its arch field '
        'gives.', path, len(other), n, int(other[0]), int(index[other[0]]))


def _warn_duplicates(path: str, field: str, archs: np.ndarray) -> None:
  """Says when an architecture has more than one row: each row stays a
  measurement of its own (a support draw may take both; two query rows
  are both scored), except a reference architecture's repeats
  (:meth:`Device.sample_rows`)."""
  _, first, counts = np.unique(archs, axis=0, return_index=True,
                               return_counts=True)
  if (counts > 1).any():
    row = int(first[counts > 1].min())
    again = [int(i) for i in np.nonzero((archs == archs[row]).all(1))[0]]
    logging.warning(
        '%s: field %s: %d architectures have more than one row (first: rows '
        '%s); each row is used as a measurement of its own (of a reference '
        'architecture, only its first row).', path,
        field, int((counts > 1).sum()), ', '.join(map(str, again)))


def _hold_out(path: str, archs: np.ndarray, is_query: np.ndarray
              ) -> np.ndarray:
  """``is_query`` without the query rows whose architecture is also among
  the non-query rows: such a row is not held out (its architecture may be
  support), so it is not scored; it stays a measurement, as a non-query row.
  Said in a warning."""
  seen = {a.tobytes() for a in archs[~is_query]}
  dup = np.array([is_query[i] and archs[i].tobytes() in seen
                  for i in range(len(archs))], bool)
  if not dup.any():
    return is_query
  rows = np.nonzero(dup)[0]
  logging.warning(
      '%s: field is_query: %d query rows (first: %s) have an architecture '
      'that is also measured in a non-query row, so they are not held out; '
      'they are treated as non-query rows and not scored.', path, len(rows),
      ', '.join(str(int(i)) for i in rows[:5]))
  return is_query & ~dup


def check_device_file_path(path: str, where: str = 'device file') -> None:
  """A device file is written with ``np.savez``, which appends ``.npz`` to
  any other name: the file would not be where it was asked for."""
  if not str(path).endswith('.npz'):
    raise DeviceFileError(f'{where}: {path!r} does not end in .npz; expected '
                          'an .npz path (numpy would write it to '
                          f'{str(path) + ".npz"!r}).')


def save_device_file(path: str, device: Device) -> None:
  """Writes ``device`` in the device-file format (readable by the loader)."""
  check_device_file_path(path)
  sp = spaces_lib.get_space(device.space)
  arrays = dict(sp.to_data(device.archs))
  arrays.update(device.meta)
  arrays.update(space=np.array(device.space), name=np.array(device.name),
                latency_ms=np.asarray(device.latency_ms, np.float32),
                is_query=np.asarray(device.is_query, bool))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  # Written whole or not at all: a run killed while writing must not leave
  # a truncated file that the next run finds and reuses.
  with workdirs.atomic_open(path, 'wb') as f:
    np.savez(f, **arrays)


def get_device(space: str, name_or_path: str) -> Device:
  """A bundled device by name, or a device file by path."""
  if name_or_path.endswith('.npz') or os.sep in name_or_path:
    dev = load_device_file(name_or_path)
    if dev.space != space:
      raise _fail(name_or_path, 'space', f'is {dev.space!r}, but {space!r} '
                  'was asked for.')
    return dev
  return bundled_device(space, name_or_path)


def devices_of(space: str, names: Sequence[str]) -> list[Device]:
  return [bundled_device(space, n) for n in names]
