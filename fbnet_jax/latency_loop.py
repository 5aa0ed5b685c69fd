"""Latency measured during and after the evolutionary search: the device's
exact tables, or this machine's harness for a device file of this machine.

- :class:`LatencyInTheLoop` (``config.evolve.measure_latency``): measures
  every fully evaluated architecture during the search and re-adapts the
  meta-learned latency predictor on the measurements, for the guided
  search's ``refine`` (:func:`fbnet_jax.nsga.guided_search`); with
  ``config.evolve.latency_residual='ridge'`` (:class:`ResidualCorrected`)
  an additive ridge model of what the re-adapted predictor still misses on
  the measured rows is added to it.
- :class:`FrontMeasurement` (``config.evolve.measure_front``): measures the
  reported front here with the harness after the search
  (:func:`fbnet_jax.closed_loop.verify`).
"""

from __future__ import annotations

from typing import Callable, Optional

import ml_collections
import numpy as np

from fbnet_jax import closed_loop
from fbnet_jax import errors
from fbnet_jax import latency as latency_lib
from fbnet_jax import measured_here
from fbnet_jax import models
from fbnet_jax import nsga
from fbnet_jax import pareto
from meta import latency_data

RESIDUALS = ('ridge', 'ridge_costs', 'none')


class ResidualCorrected:
  """A latency function plus a ridge regression of its residuals (ms) on
  one-hot architecture features (and ``extra`` ones), fitted on measured
  rows.

  Adapting the meta-learned predictor takes a few gradient steps from its
  meta-learned initialisation: with tens of measurements it still misses
  the measured rows themselves, most at the fast end (near-all-skip
  networks, where a fraction of a millisecond is a large relative error).
  FBNet's premise, a network's latency as the sum of its layers', makes an
  additive correction the natural one: the same ridge model as the
  accuracy predictor's (:class:`fbnet_jax.pareto.AccuracyPredictor`, its
  penalty chosen by leave-one-out cross-validation, so that residuals that
  are only noise are shrunk to nothing). Predictions are floored at
  :data:`fbnet_jax.latency.MIN_PREDICTED_MS`.

  A one-hot model knows a (unit, choice) pair only from measurements that
  contain it; ``extra`` features (``SearchSpace.cost_features``: the
  architecture's MACs, parameters and activations, summed over units) let
  the correction reach pairs and regions that nothing measured covers.
  """

  def __init__(self, predict: nsga.LatencyFn, choice_mask: np.ndarray,
               archs: np.ndarray, ms: np.ndarray,
               extra: Optional[Callable[[np.ndarray], np.ndarray]] = None):
    self.predict = predict
    archs = np.asarray(archs, np.int32)
    residual = np.asarray(ms, np.float64) - np.asarray(predict(archs))
    self.ridge = pareto.AccuracyPredictor(choice_mask, 'ridge',
                                          extra=extra).fit(archs, residual)

  def __call__(self, archs) -> np.ndarray:
    archs = np.asarray(archs, np.int32)
    single = archs.ndim == 1
    archs = np.atleast_2d(archs)
    ms = np.asarray(self.predict(archs)) + self.ridge.predict(archs)
    ms = np.maximum(ms, latency_lib.MIN_PREDICTED_MS).astype(np.float32)
    return ms[0] if single else ms


