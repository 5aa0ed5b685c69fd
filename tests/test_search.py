"""DNAS end to end on the tiny config: loss falls, result reads back, resume
reproduces an uninterrupted run, the sharded step matches one device."""

import json
import os
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from configs import quickstart
from fbnet_jax import dnas
from fbnet_jax import latency
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import spaces


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('search'))
  result = search.train_and_evaluate(quickstart.get_config('smoke'), workdir,
                                     progress=False)
  return workdir, result


def test_search_writes_a_readable_result(finished):
  workdir, result = finished
  with open(os.path.join(workdir, search.RESULT_FILE)) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(result))
  assert saved['space'] == 'fbnet' and len(saved['arch']) == 22
  assert set(saved['arch']) <= {'k3_e1', 'skip'}
  assert set(saved['latency_ms']) >= {'lut:raspi4'}
  # The numbers are those of the derived architecture itself.
  arch = np.asarray(saved['arch_index'])
  space = spaces.get_space('fbnet')
  assert saved['arch'] == space.names(arch)
  assert saved['latency_ms']['lut:raspi4'] == pytest.approx(float(
      latency.lookup_table_latency('raspi4').arch_ms(arch[None])[0]),
                                                            rel=1e-5)
  assert saved['flops'] == space.flops(arch) > 0
  assert saved['params'] == space.params(arch) > 0
  assert 0.0 <= saved['supernet_accuracy'] <= 1.0
  assert 0.0 <= saved['mixture_accuracy'] <= 1.0
  assert saved['environment']['jax'] == jax.__version__
  assert len(saved['samples']) == 1
  # Derivation for the target loss: greedy repair of the argmax towards 2%
  # of the target by the search's own source (12 ms lies between the
  # smoke space's fastest and slowest networks, so the band is reachable);
  # the plain argmax is reported beside it.
  derivation = saved['derivation']
  assert derivation['mode'] == 'target'
  source, target = saved['latency_source'], saved['target_ms']
  assert target == 12.0
  lat = saved['latency_ms'][source]
  assert abs(lat / target - 1) <= 0.02
  assert derivation['within_band']
  assert derivation['relative_error'] == pytest.approx(lat / target - 1,
                                                       rel=1e-4)
  assert derivation['band_ms'] == pytest.approx([0.98 * target,
                                                 1.02 * target])
  assert len(saved['argmax']['arch']) == 22
  for plot in ('arch_distribution.png', 'latency.png'):
    assert os.path.getsize(os.path.join(workdir, plot)) > 1000


def test_search_loss_falls(finished):
  workdir, _ = finished
  with open(os.path.join(workdir, 'history.json')) as f:
    history = json.load(f)
  assert [h['epoch'] for h in history] == [1.0, 2.0, 3.0]
  assert history[-1]['ce'] < history[0]['ce']
  # The temperature anneals per epoch.
  assert history[1]['tau'] < history[0]['tau']


def test_interrupted_searches_resume_to_the_uninterrupted_run(
    finished, tmp_path, monkeypatch):
  """Two interruptions of one search, then its end: Ctrl-C just after the
  (asynchronous) checkpoint of step 5 began (it completes before the
  interrupt propagates, and the loop's records of step 5 were written
  before it), a rerun stopped after step 11 (mid-epoch, between
  checkpoints), and a rerun to the end, which reaches the uninterrupted
  run's architecture, history and architecture parameters."""
  workdir, straight = finished
  save = ocp.CheckpointManager.save

  def save_then_interrupt(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if saved and step == 5:
      raise KeyboardInterrupt
    return saved

  monkeypatch.setattr(ocp.CheckpointManager, 'save', save_then_interrupt)
  config = quickstart.get_config('smoke')
  with pytest.raises(KeyboardInterrupt):
    search.train_and_evaluate(config, str(tmp_path), progress=False)
  manager = ocp.CheckpointManager(str(tmp_path / 'checkpoints'))
  assert manager.latest_step() == 5  # finished, not a .tmp left behind
  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  search.train_and_evaluate(config, str(tmp_path), progress=False,
                            stop_after=11)
  resumed = search.train_and_evaluate(config, str(tmp_path), progress=False)
  assert resumed['arch'] == straight['arch']
  # The history too: the epoch cut by the stop has the means and the last
  # losses of the uninterrupted run (running.json).
  histories = []
  for w in (workdir, str(tmp_path)):
    with open(os.path.join(w, 'history.json')) as f:
      histories.append(json.load(f))
  assert len(histories[0]) == len(histories[1]) == 3
  for a, b in zip(*histories):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5,
                                 err_msg=key)
  restore = lambda w: ocp.CheckpointManager(
      os.path.abspath(os.path.join(w, 'checkpoints'))).restore(24)
  a, b = restore(workdir), restore(str(tmp_path))
  np.testing.assert_allclose(a['params']['arch'], b['params']['arch'],
                             rtol=1e-5, atol=1e-6)
  # A finished search may be re-derived and re-evaluated under other
  # evaluation settings, but not resumed under another training setting.
  config.data.eval_limit = 16
  search.train_and_evaluate(config, str(tmp_path), progress=False)
  config.optim.weight_lr = 0.5
  with pytest.raises(ValueError, match='settings.json: was started with '
                     'another optim.weight_lr'):
    search.train_and_evaluate(config, str(tmp_path), progress=False)


