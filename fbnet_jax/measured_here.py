"""Latencies measured on this machine on demand, on its device file's scale.

:class:`MeasuredHere` is the evolutionary search's latency in the loop on
your own machine (:mod:`fbnet_jax.latency_loop`): the architectures it is
asked for that are not measured yet are timed in one session of the
harness (:func:`fbnet_jax.closed_loop.verify`), divided by the session's
drift, and cached. The drift is the references' since the device file, or,
with anchor networks (:func:`anchor_archs`), interpolated between the
anchors' and the references' by latency (:func:`drift_by_latency`).
"""

from __future__ import annotations

import hashlib
import json
import os

from absl import logging
import ml_collections
import numpy as np

from fbnet_jax import closed_loop
from fbnet_jax import errors
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs


MAX_ANCHORS = 10


def check_num_anchors(num: int) -> None:
  """A clear error unless ``num`` (``config.evolve.anchors``) is in
  0..``MAX_ANCHORS``."""
  if not 0 <= num <= MAX_ANCHORS:
    raise errors.InputError(f'config.evolve.anchors: expected 0..{MAX_ANCHORS} '
                            f'anchor networks, got {num}.')


def anchor_archs(space: spaces_lib.SearchSpace, num: int) -> np.ndarray:
  """``num`` fixed cheap networks (each unit at its cheapest choice with
  probability 1 - num/20 up to 0.95, :meth:`SearchSpace.sample_spread`,
  seeded): the
  fast end of a front, which the references do not reach (6-12 ms on the
  2-core VM against 1-3 ms for skip-heavy FBNet networks)."""
  check_num_anchors(num)
  return space.sample_spread(np.random.default_rng(2024), 20)[20 - num:]


def drift_by_latency(raw_ms, reference_level: float, reference_drift: float,
                     anchor_level: float, anchor_drift: float) -> np.ndarray:
  """The speed change to divide each network's measurement by.

  A session's speed change is not one number: on the 2-core VM, networks
  of 1-3 ms moved 1.8-4.6x as far between sessions as the references did
  (``benchmarks.session_noise``). With the references' median latency and
  drift (ratio to the device file) and the anchors' (ratio to their first
  session), a network's drift is interpolated between the two in log
  latency, and held constant beyond them.

  Args:
    raw_ms: the networks' latencies as measured in this session.
    reference_level: median latency of the references in this session.
    reference_drift: their median ratio to the device file.
    anchor_level: median latency of the anchors in this session.
    anchor_drift: their median ratio to their baseline (their first
      session's latencies divided by that session's reference drift: the
      device file's scale).
  """
  log_ms = np.log(np.asarray(raw_ms, np.float64))
  span = np.log(reference_level) - np.log(anchor_level)
  if span <= 0:  # anchors not faster than the references: nothing to add
    return np.full(log_ms.shape, reference_drift)
  t = np.clip((log_ms - np.log(anchor_level)) / span, 0.0, 1.0)
  return np.exp((1 - t) * np.log(anchor_drift) + t * np.log(reference_drift))


