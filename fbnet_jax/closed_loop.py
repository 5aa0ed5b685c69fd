"""Closed loop on this machine: measure, adapt, search, verify.

- :func:`ensure_device_file`: a device file of this machine (the space's
  reference architectures + N random ones, measured with the harness of
  :mod:`fbnet_jax.measure`), measured only if the file does not exist yet.
- :func:`verify`: measures found architectures in one session
  (interleaved with the reference architectures, whose re-measured
  latencies give the drift since the device file was written);
  :func:`verify_in_sessions` repeats it in ``config.measure.verify_sessions``
  sessions and takes each network's median over them.
- :func:`check_measured_here`: a clear error unless a device file was
  measured by this harness on this machine's backend with the config's
  settings (what :func:`verify` compares against must be).
- :func:`run`: the whole loop for several targets, with an independent check
  of the adapted predictor on ``num_query`` other measured architectures;
  counts measurements and seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import time
from typing import Sequence

from absl import logging
import jax
import ml_collections
import numpy as np
import scipy.stats

from fbnet_jax import errors
from fbnet_jax import latency as latency_lib
from fbnet_jax import measure
from fbnet_jax import reporting
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs
from meta import latency_data


# config.measure's fields that say how sessions run, not how one times.
_SESSION_FIELDS = ('fresh_process', 'verify_sessions')
# Sessions a found network is verified in (configs/search_common.py).
DEFAULT_VERIFY_SESSIONS = 3
VERIFY_SESSIONS = errors.Bound('measure.verify_sessions', 1, integer=True)
# A reference drift beyond this against the device file is more than the
# 2-core VM's session-to-session swing (-16% to +16%): a stale file. (On
# 2026-12-03 an OFA device file of 2026-11-28 ran its references 55% faster
# on the current code, and a front adapted to it was predicted 242% slow.)
STALE_DRIFT = 0.25
# A workdir's finished verifying sessions (verify_in_sessions's record).
VERIFY_RECORD = 'verify_sessions.json'


def measure_config(config: ml_collections.ConfigDict) -> measure.MeasureConfig:
  """``config.measure`` (``configs/search_common.py``) as the harness's
  settings; ``fresh_process`` says where to run it (:func:`_measure`)."""
  m = dict((config.get('measure') or {}).items())
  for field in _SESSION_FIELDS:
    m.pop(field, None)
  known = {f.name for f in dataclasses.fields(measure.MeasureConfig)}
  if set(m) - known:
    raise errors.InputError(
        f'config.measure: unknown field(s) {sorted(set(m) - known)};'
        f' expected fields of measure.MeasureConfig or '
        f'{", ".join(_SESSION_FIELDS)}.')
  errors.check_bounds(config, [VERIFY_SESSIONS])
  errors.check_bounds(m, measure.BOUNDS, 'config.measure.')  # its names
  return measure.make_config('config.measure.', space=config.space,
                             macro=config.get('macro', 'cifar'), **m)


def _measure(config, archs, session: int = 0, **kwargs):
  """The harness, in a fresh process unless ``measure.fresh_process`` is
  False (see :func:`measure.measure_archs_in_fresh_process`); ``session``
  offsets the seed of the interleaving order, so that repeated sessions do
  not repeat one sequence of orders."""
  fresh = (config.get('measure') or {}).get('fresh_process', True)
  fn = (measure.measure_archs_in_fresh_process if fresh
        else measure.measure_archs)
  mcfg = measure_config(config)
  return fn(archs, dataclasses.replace(mcfg, seed=mcfg.seed + session),
            **kwargs)


def _space(config):
  return spaces_lib.space_for(config.space, config.get('macro', 'cifar'))


def ensure_device_file(config: ml_collections.ConfigDict, path: str,
                       num_samples: int, num_query: int = 0,
                       name: str = '', loaded=None) -> dict:
  """Measures and writes ``path`` unless it exists; returns what it did.

  Rows: the reference architectures, ``num_samples`` random ones (support)
  and ``num_query`` random ones flagged ``is_query`` (evaluation only), all
  timed in one interleaved session. ``loaded``: the file at ``path``, if
  the caller has read it already.
  """
  latency_data.check_device_file_path(path, 'config.latency.device_file')
  mcfg = measure_config(config)
  if os.path.exists(path):
    _check_reusable(loaded or latency_data.load_device_file(path), path,
                    mcfg.seed + 1, num_samples, num_query)
    return {'measured': 0, 'seconds': 0.0}
  t0 = time.time()
  space = _space(config)
  refs = latency_data.load_space_data(config.space).reference_archs
  rng = np.random.default_rng(mcfg.seed + 1)
  archs = np.concatenate([refs, space.sample(rng, num_samples + num_query)])
  partial = measure.resume_file_for(path)  # a killed run goes on from it
  _say_measuring(path, partial, len(archs), mcfg)
  is_query = np.r_[np.zeros(len(refs) + num_samples, bool),
                   np.ones(num_query, bool)]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  device = _measure(
      config, archs, reference_rows=list(range(len(refs))),
      name=name or f'local_{measure.backend_name(mcfg.runtime)}',
      is_query=is_query, resume_file=partial)
  # What drew the rows, so that a later run asking for others says so
  # instead of reusing these (_check_reusable).
  device.meta['sample_seed'] = np.int64(mcfg.seed + 1)
  latency_data.save_device_file(path, device)
  measure.discard_resume_file(partial)
  noise = {k: float(device.meta[k]) for k in (
      'median_relative_spread', 'max_relative_spread', 'reference_drift',
      'rounds')}
  # Rounds at which a killed measurement was resumed: its rounds then come
  # from more than one process.
  noise['resumed_at_rounds'] = [
      int(r) for r in device.meta.get('resumed_at_rounds', [])]
  return {'measured': len(archs), 'seconds': time.time() - t0,
          'noise': noise}


def _say_measuring(path: str, partial: str, count: int,
                   mcfg: measure.MeasureConfig) -> None:
  """Warns before a missing device file is measured here: a mistyped path
  to another device's file would otherwise search for this machine.
  ``partial``: the measurement's resume file (said instead, if there)."""
  if os.path.exists(partial):
    logging.info('config.latency.device_file: %s does not exist yet; the '
                 'measurement that writes it resumes from %s.', path, partial)
    return
  folder = os.path.dirname(os.path.abspath(path))
  # Device files only: not the partial or checking files of a measurement.
  others = ([f for f in os.listdir(folder) if f.endswith('.npz') and not
             f.endswith(('.partial.npz', '.checking.npz'))]
            if os.path.isdir(folder) else [])
  close = difflib.get_close_matches(os.path.basename(path), others, n=1)
  logging.warning(
      'config.latency.device_file: %s does not exist; measuring %d networks '
      'on this machine (%s) to write it.%s If you meant the file of another '
      'device, stop now and correct the path.', path, count,
      measure.backend_name(mcfg.runtime),
      f' (A similar file exists: {os.path.join(folder, close[0])}.)'
      if close else '')