def test_weight_decay_reaches_the_fused_layers_kernels():
  params = {'net': {'stem': {'kernel': 1.0, 'bias': 1.0},
                    'layer0': {'k3_e1_pw1_kernel': 1.0, 'k5_e6_dw_kernel': 1.0,
                               'bn_k3_e1': {'scale': 1.0, 'bias': 1.0}},
                    'cell': {'edge_0_1_nor_conv_3x3_kernel': 1.0}},
            'arch': {'theta': 1.0}}
  mask = searcher_lib._decay_mask(params)  # pylint: disable=protected-access
  assert mask == {'net': {'stem': {'kernel': True, 'bias': False},
                          'layer0': {'k3_e1_pw1_kernel': True,
                                     'k5_e6_dw_kernel': True,
                                     'bn_k3_e1': {'scale': False,
                                                  'bias': False}},
                          'cell': {'edge_0_1_nor_conv_3x3_kernel': True}},
                  'arch': {'theta': False}}


class _Killed(Exception):
  pass


@pytest.mark.parametrize('running_kept', [True, False])
def test_a_run_killed_in_its_first_epoch_resumes(tmp_path, monkeypatch,
                                                 running_kept):
  """Killed after its first checkpoint, before any epoch ended (no history
  record yet), with or without history.json on disk; with running.json (the
  epoch's sums at the checkpoint) or without (a workdir of older code).
  Steps are stubbed: no supernet is compiled."""
  kill_at = [4]

  def fake_weight_step(self, state, batch, tau, target_ms, path=None):
    del self, batch, tau, target_ms, path
    if int(state.step) == kill_at[0]:
      # Killed once the (asynchronous) checkpoint of step 1 is on disk.
      first = os.path.join(workdir, 'checkpoints', '1')
      for _ in range(300):
        if os.path.exists(first):
          break
        time.sleep(0.1)
      raise _Killed()
    zero = jnp.zeros(())
    return state.replace(step=state.step + 1), {
        'loss': zero, 'ce': zero, 'accuracy': zero}

  config = quickstart.get_config('smoke')  # 8 steps an epoch
  workdir = str(tmp_path)
  monkeypatch.setattr(searcher_lib.Searcher, 'weight_step', fake_weight_step)
  with pytest.raises(_Killed):
    search.train_and_evaluate(config, workdir, progress=False)
  history_path = os.path.join(workdir, 'history.json')
  with open(history_path) as f:
    assert json.load(f) == []  # written with the checkpoint of step 1
  os.remove(history_path)  # as if killed between checkpoint and history
  running_path = os.path.join(workdir, search.RUNNING_FILE)
  with open(running_path) as f:
    assert json.load(f)['1']['epoch_count'] == 1
  if not running_kept:
    os.remove(running_path)
  kill_at[0] = None
  search.train_and_evaluate(config, workdir, progress=False, stop_after=8)
  with open(history_path) as f:
    history = json.load(f)
  # Resumed from the checkpoint of step 1: the epoch's means cover its 8
  # steps, or without running.json the 7 since the checkpoint.
  assert [(h['step'], h['steps_in_mean']) for h in history] == [
      (8, 8 if running_kept else 7)]


def _skip_only_config():
  """The smoke search on skip blocks alone (1x1 projections where shapes
  change, BN everywhere): the compiled-step properties do not depend on the
  candidates, and it compiles in a quarter of the time."""
  config = quickstart.get_config('smoke')
  config.search.ops = ('skip',)
  return config


@pytest.fixture(scope='module')
def one_device():
  """A searcher on one device (the next tests share its compiles)."""
  return searcher_lib.Searcher(_skip_only_config(), devices=jax.devices()[:1])


