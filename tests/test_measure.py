"""Measurement harness: timing function, device-file round trip."""

import dataclasses
import functools
import json
import os
import threading
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from configs import closed_loop as closed_loop_config
from fbnet_jax import closed_loop
from fbnet_jax import latency
from fbnet_jax import measure
from fbnet_jax import search_report
from fbnet_jax import spaces
from fbnet_jax import workdirs
from meta import adaptation
from meta import latency_data
from meta import tasks


def _stand_in(steps_of):
  """A ``build_forward`` stand-in: a chain of ``steps_of(arch)`` matmuls."""
  def build(space_name, arch, config):
    del space_name, config
    steps = steps_of(arch)
    x = jnp.ones((96, 96))
    fn = jax.jit(lambda x: jax.lax.fori_loop(0, steps, lambda _, y: y @ x / 96,
                                             x))
    fn(x).block_until_ready()
    return lambda: fn(x)
  return build


def test_time_fn_returns_positive_finite_times_and_honours_repeats():
  x = jnp.ones((64, 64))
  calls = []

  def fn():
    calls.append(1)
    return x @ x

  t = measure.time_fn(fn, warmup=2, repeats=7)
  assert t.shape == (7,) and np.all(np.isfinite(t)) and np.all(t > 0)
  assert len(calls) == 9
  # The times are the calls' own: a 5 ms sleep takes at least 5 ms (and
  # not seconds)...
  t = measure.time_fn(lambda: time.sleep(0.005), warmup=0, repeats=3)
  assert np.all(t >= 0.005) and np.median(t) < 0.5
  # ... and they wait for the result of an asynchronously dispatched
  # computation (block_until_ready), not only for its dispatch.
  big = jnp.ones((768, 768))
  chain = jax.jit(lambda a: functools.reduce(lambda b, _: jnp.tanh(b @ a),
                                             range(8), a))
  jax.block_until_ready(chain(big))  # compiled
  t0 = time.perf_counter()
  jax.block_until_ready(chain(big))
  blocked = time.perf_counter() - t0
  assert np.median(measure.time_fn(lambda: chain(big), warmup=1,
                                   repeats=3)) > 0.3 * blocked


def test_measure_archs_writes_a_device_file(tmp_path):
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
  assert np.all(device.meta['latency_min_ms'] > 0)
  assert np.all(device.meta['latency_min_ms'] <= device.latency_ms)
  path = str(tmp_path / 'unit.npz')
  latency_data.save_device_file(path, device)
  again = latency_data.load_device_file(path)
  np.testing.assert_array_equal(again.archs, archs)
  np.testing.assert_allclose(again.latency_ms, device.latency_ms)
  np.testing.assert_array_equal(again.is_query, [False, False, True])
  assert float(again.meta['max_relative_spread']) == pytest.approx(
      np.max(again.meta['latency_iqr_ms'] / again.latency_ms), rel=1e-5)
  np.testing.assert_allclose(again.meta['latency_min_ms'],
                             device.meta['latency_min_ms'])
  # The machine and software it was measured with.
  assert str(again.meta['env_cpu']) == workdirs.cpu_model()
  assert str(again.meta['env_jax']) == jax.__version__
  assert 'env_host' in again.meta and 'env_xla_flags' in again.meta
  start, end = again.meta['reference_start_ms'], again.meta['reference_end_ms']
  assert start.shape == end.shape == (1,) and start[0] > 0 and end[0] > 0
  assert float(again.meta['reference_drift']) == pytest.approx(
      end[0] / start[0] - 1, rel=1e-4, abs=1e-6)


def test_measuring_in_a_fresh_process_returns_the_same_device(tmp_path):
  archs = np.full((2, 22), 8, np.int32)  # all skip: cheap to compile
  archs[1, 3] = 0
  config = measure.MeasureConfig(repeats_per_round=2, min_rounds=1,
                                 max_rounds=1, spread_bound=10.0)
  device = measure.measure_archs_in_fresh_process(
      archs, config, reference_rows=[0], name='child', progress=False)
  assert device.name == 'child' and device.space == 'fbnet'
  # What stopped it is recorded, with the settings that could have: the
  # bound (IQR / median of 2 timings is at most 1).
  assert str(device.meta['stopped_by']) == 'spread_bound'
  assert int(device.meta['max_rounds']) == 1
  assert float(device.meta['spread_bound']) == 10.0
  np.testing.assert_array_equal(device.archs, archs)
  assert np.all(device.latency_ms > 0) and int(device.meta['rounds']) == 1
  np.testing.assert_array_equal(device.meta['num_timings'], [2, 2])


def test_a_measuring_process_that_dies_is_an_error_not_a_hang(monkeypatch):
  # An unknown XLA flag makes the child abort as it starts its backend (a
  # fatal error, not a Python exception); the parent raises at once.
  monkeypatch.setenv('XLA_FLAGS', '--xla_this_flag_does_not_exist')
  config = measure.MeasureConfig(repeats_per_round=1, min_rounds=1,
                                 max_rounds=1)
  with pytest.raises(RuntimeError, match='measuring process died'):
    measure.measure_archs_in_fresh_process(
        np.full((1, 22), 8, np.int32), config, progress=False)