class MeasuredHere:
  """Latencies measured on this machine, on the scale of its device file.

  ``arch_ms(archs)`` times the architectures not measured yet in one
  session of the harness (a fresh process, interleaved with the reference
  architectures: :func:`closed_loop.verify`) and divides them by the references' drift
  since the device file, so that measurements of different sessions, and
  the device file's own rows, are comparable. What is measured is kept, in
  memory and in ``cache_path`` (JSON, rewritten after each session): a
  rerun measures only what is new.

  It is what :class:`fbnet_jax.latency_loop.LatencyInTheLoop` measures with when
  ``config.latency.device_file`` is a device file of this machine.

  With ``num_anchors`` > 0, every session also times that many fixed
  skip-heavy networks (:func:`anchor_archs`). The first session fixes
  their baseline (divided by its references' drift); later sessions
  divide each network by :func:`drift_by_latency`, the anchors' drift at
  the fast end and the references' at theirs, instead of the references'
  drift alone.
  """

  def __init__(self, config: ml_collections.ConfigDict, device, path: str,
               cache_path: str = '', measure_fn=None, num_anchors: int = 0):
    """``device``: the device file at ``path``, loaded; ``measure_fn``:
    :func:`closed_loop.verify` (tests pass a stand-in; with anchors it must also return
    ``reference_ms``); ``num_anchors``: see above."""
    closed_loop.check_measured_here(config, device, path)
    check_num_anchors(num_anchors)
    self.space = spaces_lib.space_for(config.space,
                                      config.get('macro', 'cifar'))
    self.anchors = (anchor_archs(self.space, num_anchors) if num_anchors
                    else None)
    self._anchor_base = None  # their ms in the first session, file's scale
    self.config = config
    self.device = device
    self.name = f'measured:{device.name}'
    self.cache_path = cache_path
    self.sessions = []  # one entry per measuring session
    self._measure = measure_fn or closed_loop.verify
    self._path = os.path.abspath(path)
    # How the harness measures (config.measure): a cache measured with
    # other rounds, repeats or warm-up is not mixed with this run's.
    self._settings = workdirs.as_json(workdirs.without(
        dict((config.get('measure') or {}).items()), ('verify_sessions',)))
    # The file's content, not only its path: a file measured again at the
    # same path puts the cached measurements on another scale.
    self._file_digest = hashlib.sha256(
        np.ascontiguousarray(device.latency_ms, np.float32).tobytes() +
        np.ascontiguousarray(device.archs, np.int32).tobytes()).hexdigest()
    self._ms = {a.astype(np.int32).tobytes(): float(ms)
                for a, ms in zip(device.archs, device.latency_ms)}
    # Measured by this object (and its cache): key -> (ms on the device
    # file's scale, ms as measured, session index).
    self._here = {}
    if cache_path and os.path.exists(cache_path):
      with open(cache_path) as f:
        cached = json.load(f)
      if cached.get('device_file') != self._path:
        raise errors.InputError(
            f'{cache_path}: field device_file is '
            f"{cached.get('device_file')!r}, expected {self._path!r}"
            ' (measurements are on the scale of the device file they were '
            'divided by; remove the cache to measure again).')
      digest = cached.get('device_file_sha256')
      if digest is None:
        logging.warning(
            '%s: no field device_file_sha256 (written before it was '
            'recorded): cannot tell whether %s was measured again since.',
            cache_path, self._path)
      elif digest != self._file_digest:
        raise errors.InputError(
            f'{cache_path}: field device_file_sha256 does not match '
            f'{self._path}: the device file was measured again since these '
            'measurements were divided by it (remove the cache to measure '
            'again).')
      if 'measure_settings' not in cached:
        logging.warning(
            '%s: no field measure_settings (written before they were '
            'recorded): cannot tell whether config.measure changed since.',
            cache_path)
      else:
        workdirs.check(cache_path, {'measure': cached['measure_settings']},
                       {'measure': self._settings},
                       remedy='its measurements were timed otherwise; run '
                       'with those settings, or remove the cache to measure '
                       'again.')
      anchors = cached.get('anchors') or None
      if (anchors is None) != (self.anchors is None) or (
          anchors is not None and not np.array_equal(anchors, self.anchors)):
        held = ('was written without anchors' if anchors is None else
                f'holds {len(anchors)} other anchor networks')
        raise errors.InputError(
            f'{cache_path}: field anchors {held}, expected {num_anchors} '
            '(config.evolve.anchors); measurements divided by other anchors '
            'are on another scale (remove the cache to measure again).')
      if anchors is not None:
        self._anchor_base = np.asarray(cached['anchor_base_ms'])
      for arch, *record in zip(cached['arch_index'], cached['latency_ms'],
                               cached['raw_ms'], cached['session']):
        self._add(np.asarray(arch, np.int32).tobytes(), *record)
      self.sessions = cached['sessions']

  def _add(self, key: bytes, ms: float, raw: float, session: int) -> None:
    self._here[key] = (float(ms), float(raw), int(session))
    self._ms[key] = float(ms)

  def arch_ms(self, archs) -> np.ndarray:
    """Milliseconds of ``[N, U]`` (or one ``[U]``) architectures."""
    archs = np.asarray(archs)
    single = archs.ndim == 1
    archs = self.space.validate_batch(np.atleast_2d(archs)).astype(np.int32)
    new = {}
    for a in archs:
      if a.tobytes() not in self._ms:
        new.setdefault(a.tobytes(), a)
    if new:
      self._measure_new(np.stack(list(new.values())))
    out = np.array([self._ms[a.tobytes()] for a in archs], np.float32)
    return out[0] if single else out

  def session(self, archs: np.ndarray) -> dict:
    """One measuring session of ``archs`` (and the anchors), nothing cached.

    Returns :func:`closed_loop.verify`'s dict for ``archs``, plus
    ``measured_vs_references_ms`` (each divided by the references' drift),
    ``scaled_ms`` (each divided by its drift: the references', or
    :func:`drift_by_latency` with anchors) and ``anchor_drift`` (None
    without anchors). The first
    session with anchors sets their baseline (written to the cache by the
    next :meth:`arch_ms` session).
    """
    archs = np.asarray(archs, np.int32)
    k = 0 if self.anchors is None else len(self.anchors)
    timed = archs if not k else np.concatenate([self.anchors, archs])
    check = dict(self._measure(self.config, timed, self.device))
    raw = np.asarray(check['measured_ms'], np.float64)
    ref_drift = 1 + check['drift_vs_device_file']
    check['measured_ms'] = raw[k:].tolist()
    check['measured_vs_references_ms'] = (raw[k:] / ref_drift).tolist()
    check['anchor_drift'] = None
    if not k:
      check['scaled_ms'] = check['measured_vs_references_ms']
      return check
    if self._anchor_base is None:
      self._anchor_base = raw[:k] / ref_drift
    anchor_drift = float(np.median(raw[:k] / self._anchor_base))
    drift = drift_by_latency(raw[k:], float(np.median(check['reference_ms'])),
                             ref_drift, float(np.median(raw[:k])),
                             anchor_drift)
    check['scaled_ms'] = (raw[k:] / drift).tolist()
    check['anchor_drift'] = anchor_drift - 1
    return check

  def _measure_new(self, archs: np.ndarray) -> None:
    check = self.session(archs)
    for a, ms, raw in zip(archs, check['scaled_ms'], check['measured_ms']):
      self._add(a.tobytes(), ms, raw, len(self.sessions))
    self.sessions.append({
        'architectures': len(archs), 'measured': int(check['measured']),
        'drift_vs_device_file': float(check['drift_vs_device_file']),
        'anchor_drift': check['anchor_drift'],
        'seconds': float(check['seconds'])})
    logging.info('measured %d architectures here in %.0f s (references '
                 '%+.1f%% since the device file)', len(archs),
                 check['seconds'], 100 * check['drift_vs_device_file'])
    if self.cache_path:
      ms, raw, session = zip(*self._here.values())
      workdirs.write_json(self.cache_path, {
          'device_file': self._path,
          'device_file_sha256': self._file_digest,
          'measure_settings': self._settings,
          'arch_index': [np.frombuffer(k, np.int32).tolist()
                         for k in self._here],
          'latency_ms': ms,
          # As measured, and in which session (whose references' drift the
          # latency was divided by).
          'raw_ms': raw, 'session': session,
          'sessions': self.sessions,
          'anchors': (None if self.anchors is None
                      else self.anchors.tolist()),
          'anchor_base_ms': (None if self._anchor_base is None
                             else self._anchor_base.tolist())}, indent=None)

  def summary(self) -> dict:
    """What was measured: sessions, architectures, measurements (with the
    references and anchors timed beside them), seconds, the references'
    and the anchors' drifts."""
    return {'device': closed_loop.device_label(self.device),
            'sessions': len(self.sessions),
            'architectures': len(self._here),
            'measurements': sum(s['measured'] for s in self.sessions),
            'seconds': sum(s['seconds'] for s in self.sessions),
            'drift_vs_device_file': [s['drift_vs_device_file']
                                     for s in self.sessions],
            'anchors': 0 if self.anchors is None else len(self.anchors),
            'anchor_drift': [s.get('anchor_drift') for s in self.sessions]}