def test_sharded_step_matches_one_device():
  # Two candidates, so that the architecture step has a gradient (through
  # each example's Gumbel sample, drawn for the global batch) to compare.
  assert jax.device_count() == 4  # tests/conftest.py fakes 4 CPU devices
  config = quickstart.get_config('smoke')
  config.search.ops = ('k3_e1', 'skip')
  config.loss.latency_of = 'sample'
  batch = {'image': np.random.default_rng(0).normal(
      size=(16, 8, 8, 3)).astype(np.float32),
           'label': np.arange(16, dtype=np.int32) % 10}
  out = []
  for devices in (jax.devices()[:1], jax.devices()):
    s = searcher_lib.Searcher(config, devices=devices)
    state = s.init_state()
    start = jax.device_get(state.params['arch'])
    b = jax.tree.map(s.put_batch, batch)
    tau, target = jnp.asarray(1.0), jnp.asarray(20.0)
    state, m = s.weight_step(state, b, tau, target)
    state, m = s.arch_step(state, b, tau, target)
    if s.mesh.size == 4:
      assert len(b['image'].sharding.device_set) == 4
    params = jax.device_get(state.params)
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), params['arch'],
                         start)
    assert max(jax.tree.leaves(moved)) > 1e-4  # the arch step did something
    out.append((params, float(m['loss'])))
  np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-4)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-3,
                                                       atol=1e-5),
               out[0][0], out[1][0])


def test_one_compiled_step_serves_every_device_and_temperature(one_device):
  """Weight and architecture steps at FBNet's schedule's temperatures,
  two targets and two devices' tables: one trace (chex counts them) and one
  executable."""
  s = one_device
  default_step, default_lat = s.step_fn, s.lat_params
  s.step_fn = jax.jit(chex.assert_max_traces(s._step, n=1),  # pylint: disable=protected-access
                      donate_argnums=0)
  state = s.init_state()
  batch = jax.tree.map(s.put_batch, {
      'image': np.zeros((16, 8, 8, 3), np.float32),
      'label': np.zeros((16,), np.int32)})
  losses = []
  try:
    for device, tau, target in (('raspi4', 5.0, 20.0),
                                ('fpga', 5.0 * 0.956 ** 10, 12.0),
                                ('fpga', 0.3, 12.0)):
      s.lat_params = jax.device_put(
          latency.lookup_table_latency(device).params, s.replicated)
      tau, target = jnp.asarray(tau), jnp.asarray(target)
      state, _ = s.weight_step(state, batch, tau, target)
      _, m = s.arch_step(jax.tree.map(jnp.copy, state), batch, tau, target)
      losses.append(float(m['loss']))
    # The same state, temperature and target under each device's table:
    # the step's latency is that table's (not one baked in when traced).
    probs = dnas.probabilities(state.params['arch'], s.mask, s.fixed)
    for device in ('raspi4', 'fpga'):
      table = latency.lookup_table_latency(device)
      s.lat_params = jax.device_put(table.params, s.replicated)
      _, m = s.arch_step(jax.tree.map(jnp.copy, state), batch, tau, target)
      # (fpga's all-skip sum cancels to ~0: float32 leaves ~1e-7 ms.)
      np.testing.assert_allclose(float(m['loss_latency_ms']),
                                 float(table(probs)), rtol=1e-5, atol=1e-5)
    assert s.step_fn._cache_size() == 1  # pylint: disable=protected-access
  finally:
    s.step_fn, s.lat_params = default_step, default_lat
  assert np.all(np.isfinite(losses))
  assert latency.lookup_table_latency('raspi4')(probs) != (
      latency.lookup_table_latency('fpga')(probs))  # two devices, two values