def test_bfloat16_measures_a_bfloat16_network():
  config = measure.MeasureConfig(dtype='bfloat16')
  arch = np.full(22, 8, np.int32)
  arch[3] = 0
  assert measure.build_forward('fbnet', arch, config)().dtype == jnp.bfloat16
  assert measure.build_forward('fbnet', arch, measure.MeasureConfig())(
      ).dtype == jnp.float32


def test_statistic_min_and_pinned_cores(monkeypatch):
  # latency_ms holds the chosen statistic (both are kept), and with
  # cpu_cores=1 every network is timed on one core but compiled on all;
  # the process gets its cores back afterwards.
  built, timed = [], []
  build = _stand_in(lambda arch: 50)

  def recording_build(space_name, arch, config):
    built.append(os.sched_getaffinity(0))
    fn = build(space_name, arch, config)
    return lambda: (timed.append(os.sched_getaffinity(0)), fn())[1]

  monkeypatch.setattr(measure, 'build_forward', recording_build)
  archs = np.full((2, 22), 8, np.int32)
  before = os.sched_getaffinity(0)
  config = measure.MeasureConfig(repeats_per_round=4, min_rounds=1,
                                 max_rounds=1, statistic='min', cpu_cores=1,
                                 compile_workers=2)
  device = measure.measure_archs(archs, config, progress=False)
  assert os.sched_getaffinity(0) == before
  assert built == [before] * 2
  assert timed and set(map(frozenset, timed)) == {frozenset({max(before)})}
  np.testing.assert_array_equal(device.latency_ms,
                                device.meta['latency_min_ms'])
  assert np.all(device.meta['latency_median_ms'] >= device.latency_ms)
  assert measure.file_setting(device, 'statistic') == 'min'
  assert measure.file_setting(device, 'cpu_cores') == 1
  old = latency_data.Device('old', 'fbnet', archs, device.latency_ms,
                            np.zeros(2, bool))  # a file without the fields
  assert (measure.file_setting(old, 'statistic'),
          measure.file_setting(old, 'cpu_cores')) == (
      'median', 0)


def test_measure_config_rejects_unknown_statistic_and_too_many_cores():
  with pytest.raises(ValueError, match="statistic: expected one of.*'mean'"):
    measure.MeasureConfig(statistic='mean')
  cores = len(os.sched_getaffinity(0))
  with pytest.raises(ValueError, match=f'cpu_cores: expected 0.*{cores}'):
    measure.MeasureConfig(cpu_cores=cores + 1)


def test_pinned_cpus_gives_each_thread_its_own_affinity_back():
  cores = sorted(os.sched_getaffinity(0))
  if len(cores) < 2:
    pytest.skip('needs two cores')
  ready, done, seen = threading.Event(), threading.Event(), {}

  def worker():
    os.sched_setaffinity(0, {cores[0]})  # this thread only
    seen['tid'] = threading.get_native_id()
    ready.set()
    done.wait()

  thread = threading.Thread(target=worker)
  thread.start()
  ready.wait()
  try:
    with measure.pinned_cpus(1):
      assert os.sched_getaffinity(0) == {cores[-1]}
      assert os.sched_getaffinity(seen['tid']) == {cores[-1]}
    assert os.sched_getaffinity(0) == set(cores)
    assert os.sched_getaffinity(seen['tid']) == {cores[0]}
  finally:
    done.set()
    thread.join()
  with pytest.raises(ValueError, match='for onnxruntime use onnx_threads'):
    measure.MeasureConfig(runtime='onnxruntime', cpu_cores=1)
  with pytest.raises(ValueError, match=r'MeasureConfig\.onnx_threads: .*'
                     'expected 0 with the jax runtime'):
    measure.MeasureConfig(onnx_threads=1)