def _check_reusable(device, path: str, sample_seed: int, num_samples: int,
                    num_query: int) -> None:
  """Raises ``ValueError`` naming ``path`` unless the existing device file
  can stand for the one measuring it now would write: at least
  ``num_samples`` support rows, drawn with ``sample_seed`` where the file
  records it (a warning where it does not); another number of query rows
  than ``num_query`` is a warning (the file's are used)."""
  remedy = ('; delete it or set another --config.latency.device_file to '
            'measure them.')
  seed = device.meta.get('sample_seed')
  if seed is None:
    logging.warning('%s: no field sample_seed (written before it was '
                    'recorded, or by experiments.measure): reused without '
                    'checking which seed drew its architectures.', path)
  elif int(seed) != sample_seed:
    raise errors.InputError(
        f'{path}: field sample_seed is {int(seed)}, but config.measure.seed '
        f'asks for architectures drawn with seed {sample_seed}' + remedy)
  query = int(device.is_query.sum())
  if query != num_query:
    logging.warning('%s: field is_query marks %d query rows, not the %d '
                    'asked for (--num_query); the predictor is checked on '
                    'the file\'s %d.', path, query, num_query, query)
  support = len(device.sample_rows())
  if support < num_samples:
    raise errors.InputError(
        f'{path}: holds {support} support rows besides the references, but '
        f'config.latency.num_samples is {num_samples}' + remedy)