def test_metric_writer_drops_records_after_the_resumed_step(tmp_path):
  writer = search.reporting.MetricWriter(str(tmp_path))
  for step in range(1, 6):
    writer.scalars(step, {'loss': float(step)})
  writer.close()
  # Killed after step 5, resumed from the checkpoint of step 3.
  writer = search.reporting.MetricWriter(str(tmp_path), resumed_at=3)
  writer.scalars(4, {'loss': 40.0})
  writer.close()
  with open(tmp_path / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert [(r['step'], r['loss']) for r in records] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
  # A run killed while writing leaves a partial last line: dropped.
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 5, "lo')
  search.reporting.MetricWriter(str(tmp_path), resumed_at=4).close()
  with open(tmp_path / 'metrics.jsonl') as f:
    assert [json.loads(line)['step'] for line in f] == [1, 2, 3, 4]


def test_each_optimiser_freezes_the_other_half():
  """The weight step leaves the architecture parameters exactly where they
  are and the architecture step the network's, whatever the gradients."""
  config = quickstart.get_config('smoke')
  weights, arch = searcher_lib.make_optimizers(config, steps_total=10)
  params = {'net': {'conv': {'kernel': jnp.ones((3, 3)),
                             'bias': jnp.zeros(3)}},
            'arch': {'theta': jnp.full((4, 9), 0.5)}}
  grads = jax.tree.map(jnp.ones_like, params)
  for opt, moves, stays in ((weights, 'net', 'arch'),
                            (arch, 'arch', 'net')):
    state = opt.init(params)
    for _ in range(3):  # past the warm-up's zero learning rate
      updates, state = opt.update(grads, state, params)
      new = optax.apply_updates(params, updates)
    jax.tree.map(np.testing.assert_array_equal, new[stays], params[stays])
    assert all(np.abs(a - b).min() > 0 for a, b in zip(
        jax.tree.leaves(new[moves]), jax.tree.leaves(params[moves])))


def _uniform_paths_config(epochs=1):
  config = quickstart.get_config('smoke')  # two candidates, k3_e1 and skip
  config.search.weight_paths = 'uniform'
  config.epochs = config.search.warmup_epochs = epochs
  return config


def test_uniform_weight_paths_draw_the_searched_candidates_evenly():
  """SPOS paths: one sub-network per weight step, only among the candidates
  the supernet builds, each with equal odds, the same for the same step."""
  searcher = searcher_lib.Searcher(_uniform_paths_config())
  assert searcher.uniform_paths
  choices = searcher.space.units[0].choices
  built = [choices.index('k3_e1'), choices.index('skip')]
  paths = np.stack([searcher.sample_path(step) for step in range(400)])
  assert paths.shape == (400,) + searcher.mask.shape
  np.testing.assert_array_equal(paths.sum(-1), 1.0)
  share = paths.mean(axis=(0, 1))
  assert share[built].sum() == 1.0
  np.testing.assert_allclose(share[built], 0.5, atol=0.03)
  np.testing.assert_array_equal(searcher.sample_path(7), paths[7])
  # Weights only: a uniform path has no architecture distribution to learn.
  config = _uniform_paths_config(epochs=2)
  config.search.warmup_epochs = 1
  with pytest.raises(ValueError, match="weight_paths: 'uniform' trains "
                     'weights only'):
    searcher_lib.Searcher(config)
  config.search.weight_paths = 'per_layer'
  with pytest.raises(ValueError, match='weight_paths: expected one of'):
    searcher_lib.Searcher(config)


def test_a_uniform_paths_run_trains_one_sampled_path_per_weight_step(
    tmp_path, monkeypatch):
  """The search loop hands each weight step its own draw (stubbed steps: no
  supernet is compiled), from a stream of its own."""
  config = _uniform_paths_config()
  seen = []

  def fake_weight_step(self, state, batch, tau, target_ms, path=None):
    del self, batch, tau, target_ms
    seen.append((int(state.step), path))
    zero = jnp.zeros(())
    return state.replace(step=state.step + 1), {
        'loss': zero, 'ce': zero, 'accuracy': zero}

  monkeypatch.setattr(searcher_lib.Searcher, 'weight_step', fake_weight_step)
  search.train_and_evaluate(config, str(tmp_path), progress=False,
                            stop_after=config.steps_per_epoch)
  assert [step for step, _ in seen] == list(range(config.steps_per_epoch))
  searcher = searcher_lib.Searcher(config)
  for step, path in seen:
    np.testing.assert_array_equal(path, searcher.sample_path(step))
  # Paths differ from step to step (8 draws of 22 layers from two ops).
  assert len({np.asarray(p).tobytes() for _, p in seen}) == len(seen)
  # Not the first draw of a sampler seeded with config.seed, as step 0's
  # was when its seed was [seed, step] (numpy drops a trailing 0).
  first = searcher.space.sample_allowed(np.random.default_rng(config.seed), 1,
                                        searcher.allowed())[0]
  assert not np.array_equal(searcher.sample_path(0).argmax(-1), first)


def test_runs_recorded_before_weight_paths_existed_still_resume():
  """A settings.json written before ``search.weight_paths`` existed (its
  runs trained Gumbel paths) is checked as 'gumbel'; 'uniform' differs."""
  config = quickstart.get_config('smoke')
  config.search.warmup_epochs = config.epochs  # weights only
  workdirs_lib = search.workdirs
  recorded = workdirs_lib.as_json(search.resume_settings(config))
  # Left out at its default, so a file from before the field matches.
  assert 'weight_paths' not in recorded['search']
  config.search.weight_paths = 'uniform'
  with pytest.raises(ValueError, match='another search.weight_paths than'):
    workdirs_lib.check('settings.json', recorded,
                       search.resume_settings(config))