def test_closed_loop_compares_only_files_of_the_same_statistic(
    tmp_path, file_measured_here):
  path = str(tmp_path / 'min.npz')
  device = file_measured_here(path, statistic='min', cpu_cores=1)
  config = closed_loop_config.get_config('smoke')
  with pytest.raises(ValueError, match=r"min.npz: field statistic is 'min'.*"
                     r"would use 'median'"):
    closed_loop.check_measured_here(config, device, path)
  config.measure.statistic = 'min'
  with pytest.raises(ValueError, match='field cpu_cores is 1.*would use 0'):
    closed_loop.check_measured_here(config, device, path)
  config.measure.cpu_cores = 1
  closed_loop.check_measured_here(config, device, path)  # comparable
  # ... but measured on another machine of the same kind: said, not refused.
  other = file_measured_here(path, statistic='min', cpu_cores=1,
                             env_host='elsewhere')
  with mock.patch.object(closed_loop.logging, 'warning') as warn:
    closed_loop.check_measured_here(config, other, path)
  assert warn.call_args[0][2:4] == ('host', 'elsewhere')
  # On a CPU, device_kind is only 'cpu': another CPU model is refused.
  other = file_measured_here(path, statistic='min', cpu_cores=1,
                             env_cpu='Another CPU 9000')
  with pytest.raises(ValueError, match="min.npz: field env_cpu is 'Another "
                     "CPU 9000', but this machine's CPU is"):
    closed_loop.check_measured_here(config, other, path)
  nb201_path = str(tmp_path / 'nb.npz')
  nb201 = file_measured_here(nb201_path, space='nasbench201', device='raspi4')
  with pytest.raises(ValueError, match="nb.npz: field space is 'nasbench201'"
                     ", but config.space is 'fbnet'"):
    closed_loop.check_measured_here(config, nb201, nb201_path)
  # ONNX Runtime: its thread count is part of the setting.
  ort = file_measured_here(path, runtime='onnxruntime', onnx_threads=1,
                           device_kind=measure.device_kind('onnxruntime'))
  config.measure.update(runtime='onnxruntime', statistic='median',
                        cpu_cores=0)
  with pytest.raises(ValueError, match='field onnx_threads is 1.*would use 0'):
    closed_loop.check_measured_here(config, ort, path)
  config.measure.onnx_threads = 1
  closed_loop.check_measured_here(config, ort, path)
  config.measure.update(runtime='jax', onnx_threads=0)
  config.measure.rounds = 3  # not a MeasureConfig field
  with pytest.raises(ValueError,
                     match=r"config.measure: unknown field\(s\) \['rounds'\]"):
    closed_loop.measure_config(config)


def test_a_device_file_without_references_cannot_be_measured_against(
    tmp_path, file_measured_here):
  path = str(tmp_path / 'norefs.npz')
  device = file_measured_here(path)
  keep = np.ones(len(device.archs), bool)
  keep[device.reference_rows()] = False
  device = dataclasses.replace(device, archs=device.archs[keep],
                               latency_ms=device.latency_ms[keep],
                               is_query=device.is_query[keep])
  assert (device.reference_rows() < 0).all()
  config = closed_loop_config.get_config('smoke')
  message = 'norefs.npz: field arch holds none of the fbnet reference'
  with pytest.raises(ValueError, match=message):
    closed_loop.check_measured_here(config, device, path)
  with pytest.raises(ValueError, match=message):  # names the file too
    closed_loop.verify(config, device.archs[:1], device)  # before timing


def test_search_verifies_on_the_runtime_the_device_file_was_measured_with(
    tmp_path, file_measured_here):
  config = closed_loop_config.get_config('smoke')
  jax_file = file_measured_here(str(tmp_path / 'jax.npz'),
                                backend=jax.default_backend())
  ort_file = file_measured_here(str(tmp_path / 'ort.npz'),
                                backend='onnxruntime-cpu',  # older spelling
                                runtime='onnxruntime')
  assert closed_loop.on_this_backend(config, jax_file)
  assert not closed_loop.on_this_backend(config, ort_file)
  config.measure.runtime = 'onnxruntime'
  assert closed_loop.on_this_backend(config, ort_file)
  assert not closed_loop.on_this_backend(config, jax_file)
  # Another CPU model is another machine: not verified against by --auto.
  config.measure.runtime = 'jax'
  elsewhere = file_measured_here(str(tmp_path / 'other_cpu.npz'),
                                 backend=jax.default_backend(),
                                 env_cpu='Another CPU 9000')
  assert not closed_loop.on_this_backend(config, elsewhere)


def test_threaded_compilation_keeps_each_network_with_its_row(monkeypatch):
  # Stand-ins built in 3 threads that finish in another order than they
  # start (a row's build sleeps longer the smaller its first op), each
  # "timed" at its row's first op + 1 ms: every row must get its own.
  def build(space_name, arch, config):
    del space_name, config
    time.sleep(0.02 * (8 - int(arch[0])))
    return int(arch[0])

  monkeypatch.setattr(measure, 'build_forward', build)
  monkeypatch.setattr(measure, 'time_fn', lambda fn, warmup, repeats: np.full(
      repeats, 1e-3 * (fn + 1)))
  archs = np.full((6, 22), 8, np.int32)
  archs[:, 0] = [5, 0, 3, 1, 4, 2]
  config = measure.MeasureConfig(repeats_per_round=3, min_rounds=1,
                                 max_rounds=2, compile_workers=3)
  device = measure.measure_archs(archs, config, progress=False)
  np.testing.assert_allclose(device.latency_ms, archs[:, 0] + 1.0)


def test_a_bundled_devices_file_reproduces_its_meta_test_score(tmp_path):
  """Adapting through a device file (a copy of a bundled device's rows)
  gives the bundled device's few-shot score."""
  bundled = latency_data.bundled_device('fbnet', 'fpga')
  path = str(tmp_path / 'fpga_copy.npz')
  latency_data.save_device_file(path, bundled)
  copy = latency_data.load_device_file(path)
  predictor = adaptation.MetaPredictor.load(
      os.path.join(latency.PRETRAINED_DIR, 'fbnet'))
  method = adaptation.MetaMethod(predictor)
  scores = [tasks.evaluate(method, [dev], num_samples=10, seeds=range(5),
                           trim=False)['mean_spearman']
            for dev in (bundled, copy)]
  for field in ('archs', 'latency_ms', 'is_query'):
    np.testing.assert_array_equal(getattr(copy, field),
                                  getattr(bundled, field))
  assert scores[0] == scores[1]  # the same rows, seeds and predictor
  # ... which is the stored meta-test number of the bundled predictor (the
  # README's table; 0.9808 on 2026-12-03), within float noise of another
  # environment.
  stored = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                        'benchmarks', 'results', 'cpu_2026-12-03',
                        'meta_test_fbnet.json')
  with open(stored) as f:
    want = json.load(f)['devices']['fpga']['spearman']
  assert scores[1] == pytest.approx(want, abs=2e-3)