def check_measured_here(config: ml_collections.ConfigDict, device,
                        path: str) -> None:
  """Raises ``ValueError`` naming ``path`` and the field unless ``device``
  (loaded from ``path``) was measured by :mod:`fbnet_jax.measure` on this
  machine's kind of device with the batch size, dtype, (FBNet) macro
  network, statistic and pinned cores that measuring here would use: a new
  measurement is only comparable with such a file."""
  want = measure_config(config)
  if device.space != config.space:
    raise errors.InputError(
        f'{path}: field space is {device.space!r}, but '
        f'config.space is {config.space!r}; expected a device '
        'file of the searched space.')
  if 'device_kind' not in device.meta:
    raise errors.InputError(
        f'{path}: no field device_kind, so it was not written by '
        'experiments.measure; measuring here to compare with it needs a '
        'device file of this machine (python -m experiments.measure '
        f'--space={config.space} --archs=reference,random:10 '
        f'--statistic={want.statistic} --cpu_cores={want.cpu_cores} '
        f'--runtime={want.runtime} --onnx_threads={want.onnx_threads} '
        f'--batch_size={want.batch_size} --dtype={want.dtype} '
        f'--macro={want.macro} --out=...).')
  expected = [('runtime', want.runtime),
              ('device_kind', measure.device_kind(want.runtime)),
              ('batch_size', want.batch_size), ('dtype', want.dtype),
              ('statistic', want.statistic), ('cpu_cores', want.cpu_cores)]
  if spaces_lib.get_space_class(config.space).MACROS:
    expected.append(('macro', want.macro))
  if want.runtime == 'onnxruntime':  # its thread count changes the scale
    expected.append(('onnx_threads', want.onnx_threads))
  for field, value in expected:
    got = measure.file_setting(device, field)
    if got != value:
      raise errors.InputError(
          f'{path}: field {field} is {got!r}, but measuring on this machine '
          f'would use {value!r}; expected a device file measured here with '
          'the same settings (config.measure, config.macro).')
  here = measure.measure_environment()
  # On a CPU, device_kind says only 'cpu' (or the architecture, for ONNX
  # Runtime): the CPU model is what tells two machines apart.
  other = _other_cpu(config, device)
  if other is not None:
    raise errors.InputError(
        f'{path}: field env_cpu is {other!r}, but this machine\'s CPU is '
        f'{here["cpu"]!r}; expected a device file measured on this machine '
        '(measurements here are compared with it).')
  for key in ('host', 'cpu'):
    got = device.meta.get(f'env_{key}')
    if got is not None and str(got) != here[key]:
      logging.warning(
          '%s: field env_%s is %r, but this machine is %r: the file was '
          'measured on another machine of the same kind, and comparing it '
          'with measurements here mixes the two machines\' speed into the '
          'drift.', path, key, str(got), here[key])
  _check_has_references(device, path)


def on_this_backend(config: ml_collections.ConfigDict, device) -> bool:
  """Whether ``device`` (a loaded device file) was measured with
  ``config.measure.runtime`` on this kind of backend: JAX on JAX's default
  backend, or ONNX Runtime (whose files' ``backend`` was spelt
  ``onnxruntime-cpu`` before it became ``onnxruntime_cpu``)."""
  runtime = measure_config(config).runtime
  if measure.file_setting(device, 'runtime') != runtime:
    return False
  if runtime == 'jax' and str(device.meta.get(
      'backend', '')) != jax.default_backend():
    return False
  other = _other_cpu(config, device)
  if other is not None:
    logging.info('%s was measured on another CPU model (env_cpu %r): not '
                 'this machine.', device.source or device.name, other)
    return False
  return True


def _other_cpu(config, device):
  """The device file's CPU model if it was measured on a CPU runtime and
  names another CPU than this machine's (else None; files before env_cpu
  was recorded name none)."""
  on_cpu = (measure_config(config).runtime != 'jax' or
            jax.default_backend() == 'cpu')
  got = device.meta.get('env_cpu')
  if on_cpu and got is not None and str(got) != workdirs.cpu_model():
    return str(got)
  return None


def _check_has_references(device, path: str) -> None:
  """New sessions are put on a device file's scale through the reference
  architectures timed in both; a file without them cannot be compared."""
  if not (device.reference_rows() >= 0).any():
    raise errors.InputError(
        f'{path}: field arch holds none of the {device.space} reference '
        'architectures among its non-query rows; measurements here are '
        "divided by the references' drift since the file, so measure it "
        'with them (python -m experiments.measure --archs=reference,...).')


