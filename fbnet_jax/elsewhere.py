"""Measuring on hardware that JAX does not run on: a phone, an NPU, TensorRT.

Two steps around the user's own timing tool:

1. :func:`export_plan` writes the architectures to time (the reference
   architectures, random ones, query ones: ``experiments.measure --archs``)
   as ONNX models (``model_0000.onnx``..., NHWC float32 images -> logits,
   randomly initialised: latency does not depend on the weights' values),
   ``plan.npz`` (which architecture each model is) and ``timings.csv``
   (one row per model with its NHWC input shape, its ``latency_ms``
   column empty).
2. The user converts and times each model on the device (TFLite,
   TensorRT, the vendor's SDK...), writes the milliseconds into
   ``timings.csv``, and :func:`device_from_timings` turns it into a device
   (:func:`write_device_file` into a device file, ``meta/data/README.md``),
   checked like every other: used as it is
   by ``experiments.adapt``, the searches and ``experiments.meta_test
   --device_file``.

A row left empty is a network that was not measured: it is left out, and
:func:`device_from_timings` says how many and whether reference
architectures are among them (the predictor imputes those).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from typing import Sequence

from absl import logging
import numpy as np
import tqdm

from fbnet_jax import errors
from fbnet_jax import initializers
from fbnet_jax import models
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs
from meta import latency_data

PLAN_FILE = 'plan.npz'
TIMINGS_FILE = 'timings.csv'
COLUMNS = ('row', 'model', 'input_shape', 'is_query', 'reference',
           'latency_ms')
# Written on every row since 2026-12-05 (older CSVs lack it): which plan the
# CSV is of, so that one plan's timings are not taken for another's of the
# same size (same model names, is_query and reference columns).
PLAN_COLUMN = 'plan'


def plan_id(plan) -> str:
  """A short fingerprint of a plan's settings (``plan.npz``'s arrays)."""
  digest = hashlib.sha256()
  for key in sorted(plan):
    value = np.asarray(plan[key])
    digest.update(key.encode() + str(value.dtype).encode() +
                  str(value.shape).encode() + value.tobytes())
  return digest.hexdigest()[:12]


def model_name(row: int) -> str:
  return f'model_{row:04d}.onnx'


def export_plan(directory: str, space: spaces_lib.SearchSpace,
                archs: np.ndarray, is_query: np.ndarray,
                reference_rows: Sequence[int] = (), *, batch_size: int = 1,
                progress: bool = True) -> str:
  """Writes ``archs`` [N, U] of ``space`` as ONNX models to time elsewhere,
  with ``plan.npz`` and an empty ``timings.csv``; returns the CSV's path.
  A model already in ``directory`` (an earlier, interrupted export of the
  same plan) is kept, not exported again."""
  from fbnet_jax import export  # pylint: disable=g-import-not-at-top
  export._require('jax2onnx')  # pylint: disable=protected-access
  archs = space.validate_batch(np.asarray(archs), where='export_plan: archs')
  os.makedirs(directory, exist_ok=True)
  plan_path = os.path.join(directory, PLAN_FILE)
  settings = dict(space=np.array(space.name),
                  macro=np.array(space.macro_name),
                  batch_size=np.array(batch_size), arch=archs,
                  is_query=np.asarray(is_query, bool),
                  reference_rows=np.asarray(reference_rows, np.int64))
  if os.path.exists(plan_path):
    with np.load(plan_path) as old:
      if set(old.files) != set(settings) or not all(
          np.array_equal(old[k], v) for k, v in settings.items()):
        raise errors.InputError(
            f'--export_onnx: {directory} holds another plan ({PLAN_FILE}: '
            'other architectures or settings); expected an empty folder or '
            'this plan\'s.')
  with workdirs.atomic_open(plan_path, 'wb') as f:
    np.savez(f, **settings)
  refs = set(int(r) for r in reference_rows)
  shapes = []
  for row, arch in enumerate(tqdm.tqdm(archs, desc='onnx export',
                                       unit='model', disable=not progress)):
    model = models.standalone(space.name, tuple(int(a) for a in arch),
                              macro=space.macro_name or 'cifar')
    size = model.input_size
    shapes.append(f'{batch_size}x{size}x{size}x3')
    path = os.path.join(directory, model_name(row))
    if os.path.exists(path):
      continue
    x = np.zeros((1, size, size, 3), np.float32)
    variables = initializers.fast_init(model, row, x, train=False)
    export.to_onnx(model, variables, (batch_size, size, size, 3), path=path,
                   name=f'{space.name}_{row:04d}')
  csv_path = os.path.join(directory, TIMINGS_FILE)
  if not os.path.exists(csv_path):  # never overwrite timings being filled
    with workdirs.atomic_open(csv_path, 'w') as f:
      writer = csv.writer(f)
      writer.writerow(COLUMNS + (PLAN_COLUMN,))
      fingerprint = plan_id(settings)
      for row in range(len(archs)):
        writer.writerow([row, model_name(row), shapes[row],
                         int(bool(is_query[row])), int(row in refs), '',
                         fingerprint])
  return csv_path


def device_from_timings(csv_path: str, name: str = ''):
  """The device file's :class:`meta.latency_data.Device` of a filled
  ``timings.csv`` (its ``plan.npz`` beside it); ``name`` defaults to the
  plan folder's name.

  Raises:
    errors.InputError: a CSV that is not the plan's (models missing,
      unknown or repeated, is_query or reference changed), a latency that
      is not a number > 0, or no latency at all (or only on query rows);
      naming the file, the line and the column.
  """
  directory = os.path.dirname(os.path.abspath(csv_path))
  plan_path = os.path.join(directory, PLAN_FILE)
  if not os.path.isfile(csv_path):
    raise errors.InputError(f'--from_timings: {csv_path}: no such file; '
                            'expected the timings.csv of an --export_onnx '
                            'folder, filled in.')
  if not os.path.isfile(plan_path):
    raise errors.InputError(f'--from_timings: {csv_path}: no {PLAN_FILE} '
                            'beside it; expected the timings.csv of an '
                            '--export_onnx folder.')
  with np.load(plan_path) as plan:
    space_name = str(plan['space'])
    archs = np.asarray(plan['arch'], np.int32)
    is_query = np.asarray(plan['is_query'], bool)
    macro, batch_size = str(plan['macro']), int(plan['batch_size'])
    reference_rows = set(int(r) for r in plan['reference_rows'])
    fingerprint = plan_id({k: plan[k] for k in plan.files})
  latency = _read_latencies(csv_path, plan_path, is_query, reference_rows,
                            fingerprint)
  measured = np.isfinite(latency)
  if not measured.any():
    raise errors.InputError(f'{csv_path}: column latency_ms is empty on '
                            'every row; expected the measured milliseconds.')
  if not (measured & ~is_query).any():
    raise errors.InputError(
        f'{csv_path}: column latency_ms is filled only on query rows '
        '(is_query 1); expected the reference and random models measured '
        'too: adaptation needs rows that are not query rows.')
  left_out = np.nonzero(~measured)[0]
  if len(left_out):
    refs_missing = sorted(reference_rows & set(left_out.tolist()))
    logging.warning(
        '%s: %d of %d models have no latency_ms and are left out%s.',
        csv_path, len(left_out), len(archs),
        f' ({len(refs_missing)} reference architectures among them: the '
        'predictor imputes them)' if refs_missing else '')
  meta = dict(runtime=np.array('elsewhere'), batch_size=np.array(batch_size),
              dtype=np.array('float32'), timings_file=np.array(csv_path))
  if macro:
    meta['macro'] = np.array(macro)
  return latency_data.Device(
      name=name or os.path.basename(directory), space=space_name,
      archs=archs[measured], latency_ms=latency[measured].astype(np.float32),
      is_query=is_query[measured], source=csv_path, meta=meta)


def write_device_file(csv_path: str, out: str, name: str = ''):
  """A filled timings.csv -> the device file ``out``, written only once it
  has been checked like any other device file; returns the device.

  Raises:
    DeviceFileError: naming the timings file and what the device file made
      from it fails (a temporary ``.checking.npz`` is removed).
  """
  latency_data.check_device_file_path(out, '--out')
  device = device_from_timings(csv_path, name)
  checking = out[:-len('.npz')] + '.checking.npz'
  latency_data.save_device_file(checking, device)
  try:
    device = latency_data.load_device_file(
        checking, name=device.name, label=f'{out} (from {csv_path})')
  except latency_data.DeviceFileError as e:
    os.remove(checking)
    raise latency_data.DeviceFileError(
        f'--from_timings: {csv_path}: the device file it makes is refused: '
        f'{e}') from None
  if os.path.exists(out):
    logging.warning('--out: %s exists; replaced by the device file of %s.',
                    out, csv_path)
  os.replace(checking, out)
  return dataclasses.replace(device, source=out)


def _read_latencies(csv_path: str, plan_path: str, is_query: np.ndarray,
                    reference_rows: set, fingerprint: str) -> np.ndarray:
  """``latency_ms`` per model of the plan (NaN where left empty) from a
  timings.csv, as a spreadsheet may have saved it: a UTF-8 byte-order mark,
  spaces around fields, rows in another order, blank rows. Rows are
  matched to the plan by their ``model`` column."""
  n = len(is_query)
  with open(csv_path, newline='', encoding='utf-8-sig') as f:
    reader = csv.DictReader(f)
    header = [(k or '').strip() for k in (reader.fieldnames or [])]
    if len(header) == 1 and (';' in header[0] or '\t' in header[0]):
      sep = 'tabs' if '\t' in header[0] else '";"'
      raise errors.InputError(
          f'{csv_path}: one column {header[0]!r}; expected comma-separated '
          f'columns {", ".join(COLUMNS)} (it was saved with {sep}: save as '
          'CSV with commas).')
    if set(COLUMNS) - set(header):
      raise errors.InputError(
          f'{csv_path}: columns {", ".join(header) or "none"}; expected '
          f'{", ".join(COLUMNS)} (the header that --export_onnx wrote).')
    rows = []
    for raw in reader:
      extra = [v for v in raw.get(None) or [] if v.strip()]
      if extra:  # csv puts fields beyond the header under None
        raise errors.InputError(
            f'{csv_path}: line {reader.line_num}: {len(extra)} more field(s) '
            f'than the header ({", ".join(map(repr, extra))}); expected '
            f'{len(header)} (a decimal comma in an unquoted number? Write '
            '1.5, not 1,5).')
      r = {(k or '').strip(): (v or '').strip() for k, v in raw.items()
           if k is not None}
      if any(r.values()):
        rows.append((reader.line_num, r))
  names = {model_name(i): i for i in range(n)}
  latency = np.full(n, np.nan)
  seen = {}
  for line, r in rows:
    where = f'{csv_path}: line {line}'
    i = names.get(r['model'])
    if i is None:
      raise errors.InputError(
          f'{where}: column model is {r["model"]!r}; expected one of the '
          f'plan\'s models ({model_name(0)} to {model_name(n - 1)}, '
          f'{plan_path}).')
    if i in seen:
      raise errors.InputError(f'{where}: model {r["model"]} again (first on '
                              f'line {seen[i]}); expected each model once.')
    seen[i] = line
    if r.get(PLAN_COLUMN) and r[PLAN_COLUMN] != fingerprint:
      raise errors.InputError(
          f'{where}: column {PLAN_COLUMN} is {r[PLAN_COLUMN]!r}, {plan_path} '
          f'is plan {fingerprint!r}; expected the timings.csv that '
          '--export_onnx wrote beside this plan.npz (this one is of another '
          'plan).')
    if r['row'] != str(i):
      raise errors.InputError(
          f'{where}: column row is {r["row"]!r} for {r["model"]}; expected '
          f'{i} (its row in {plan_path}): were two rows\' models swapped?')
    for column, planned in (('is_query', int(bool(is_query[i]))),
                            ('reference', int(i in reference_rows))):
      if r[column] != str(planned):
        raise errors.InputError(
            f'{where}: column {column} is {r[column]!r} for {r["model"]}; '
            f'the plan says {planned} ({plan_path}); these columns are '
            'information, not settings: measure what the plan holds.')
    text = r['latency_ms']
    if not text:
      continue
    try:
      value = float(text)
    except ValueError:
      value = float('nan')
    if not np.isfinite(value) or value <= 0:
      comma = ' with a decimal point, not a comma' if ',' in text else ''
      raise errors.InputError(
          f'{where}: column latency_ms is {text!r}; expected milliseconds, '
          f'a number > 0{comma} (or empty for a model not measured).')
    latency[i] = value
  missing = sorted(set(range(n)) - set(seen))
  if missing:
    raise errors.InputError(
        f'{csv_path}: no row for {len(missing)} of the plan\'s {n} models '
        f'(first: {model_name(missing[0])}); expected every model, its '
        'latency_ms left empty if it was not measured.')
  return latency