def test_closed_loop_on_a_tiny_config(tmp_path, monkeypatch):
  # Stand-in networks (a matmul chain whose length grows with the
  # architecture's MACs) keep the test fast; the real networks' timing is
  # tested above and the loop's logic is the same.
  space = spaces.get_space('fbnet')
  monkeypatch.setattr(measure, 'build_forward', _stand_in(
      lambda arch: 1 + int(space.flops(np.asarray(arch)) / 2e7)))
  config = closed_loop_config.get_config('smoke')
  # Skip blocks alone: the loop's searches compile in a quarter of the time
  # (their DNAS is tested in test_search.py).
  config.search.ops = ('skip',)
  config.latency.device_file = str(tmp_path / 'local.npz')
  config.latency.num_samples = 2
  out = closed_loop.run(config, str(tmp_path / 'loop'), quantiles=(0.5,),
                        num_query=4)
  device = latency_data.load_device_file(config.latency.device_file)
  assert len(device.latency_ms) == 10 + 2 + 4  # references, support, query
  assert device.is_query.sum() == 4
  assert out['predictor_check']['num_query'] == 4
  assert out['support_measurements'] == 10 + 2  # the rows adapted on
  query = device.is_query
  assert out['predictor_check']['measured_ms'] == device.latency_ms[
      query].tolist()
  # The predictor adapted as the searches' latency source adapts it.
  predicted = latency.support_for(config).adapt().predict_ms(
      device.archs[query])
  np.testing.assert_allclose(out['predictor_check']['predicted_ms'],
                             predicted, rtol=1e-5)
  assert out['predictor_check']['spearman'] == pytest.approx(
      scipy.stats.spearmanr(predicted, device.latency_ms[query])[0])
  # Beside it, what the support alone estimates: its 2 samples, each
  # predicted after adapting on the other rows.
  loo = out['predictor_check']['support_leave_one_out']
  assert loo['num_rows'] == 2 and len(loo['relative_errors']) == 2
  # The search adapted on the same support, and its result says so too.
  searched = workdirs.read_json(str(tmp_path / 'loop' / 'q50' / 'result.json'))
  assert searched['predictor_leave_one_out'] == loo
  assert 'leave-one-out' in search_report.summary(searched)
  (row,) = out['searches']
  assert row['measured_ms'] > 0 and row['predicted_ms'] > 0
  assert row['prediction_error'] == pytest.approx(
      row['predicted_ms'] / row['measured_ms'] - 1)
  assert row['relative_error'] == pytest.approx(
      row['measured_ms'] / row['target_ms'] - 1)
  assert isinstance(row['derivation_within_band'], bool)
  assert out['backend'] == jax.default_backend()
  # Verified in two sessions: each network's median (here the mean) over
  # them, and against the references, each session over its own.
  assert len(row['session_ms']) == len(out['verify_session_drifts']) == 2
  assert row['measured_ms'] == pytest.approx(np.mean(row['session_ms']))
  assert 1 + row['relative_error_vs_references'] == pytest.approx(np.mean(
      np.array(row['session_ms']) /
      (1 + np.array(out['verify_session_drifts']))) / row['target_ms'])
  assert out['total_measurements'] == 16 + 2 * (10 + 1)  # file, verification
  with open(tmp_path / 'loop' / 'closed_loop.json') as f:
    written = json.load(f)
  assert written['searches'][0]['arch'] == row['arch']
  assert len(written['predictor_check']['predicted_ms']) == 4
  assert os.path.getsize(tmp_path / 'loop' / 'closed_loop.png') > 0
  # A second run reuses the device file instead of measuring again.
  again = closed_loop.ensure_device_file(config, config.latency.device_file,
                                         2, 4)
  assert again['measured'] == 0
  # ... but not one that holds other rows than those asked for.
  with mock.patch.object(closed_loop.logging, 'warning') as warn:
    # Another number of query rows: the file's are used, and it is said.
    assert closed_loop.ensure_device_file(
        config, config.latency.device_file, 2, 5)['measured'] == 0
  assert warn.call_args[0][2:4] == (4, 5)
  with pytest.raises(ValueError, match='local.npz: holds 2 support rows'):
    closed_loop.ensure_device_file(config, config.latency.device_file, 3, 4)
  config.measure.seed = 5
  with pytest.raises(ValueError, match='local.npz: field sample_seed is 1, '
                     'but config.measure.seed asks for architectures drawn '
                     'with seed 6'):
    closed_loop.ensure_device_file(config, config.latency.device_file, 2, 4)
  # Settings that would search with another predictor: refused at once.
  config.latency.adapted_dir = str(tmp_path / 'elsewhere')
  with pytest.raises(ValueError, match='config.latency.adapted_dir'):
    closed_loop.run(config, str(tmp_path / 'loop2'), num_query=4)
  config.latency.adapted_dir = ''
  config.latency.support = 'spread'
  with pytest.raises(ValueError, match="config.latency.support: expected "
                     "'random'"):
    closed_loop.run(config, str(tmp_path / 'loop2'), num_query=4)