def verify(config: ml_collections.ConfigDict, archs: np.ndarray,
           saved, session: int = 0) -> dict:
  """Measures ``archs`` now, beside the reference architectures (in
  interleaving order ``session``, see :func:`_measure`).

  ``saved`` is the loaded device file (a ``meta.latency_data.Device``).
  Returns the measured ms, the drift of the references against it (median
  ratio - 1; a drift of several percent means the machine's speed changed
  between the two sessions) and the references' ms in this session.
  """
  _check_has_references(saved, saved.source or saved.name)
  t0 = time.time()
  refs = latency_data.load_space_data(config.space).reference_archs
  rows = np.concatenate([refs, np.atleast_2d(archs)])
  device = _measure(config, rows, session,
                    reference_rows=list(range(len(refs))), name='verify')
  ref_rows = saved.reference_rows()
  have = ref_rows >= 0
  ratio = (device.latency_ms[:len(refs)][have] /
           saved.latency_ms[ref_rows[have]])
  drift = float(np.median(ratio) - 1)
  if abs(drift) > STALE_DRIFT:
    logging.warning(
        '%s: the reference architectures ran %+.0f%% against this device '
        'file: the machine, its load or the code that builds and times the '
        'networks changed since it was measured, and a predictor adapted '
        'to it is off by about as much. Re-measure the device file '
        '(experiments.measure).',
        saved.source or saved.name, 100 * drift)
  return {'measured_ms': device.latency_ms[len(refs):].tolist(),
          'drift_vs_device_file': drift,
          'reference_ms': device.latency_ms[:len(refs)][have].tolist(),
          'measured': len(rows), 'seconds': time.time() - t0}


def _verify_record_key(config, archs: np.ndarray, saved) -> dict:
  """What a recorded verifying session is valid for: these networks, timed
  with these settings, against this device file's latencies."""
  return {'archs': np.atleast_2d(archs).tolist(),
          'device_file': os.path.abspath(saved.source or saved.name),
          'device_file_latencies': hashlib.sha256(np.ascontiguousarray(
              saved.latency_ms, np.float64).tobytes()).hexdigest()[:16],
          'measure': workdirs.as_json(dataclasses.asdict(
              measure_config(config))),
          'fresh_process': (config.get('measure') or {}).get(
              'fresh_process', True)}


def verify_in_sessions(config: ml_collections.ConfigDict, archs: np.ndarray,
                       saved, sessions: int | None = None,
                       record: str | None = None) -> dict:
  """:func:`verify` in ``sessions`` separate measuring sessions (default
  ``config.measure.verify_sessions``), each network's median over them.

  One session's speed is one draw: on the 2-core VM the same network moved
  3-5% between fresh sessions on one pinned core and 15-20% on two
  (``benchmarks.session_noise``), so one session can put a network 10% off
  its target that is on it. Returns :func:`verify`'s fields, each the median
  over the sessions (``measured``, ``seconds``: the sums), plus
  ``sessions``: each session's ``measured_ms`` and ``drift_vs_device_file``.

  ``record``: a JSON file that keeps each finished session, so that a job
  killed between sessions measures only the ones it had not finished when
  rerun. A record of other networks, settings or device-file latencies is
  not used (logged) and is replaced.
  """
  if sessions is None:
    sessions = (config.get('measure') or {}).get('verify_sessions',
                                                 DEFAULT_VERIFY_SESSIONS)
  if sessions < 1:
    raise errors.InputError(
        f'config.measure.verify_sessions: expected at least 1 '
        f'measuring session, got {sessions}.')
  key = _verify_record_key(config, archs, saved) if record else None
  checks = []
  if record:
    recorded = workdirs.read_json(record)
    if recorded is not None and recorded.get('key') == key:
      checks = recorded['sessions'][:sessions]
      if checks:
        logging.info('%s: %d of %d verifying sessions read back', record,
                     len(checks), sessions)
    elif recorded is not None:
      logging.info('%s: recorded for other networks, settings or device-file '
                   'latencies; measuring again', record)
  while len(checks) < sessions:
    checks.append(verify(config, archs, saved, session=len(checks)))
    if record:
      workdirs.write_json(record, {'key': key, 'sessions': checks})
  raw = np.array([c['measured_ms'] for c in checks])  # [S, N]
  drift = np.array([c['drift_vs_device_file'] for c in checks])  # [S]
  return {
      'measured_ms': np.median(raw, axis=0).tolist(),
      'drift_vs_device_file': float(np.median(drift)),
      # Each session's measurement over that session's references: the
      # machine's own speed change divided out, then the median.
      'measured_vs_references_ms': np.median(
          raw / (1 + drift[:, None]), axis=0).tolist(),
      'reference_ms': np.median([c['reference_ms'] for c in checks],
                                axis=0).tolist(),
      'measured': sum(c['measured'] for c in checks),
      'seconds': sum(c['seconds'] for c in checks),
      'sessions': [{'measured_ms': c['measured_ms'],
                    'drift_vs_device_file': c['drift_vs_device_file']}
                   for c in checks]}