def refit(support: latency_lib.PredictorSupport,
          model: latency_lib.LatencyModel, archs: np.ndarray,
          ms: np.ndarray, pad_to: int, residual: str = 'ridge'
          ) -> nsga.LatencyFn:
  """The predictor re-adapted on ``support`` plus the measured ``archs``
  (``ms``; the support padded to ``pad_to`` rows, one compiled adaptation),
  with the residual correction fitted on all of them unless ``residual``
  is 'none' (a :class:`ResidualCorrected`, whose ``predict`` is the plain
  re-adapted predictor; 'ridge_costs' adds the architectures' analytic
  costs to its features)."""
  adapted = support.adapt(archs, ms, pad_to=pad_to)
  predict = model.with_params(adapted.params).arch_ms
  if residual == 'none':
    return predict
  return ResidualCorrected(
      predict, model.space.choice_mask,
      np.concatenate([support.archs, archs]), np.concatenate([support.ms, ms]),
      extra=model.space.cost_features if residual == 'ridge_costs' else None)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for a ``config.evolve.measure_latency`` setting that
  cannot run, before any supernet trains."""
  lat = config.latency
  if lat.source != 'predictor' or lat.get('adapted_dir'):
    raise errors.InputError(
        'config.evolve.measure_latency: expected '
        "config.latency.source='predictor' adapted here (not adapted_dir), "
        f'got source={lat.source!r}; the loop re-adapts the predictor on what it '
        'measures, and another source has nothing to re-adapt.')
  if lat.get('device_file'):
    if config.space not in models.STANDALONE:
      raise errors.InputError(
          'config.evolve.measure_latency: the harness builds '
          f'{errors.and_list(models.STANDALONE)} networks, not '
          f'{config.space!r}; expected a bundled device (its exact table '
          'stands in for the device).')
  elif latency_lib.exact_table(config) is None:
    raise errors.InputError(
        'config.evolve.measure_latency: no exact latencies of '
        f'{lat.device!r} in space {config.space!r} to measure with '
        '(FBNet CIFAR lookup tables or NAS-Bench-201 only; or a device '
        'file of this machine in config.latency.device_file, measured '
        'here with the harness).')
  residual = config.evolve.get('latency_residual', 'ridge')
  if residual not in RESIDUALS:
    raise errors.InputError(f'config.evolve.latency_residual: expected one of '
                            f'{RESIDUALS}, got {residual!r}.')


class LatencyInTheLoop:
  """DyNAS-T measures the latency of every fully evaluated architecture,
  not only its accuracy; here the measurements also re-adapt the
  meta-learned predictor, so that NSGA-II's latency objective is fitted
  where the search is looking (``config.evolve.measure_latency``).

  ``measured``: the device's latencies. With ``config.latency.device_file``
  a device file of this machine, they are measured here with the harness
  (:class:`measured_here.MeasuredHere`: each round's new architectures in
  one session beside the reference architectures, on the device file's
  scale, cached in ``cache_path``); for a bundled device its lookup table
  (FBNet) or measured cells (NAS-Bench-201) stand in for measuring on the
  device. Calling the loop with the architectures evaluated so far
  measures them and returns the latency function of the predictor
  re-adapted on its support plus these (one compiled adaptation: the
  support is padded to a fixed size), plus the residual correction of
  ``config.evolve.latency_residual`` (:class:`ResidualCorrected`, fitted
  on the support and everything measured; 'none' turns it off).
  """

  def __init__(self, config: ml_collections.ConfigDict,
               model: latency_lib.LatencyModel, cache_path: str = '',
               measure_fn=None):
    check_config(config)
    lat = config.latency
    if lat.get('device_file'):
      self.measured = measured_here.MeasuredHere(
          config, latency_data.load_device_file(lat.device_file),
          lat.device_file, cache_path, measure_fn,
          num_anchors=config.evolve.get('anchors', 0))
    else:
      self.measured = latency_lib.exact_table(config)
    self.support = latency_lib.support_for(config)
    self.model = model
    e = config.evolve
    self.residual = e.get('latency_residual', 'ridge')
    # Support rows to pad to: every evaluation and probe can add one.
    self.size = len(self.support.archs) + e.budget * (
        1 + e.get('latency_probes', 0))

  @property
  def measures_here(self) -> bool:
    """Whether measuring costs a harness session (not a table lookup)."""
    return isinstance(self.measured, measured_here.MeasuredHere)

  def __call__(self, archs: np.ndarray) -> nsga.LatencyFn:
    archs = np.asarray(archs, np.int32)
    ms = self.measured.arch_ms(archs)
    return refit(self.support, self.model, archs, ms, self.size,
                 self.residual)


class FrontMeasurement:
  """Measures the reported front on this machine with the harness
  (``config.evolve.measure_front``), for a search whose latency source is
  the predictor adapted to ``config.latency.device_file``, a device file of
  this machine: the front's architectures are timed in a fresh process,
  interleaved with the reference architectures, whose drift against the
  device file says how much the machine's own speed moved in between; each
  network's median over ``config.measure.verify_sessions`` such sessions
  (:func:`closed_loop.verify_in_sessions`). With the loop's anchors
  (``config.evolve.anchors``), one session of its harness instead.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    lat = config.latency
    if lat.source != 'predictor' or not lat.get('device_file'):
      raise errors.InputError(
          'config.evolve.measure_front: expected '
          "config.latency.source='predictor' with a device_file of this "
          f'machine, got source={lat.source!r}, device_file='
          f"{lat.get('device_file')!r}; a bundled device's front is "
          're-scored with its exact table instead.')
    if config.space not in models.STANDALONE:
      raise errors.InputError(
          'config.evolve.measure_front: the harness builds '
          f'{errors.and_list(models.STANDALONE)} networks, not '
          f'{config.space!r}.')
    self.config = config
    self.device = latency_data.load_device_file(lat.device_file)
    closed_loop.check_measured_here(config, self.device, lat.device_file)
    self.name = closed_loop.device_label(self.device)
    # Latency in the loop's harness, when it times anchors
    # (config.evolve.anchors): the front is then measured in one of its
    # sessions and divided by the same drift model as the loop's.
    self.harness: measured_here.MeasuredHere | None = None

  def __call__(self, archs: np.ndarray) -> dict:
    """``{'measured_ms', 'measured_vs_references_ms',
    'drift_vs_device_file', 'measured', 'seconds'}``: the fields of
    :func:`closed_loop.verify_in_sessions`, or with the harness's anchors of
    :meth:`measured_here.MeasuredHere.session` (also ``scaled_ms`` and
    ``anchor_drift``)."""
    archs = np.asarray(archs, np.int32)
    if self.harness is not None and self.harness.anchors is not None:
      return self.harness.session(archs)
    return closed_loop.verify_in_sessions(self.config, archs, self.device)