def test_verify_in_sessions_takes_each_networks_median(monkeypatch):
  # Three sessions: the machine 10% slow, on time, then 30% fast; the
  # second network's third session is an outlier the median ignores.
  sessions = iter([([2.2, 4.4], 0.1), ([2.0, 4.0], 0.0), ([1.4, 9.0], -0.3)])
  seen = []

  def one_session(config, archs, saved, session):
    del config, saved
    seen.append(session)  # each session its own interleaving order
    ms, drift = next(sessions)
    assert len(archs) == 2
    return {'measured_ms': ms, 'drift_vs_device_file': drift,
            'reference_ms': [1.0 + drift] * 10, 'measured': 12,
            'seconds': 1.0}

  monkeypatch.setattr(closed_loop, 'verify', one_session)
  config = closed_loop_config.get_config('smoke')
  config.measure.verify_sessions = 3
  out = closed_loop.verify_in_sessions(config, np.zeros((2, 22)), None)
  assert out['measured_ms'] == [2.0, 4.4]
  assert out['drift_vs_device_file'] == 0.0
  np.testing.assert_allclose(out['measured_vs_references_ms'],
                             [2.0, 4.0])  # 2.2 / 1.1, 4.4 / 1.1
  assert out['measured'] == 36 and out['seconds'] == 3.0
  assert seen == [0, 1, 2]
  assert [s['drift_vs_device_file'] for s in out['sessions']] == [
      0.1, 0.0, -0.3]
  with pytest.raises(ValueError, match='verify_sessions: expected at least'):
    closed_loop.verify_in_sessions(config, np.zeros((2, 22)), None,
                                   sessions=0)


def test_verify_found_compares_the_search_with_the_measurement(
    monkeypatch, tmp_path):
  """What experiments.search --verify adds to result.json: the found
  network's median over the sessions, against the search's own latency
  source and against the target."""
  sessions = iter([[4.4], [4.0], [3.0]])

  def one_session(config, archs, saved, session):
    del config, saved, session
    np.testing.assert_array_equal(np.atleast_2d(archs), [[8] * 22])
    return {'measured_ms': next(sessions), 'drift_vs_device_file': 0.0,
            'reference_ms': [1.0] * 10, 'measured': 11, 'seconds': 1.0}

  monkeypatch.setattr(closed_loop, 'verify', one_session)
  config = closed_loop_config.get_config('smoke')
  config.measure.verify_sessions = 3
  config.latency.target_ms = 5.0
  device = latency_data.Device('mine', 'fbnet', np.zeros((2, 22), np.int32),
                               np.array([1.0, 2.0]), np.zeros(2, bool))
  result = {'arch_index': [8] * 22, 'latency_source': 'predictor',
            'latency_ms': {'predictor': 4.2, 'lut:raspi4': 30.0}}
  out = closed_loop.verify_found(config, result, device, str(tmp_path))
  assert out['measured_ms'] == [4.0] and out['predicted_ms'] == 4.2
  assert out['prediction_error'] == pytest.approx(4.2 / 4.0 - 1)
  assert out['target_error'] == pytest.approx(4.0 / 5.0 - 1)
  assert len(out['sessions']) == 3
  assert os.path.exists(tmp_path / closed_loop.VERIFY_RECORD)


def test_verify_sessions_killed_between_sessions_resume(monkeypatch,
                                                         tmp_path):
  """A job killed after two of three verifying sessions measures only the
  third when rerun, with the third session's interleaving order; a record
  of another device file's latencies is measured again."""
  seen = []

  def one_session(config, archs, saved, session):
    del config, archs, saved
    seen.append(session)
    if session == kill_at[0]:
      raise KeyboardInterrupt
    return {'measured_ms': [2.0 + session], 'drift_vs_device_file': 0.0,
            'reference_ms': [1.0], 'measured': 11, 'seconds': 1.0}

  monkeypatch.setattr(closed_loop, 'verify', one_session)
  config = closed_loop_config.get_config('smoke')
  config.measure.verify_sessions = 3
  device = latency_data.Device('mine', 'fbnet', np.zeros((2, 22), np.int32),
                               np.array([1.0, 2.0]), np.zeros(2, bool))
  record = str(tmp_path / closed_loop.VERIFY_RECORD)
  archs = np.zeros((1, 22), np.int32)
  kill_at = [2]
  with pytest.raises(KeyboardInterrupt):
    closed_loop.verify_in_sessions(config, archs, device, record=record)
  kill_at[0] = None
  out = closed_loop.verify_in_sessions(config, archs, device, record=record)
  assert seen == [0, 1, 2, 2]
  assert out['measured_ms'] == [3.0] and out['measured'] == 33
  assert [s['measured_ms'] for s in out['sessions']] == [[2.0], [3.0], [4.0]]
  # Another device file (its latencies changed): every session again.
  seen.clear()
  device.latency_ms[0] = 1.5
  closed_loop.verify_in_sessions(config, archs, device, record=record)
  assert seen == [0, 1, 2]
  # Other networks too; and the finished record serves a rerun whole.
  seen.clear()
  closed_loop.verify_in_sessions(config, archs + 1, device, record=record)
  closed_loop.verify_in_sessions(config, archs + 1, device, record=record)
  assert seen == [0, 1, 2]