def verify_found(config: ml_collections.ConfigDict, result: dict, device,
                 workdir: str) -> dict:
  """A search's found network (``result``, its ``result.json``) measured
  here beside the references (:func:`verify_in_sessions`, kept in
  ``workdir``), with the search's own prediction and the target: what
  ``experiments.search --verify`` adds to ``result.json`` as ``measured``.
  """
  check = verify_in_sessions(config, result['arch_index'], device,
                             record=os.path.join(workdir, VERIFY_RECORD))
  predicted = result['latency_ms'][result['latency_source']]
  measured = check['measured_ms'][0]
  return dict(check, predicted_ms=predicted,
              prediction_error=predicted / measured - 1,
              target_error=measured / config.latency.target_ms - 1)


def device_label(device) -> str:
  """This machine's kind of device (or CPU, for ONNX Runtime) and the
  device file's name."""
  runtime = measure.file_setting(device, 'runtime')
  return f'{measure.device_kind(runtime)} ({device.name})'


def run(config: ml_collections.ConfigDict, workdir: str,
        quantiles: Sequence[float] = (0.2, 0.5, 0.8), num_query: int = 200
        ) -> dict:
  """Measure -> adapt -> check on other archs -> search per target -> verify.

  ``config`` is a search config whose ``latency.device_file`` names this
  machine's device file (measured here if missing, with
  ``latency.num_samples`` support rows and ``num_query`` query rows). The
  found networks are measured together after the searches, each network's
  median over ``config.measure.verify_sessions`` sessions
  (:func:`verify_in_sessions`). Writes ``closed_loop.json`` and
  ``closed_loop.png`` (:func:`reporting.plot_closed_loop`).
  """
  t0 = time.time()
  _check_loop_config(config, num_query)  # before minutes of measuring
  os.makedirs(workdir, exist_ok=True)
  path = config.latency.device_file
  existed = os.path.exists(path)
  device = latency_data.load_device_file(path) if existed else None
  if existed:  # whose file it is (verify compares with it), before what
    # it holds (ensure_device_file)
    check_measured_here(config, device, path)
  made = ensure_device_file(config, path, config.latency.num_samples,
                            num_query, loaded=device)
  if not existed:  # measured just now: read and checked like any other
    device = latency_data.load_device_file(path)
    check_measured_here(config, device, path)
  # The support the searches' latency source adapts on (latency_source).
  support_set = latency_lib.support_for(config, device)
  adapted = support_set.adapt()
  predictor_check = _predictor_check(adapted, device)
  # What the support alone says to expect, beside the measured check.
  predictor_check['support_leave_one_out'] = support_set.leave_one_out()
  support = len(support_set.archs)  # the rows adaptation used
  # Targets at quantiles of the predicted latency of random architectures.
  sample = _space(config).sample(np.random.default_rng(0), 4000)
  sample_ms = adapted.predict_ms(sample)
  found = []
  for q in quantiles:
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.latency.source = 'predictor'
    cfg.latency.target_ms = round(float(np.quantile(sample_ms, q)), 3)
    found.append((q, cfg.latency.target_ms, search.train_and_evaluate(
        cfg, os.path.join(workdir, workdirs.quantile_name(q)),
        desc=f'search {cfg.latency.target_ms:.3g} ms')))
  # The found networks timed together, in config.measure.verify_sessions
  # sessions after every search (each beside the references).
  check = verify_in_sessions(
      config, np.stack([np.asarray(r['arch_index']) for *_, r in found]),
      device, record=os.path.join(workdir, VERIFY_RECORD))
  rows = [_found_row(i, q, target, result, check)
          for i, (q, target, result) in enumerate(found)]
  for row in rows:
    print(f'target {row["target_ms"]:7.3f} ms  predicted '
          f'{row["predicted_ms"]:7.3f}  measured {row["measured_ms"]:7.3f} ms '
          f'({100 * row["relative_error"]:+.1f}%; median of '
          f'{len(check["sessions"])} sessions '
          f'{", ".join(f"{ms:.3f}" for ms in row["session_ms"])}; '
          f'{100 * row["relative_error_vs_references"]:+.1f}% against '
          'the references)', flush=True)
  print('references per session against the device file: ' + ', '.join(
      f'{100 * s["drift_vs_device_file"]:+.1f}%' for s in check['sessions']))
  mcfg = measure_config(config)
  runtime = mcfg.runtime
  out = {'device_file': os.path.abspath(path),
         'backend': measure.backend_name(runtime),
         'runtime': runtime, 'statistic': mcfg.statistic,
         'cpu_cores': mcfg.cpu_cores,
         'device_kind': measure.device_kind(runtime),
         'support_measurements': support,
         'device_file_measurement': made,
         'predictor_check': predictor_check, 'searches': rows,
         # The references' drift in each verifying session.
         'verify_session_drifts': [s['drift_vs_device_file']
                                   for s in check['sessions']],
         'max_abs_relative_error': max(abs(r['relative_error'])
                                       for r in rows),
         'max_abs_prediction_error': max(abs(r['prediction_error'])
                                         for r in rows),
         'total_measurements': made['measured'] + check['measured'],
         'total_seconds': time.time() - t0}
  workdirs.write_json(os.path.join(workdir, 'closed_loop.json'), out)
  reporting.plot_closed_loop(out, os.path.join(workdir, 'closed_loop.png'))
  return out


