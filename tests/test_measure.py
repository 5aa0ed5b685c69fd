"""Measurement harness: timing function, device-file round trip."""

import numpy as np
import jax.numpy as jnp

from fbnet_jax import measure
from fbnet_jax import spaces
from meta import latency_data


def test_time_fn_returns_positive_finite_times_and_honours_repeats():
  x = jnp.ones((64, 64))
  calls = []

  def fn():
    calls.append(1)
    return x @ x

  t = measure.time_fn(fn, warmup=2, repeats=7)
  assert t.shape == (7,) and np.all(np.isfinite(t)) and np.all(t > 0)
  assert len(calls) == 9


def test_measure_archs_writes_a_device_file(tmp_path):
  space = spaces.get_space('fbnet')
  archs = np.full((3, 22), 8, np.int32)  # all skip: cheap to compile
  archs[1, 3] = 0
  archs[2, 3] = 3
  config = measure.MeasureConfig(repeats_per_round=3, min_rounds=2,
                                 max_rounds=2, spread_bound=10.0)
  device = measure.measure_archs(archs, config, reference_rows=[0],
                                 name='unit', progress=False,
                                 is_query=np.array([False, False, True]))
  assert np.all(device.latency_ms > 0) and np.all(np.isfinite(
      device.latency_ms))
  assert int(device.meta['rounds']) == 2
  np.testing.assert_array_equal(device.meta['num_timings'], [6, 6, 6])
  path = str(tmp_path / 'unit.npz')
  latency_data.save_device_file(path, device)
  again = latency_data.load_device_file(path)
  np.testing.assert_array_equal(again.archs, archs)
  np.testing.assert_allclose(again.latency_ms, device.latency_ms)
  np.testing.assert_array_equal(again.is_query, [False, False, True])
  assert float(again.meta['max_relative_spread']) >= 0