def test_measure_cli_selects_spread_and_query_architectures():
  from fbnet_jax import arch_lists  # pylint: disable=g-import-not-at-top
  space = spaces.get_space('fbnet')
  archs, query, refs = arch_lists.select_archs(
      space, ['reference', 'spread:6', 'query:3'], seed=0)
  assert archs.shape == (19, 22) and refs == list(range(10))
  np.testing.assert_array_equal(query, [False] * 16 + [True] * 3)
  skip = space.units[0].choices.index('skip')
  assert (archs[10:16] == skip).mean(-1)[-1] > 0.5  # the last is mostly skip
  with np.testing.assert_raises_regex(ValueError, 'spread:N'):
    arch_lists.select_archs(space, ['grid:4'], seed=0)
  # Only query rows: nothing to adapt on, refused before any timing.
  with np.testing.assert_raises_regex(ValueError, 'every architecture is a '
                                      'query row'):
    arch_lists.select_archs(space, ['query:2'], seed=0)


def test_measure_cli_rejects_bad_archs_items(tmp_path, file_measured_here):
  """Each bad --archs item is one error naming it (and its file and field),
  never a raw int()/numpy/KeyError or a silently ignored argument."""
  from fbnet_jax import arch_lists  # pylint: disable=g-import-not-at-top
  space = spaces.get_space('fbnet')

  def rejects(item, match):
    with pytest.raises(ValueError, match=match):
      arch_lists.select_archs(space, [item], seed=0)

  for item in ('random:abc', 'random:', 'random:-2', 'spread:0',
               'query:1.5'):
    rejects(item, rf"item '{item}': expected \w+:N with N a whole number "
            r'>= 1')
  rejects('reference:5', "item 'reference:5': reference takes no argument")
  with pytest.raises(ValueError, match='--archs: empty; expected a list'):
    arch_lists.select_archs(space, [], seed=0)
  with pytest.raises(ValueError, match='reference listed more than once'):
    arch_lists.select_archs(space, ['reference', 'random:2', 'reference'],
                            seed=0)
  rejects('result:', "item 'result:': expected result:PATH")
  rejects('file:', "item 'file:': expected file:PATH")
  missing = str(tmp_path / 'nope.json')
  rejects(f'result:{missing}', f'{missing}: no such file')
  rejects(f'file:{tmp_path}/nope.npz', r"item 'file:.*nope.npz': .*no such "
          'device file')

  def result(name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else
                    json.dumps(content))
    return f'result:{path}'

  arch = [8] * 22
  rejects(result('bad.json', '{"space": '), r'bad.json: not a JSON file')
  rejects(result('list.json', [1, 2]), 'list.json: holds a JSON list')
  rejects(result('other.json', {'accuracy': 1.0}),
          r"other.json: field 'space' missing")
  rejects(result('noarch.json', {'space': 'fbnet'}),
          r"noarch.json: field 'arch_index' missing")
  rejects(result('ofa.json', {'space': 'ofa', 'arch_index': arch}),
          r"ofa.json: field space is 'ofa'; expected a fbnet result \(the "
          r'space that --space=fbnet measures\)')
  rejects(result('big.json', {'space': 'fbnet', 'macro': 'imagenet',
                              'arch_index': arch}),
          r"big.json: field macro is 'imagenet'; expected --macro=cifar")
  rejects(result('short.json', {'space': 'fbnet', 'arch_index': arch[:5]}),
          r'short.json: field arch_index: a fbnet architecture has 22 units')
  rejects(result('names.json', {'space': 'fbnet', 'arch_index': 'k3_e1'}),
          r"names.json: field arch_index is 'k3_e1'; expected a list of 22")
  rejects(result('sample.json', {'space': 'fbnet', 'arch_index': arch,
                                 'samples': [{'arch_index': arch[:-1] + [99]}]
                                 }),
          r'sample.json: field samples\[0\].arch_index: unit 21')
  ofa_file = str(tmp_path / 'ofa.npz')
  file_measured_here(ofa_file, space='ofa', device='2080ti_1')
  rejects(f'file:{ofa_file}', r"ofa.npz: field space is 'ofa'; expected "
          r'a fbnet device file \(the space that --space=fbnet measures\)')
  imagenet_file = str(tmp_path / 'imagenet.npz')
  file_measured_here(imagenet_file, macro='imagenet')
  rejects(f'file:{imagenet_file}', r"imagenet.npz: field macro is "
          "'imagenet'; expected --macro=cifar")
  # Good items of each kind still read.
  good = result('good.json', {'space': 'fbnet', 'macro': 'cifar',
                              'arch_index': arch,
                              'samples': [{'arch_index': [0] * 22}]})
  here = str(tmp_path / 'here.npz')
  device = file_measured_here(here)
  archs, query, _ = arch_lists.select_archs(
      space, [good, f'file:{here}', 'random:2'], seed=0)
  assert archs.shape == (2 + len(device.archs) + 2, 22)
  np.testing.assert_array_equal(archs[:2], [arch, [0] * 22])
  assert query.sum() == device.is_query.sum()