def _check_loop_config(config: ml_collections.ConfigDict,
                       num_query: int) -> None:
  """What the loop cannot serve, refused before anything is measured: it
  adapts the predictor to the file it measures, so settings that would
  have the searches use another are errors."""
  errors.Bound('num_query', 0, integer=True).check(num_query, '--')
  errors.check_bounds(config, searcher_lib.BOUNDS)
  if config.latency.get('adapted_dir'):
    raise errors.InputError(
        'config.latency.adapted_dir: the closed loop adapts the '
        'predictor to the device file it measures; expected '
        "'' (use experiments.search for a saved predictor).")
  if config.latency.get('support', 'random') != 'random':
    raise errors.InputError(
        "config.latency.support: expected 'random' (rows "
        "measured here); 'spread' needs a lookup table, which "
        'a device measured here has not.')
  if not config.latency.get('device_file'):
    raise errors.InputError(
        "config.latency.device_file: empty; expected the path of this "
        'machine\'s device file, measured here if it does not exist '
        '(configs/closed_loop.py: runs/closed_loop/local_device.npz).')
  measure_config(config)  # its errors too, before the workdir is made


def _predictor_check(adapted, device) -> dict:
  """The adapted predictor on the device file's query rows (measured here,
  never adapted on); empty if the file has none."""
  query = device.is_query
  if not query.any():
    return {}
  raw = adapted.predict_ms(device.archs[query], floor=False)
  pred = adapted.floored(raw)
  check = {
      'num_query': int(query.sum()),
      # Ranked raw, as the few-shot evaluation does (floored values tie).
      'spearman': float(scipy.stats.spearmanr(
          raw, device.latency_ms[query])[0]),
      'median_abs_relative_error': float(np.median(np.abs(
          pred / device.latency_ms[query] - 1))),
      'predicted_ms': np.asarray(pred).tolist(),
      'measured_ms': device.latency_ms[query].tolist()}
  logging.info('adapted predictor on %d measured query archs: Spearman '
               '%.4f', check['num_query'], check['spearman'])
  return check


def _found_row(i: int, q: float, target: float, result: dict,
               check: dict) -> dict:
  """closed_loop.json's row of the search for ``target`` (quantile ``q``),
  whose network is the ``i``-th that :func:`verify_in_sessions` measured."""
  got = check['measured_ms'][i]
  predicted = result['latency_ms'][result['latency_source']]
  return {'quantile': q, 'target_ms': target,
          'arch': result['arch'],
          'predicted_ms': predicted,
          'measured_ms': got,
          # Against the target: the predictor's error and the search's
          # distance from the target together.
          'relative_error': got / target - 1,
          # The predictor's own error on the found network, relative to
          # the measurement (as the evolutionary search's; before
          # 2026-12-04, measured / predicted - 1).
          'prediction_error': predicted / got - 1,
          'derivation_within_band': result.get(
              'derivation', {}).get('within_band'),
          'session_ms': [s['measured_ms'][i] for s in check['sessions']],
          'drift_vs_device_file': check['drift_vs_device_file'],
          'relative_error_vs_references': (
              check['measured_vs_references_ms'][i] / target - 1),
          'supernet_accuracy': result['supernet_accuracy']}