def test_measure_stops_by_max_rounds_and_says_so(monkeypatch):
  # Timings with a 50% spread never meet a 5% bound: max_rounds stops it,
  # the file says so and a warning names the bound.
  rng = np.random.default_rng(0)
  monkeypatch.setattr(measure, 'time_fn', lambda fn, warmup, repeats: list(
      1e-3 * (1 + rng.random(repeats))))
  monkeypatch.setattr(measure, 'build_forward', lambda *a: lambda: None)
  config = measure.MeasureConfig(min_rounds=1, max_rounds=3)
  with mock.patch.object(measure.logging, 'warning') as warn:
    device = measure.measure_archs(np.full((2, 22), 8, np.int32), config,
                                   progress=False)
  assert str(device.meta['stopped_by']) == 'max_rounds'
  assert int(device.meta['rounds']) == 3
  assert warn.call_args[0][1] == 'max_rounds'
  with pytest.raises(ValueError, match=r'MeasureConfig\.max_rounds: '
                     'expected a whole number >= 1, got 0'):
    measure.MeasureConfig(max_rounds=0)


def test_measure_config_rejects_an_unknown_dtype():
  for dtype in ('fp32', 'int8'):
    with pytest.raises(ValueError,
                       match=rf"MeasureConfig.dtype: expected one of "
                       rf"\('float32', 'bfloat16'\), got '{dtype}'"):
      measure.MeasureConfig(dtype=dtype)
  assert measure.MeasureConfig(dtype='bfloat16').dtype == 'bfloat16'


def test_search_verify_yes_needs_a_device_file(tmp_path):
  """--verify=yes without config.latency.device_file fails before the
  search starts, not silently after it."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  workdir = tmp_path / 'w'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.search',
       '--config=configs/quickstart.py:smoke', f'--workdir={workdir}',
       '--verify=yes'], cwd=root, capture_output=True, text=True,
      timeout=300, check=False)
  assert proc.returncode != 0
  assert ('--verify=yes: measures the found architecture against '
          'config.latency.device_file, which is not set') in proc.stderr
  assert not workdir.exists()


def test_stored_statistics_hand_checked(monkeypatch):
  """Stubbed timings (row i: (i + 1) x 1, 2, 3 ms in every round): the
  file's median, minimum, IQR, timing counts, the statistic chosen and
  the reason the rounds stopped are exactly what they must be."""
  monkeypatch.setattr(measure, 'build_forward',
                      lambda space, arch, config: int(arch[0]))
  monkeypatch.setattr(measure, 'time_fn', lambda fn, warmup, repeats: (
      1e-3 * (fn + 1) * np.array([1.0, 2.0, 3.0])))
  archs = np.full((3, 22), 8, np.int32)
  archs[:, 0] = [0, 3, 5]
  config = measure.MeasureConfig(repeats_per_round=3, min_rounds=2,
                                 max_rounds=4, spread_bound=1.5)
  device = measure.measure_archs(archs, config, progress=False)
  scale = np.array([1.0, 4.0, 6.0])
  np.testing.assert_allclose(device.latency_ms, 2 * scale, rtol=1e-6)
  np.testing.assert_allclose(device.meta['latency_min_ms'], scale, rtol=1e-6)
  # Sorted 1 1 2 2 3 3 (x scale): quartiles 1.25 and 2.75 (linear).
  np.testing.assert_allclose(device.meta['latency_iqr_ms'], 1.5 * scale,
                             rtol=1e-6)
  np.testing.assert_array_equal(device.meta['num_timings'], [6, 6, 6])
  # IQR / median = 0.75 everywhere: below 1.5 after the minimum 2 rounds.
  assert str(device.meta['stopped_by']) == 'spread_bound'
  assert int(device.meta['rounds']) == 2
  assert float(device.meta['max_relative_spread']) == pytest.approx(0.75)
  # The minimum as the statistic; a bound it cannot meet runs every round.
  config = dataclasses.replace(config, statistic='min', spread_bound=0.4)
  device = measure.measure_archs(archs, config, progress=False)
  np.testing.assert_allclose(device.latency_ms, scale, rtol=1e-6)
  assert str(device.meta['stopped_by']) == 'max_rounds'
  assert int(device.meta['rounds']) == 4
  np.testing.assert_array_equal(device.meta['num_timings'], [12, 12, 12])
  # max_rounds below min_rounds (3): the last round still checks the bound.
  config = dataclasses.replace(config, statistic='median', min_rounds=3,
                               max_rounds=1, spread_bound=1.5)
  with mock.patch.object(measure.logging, 'warning') as warn:
    device = measure.measure_archs(archs, config, progress=False)
  assert str(device.meta['stopped_by']) == 'spread_bound'
  assert int(device.meta['rounds']) == 1
  assert not warn.called


def test_verify_warns_when_the_device_file_is_stale(
    tmp_path, monkeypatch, file_measured_here):
  """References at half their device-file latency: more than the machine's
  session-to-session swing, said with a warning; 10% slower is not."""
  path = str(tmp_path / 'old.npz')
  saved = file_measured_here(path)
  refs = saved.latency_ms[saved.reference_rows()]
  config = closed_loop_config.get_config('smoke')
  for factor, warned in ((0.5, True), (1.1, False)):
    monkeypatch.setattr(closed_loop, '_measure', lambda config, rows, session,
                        f=factor, **kwargs: dataclasses.replace(
                            saved, latency_ms=np.r_[
                                f * refs, np.ones(len(rows) - len(refs))]))
    with mock.patch.object(closed_loop.logging, 'warning') as warn:
      out = closed_loop.verify(config, saved.archs[:1], saved)
    assert out['drift_vs_device_file'] == pytest.approx(factor - 1)
    assert warn.called == warned


def test_a_killed_measurement_resumes_from_its_last_round(tmp_path,
                                                          monkeypatch):
  """Killed in its third round: rerun with the same arguments, it goes on
  from round 2 (the interleaving order too) to the uninterrupted run's
  timings; other settings with the same file are an error naming it."""
  calls, kill_at = [], [None]

  def time_fn(fn, warmup, repeats):
    del warmup
    if len(calls) == kill_at[0]:
      raise KeyboardInterrupt
    calls.append(fn())
    return [1e-3 * (1 + fn())] * repeats

  monkeypatch.setattr(measure, 'time_fn', time_fn)
  monkeypatch.setattr(measure, 'build_forward',
                      lambda space, arch, config: lambda: int(arch[0]))
  archs = np.full((4, 22), 8, np.int32)
  archs[:, 0] = [0, 1, 2, 3]
  config = measure.MeasureConfig(min_rounds=5, max_rounds=5,
                                 spread_bound=0.0)
  straight = measure.measure_archs(archs, config, progress=False)
  order = list(calls)
  assert len(order) == 20
  calls.clear()
  partial = measure.resume_file_for(str(tmp_path / 'dev.npz'))
  assert partial == str(tmp_path / 'dev.partial.npz')
  kill_at[0] = 9  # the second call of round 3
  with pytest.raises(KeyboardInterrupt):
    measure.measure_archs(archs, config, progress=False, resume_file=partial)
  with np.load(partial) as f:
    assert int(f['rounds']) == 2 and f['timings'].shape == (4, 10)
  calls.clear()
  kill_at[0] = None
  resumed = measure.measure_archs(archs, config, progress=False,
                                  resume_file=partial)
  assert calls == order[8:]  # rounds 3-5 in the uninterrupted run's order
  np.testing.assert_array_equal(resumed.meta['resumed_at_rounds'], [2])
  assert len(straight.meta['resumed_at_rounds']) == 0
  np.testing.assert_array_equal(resumed.meta['num_timings'], [25] * 4)
  np.testing.assert_allclose(resumed.latency_ms, straight.latency_ms)
  assert int(resumed.meta['rounds']) == 5
  with pytest.raises(ValueError, match=r'dev\.partial\.npz: the rounds of a '
                     'measurement of other architectures, rows, settings'):
    measure.measure_archs(archs, dataclasses.replace(config, seed=1),
                          progress=False, resume_file=partial)


def test_a_missing_device_file_is_said_before_measuring(tmp_path, caplog):
  (tmp_path / 'my_phone.npz').write_bytes(b'')
  mcfg = closed_loop.measure_config(closed_loop_config.get_config('smoke'))
  typo = str(tmp_path / 'my_phnoe.npz')
  closed_loop._say_measuring(  # pylint: disable=protected-access
      typo, measure.resume_file_for(typo), 30, mcfg)
  assert ('my_phnoe.npz does not exist; measuring 30 networks on this '
          'machine') in caplog.text
  assert f'A similar file exists: {tmp_path / "my_phone.npz"}' in caplog.text
  # A measurement's own partial file is no similar device file: a rerun
  # of a killed measurement resumes from it, and is told so.
  caplog.clear()
  caplog.set_level('INFO')
  partial = measure.resume_file_for(str(tmp_path / 'my_cpu.npz'))
  with open(partial, 'wb'):
    pass
  closed_loop._say_measuring(  # pylint: disable=protected-access
      str(tmp_path / 'my_cpu.npz'), partial, 30, mcfg)
  assert 'similar file' not in caplog.text and 'stop now' not in caplog.text
  assert f'resumes from {partial}' in caplog.text
