"""End to end: tiny meta-training, resume, save/load, meta_test JSON."""

import dataclasses
import json
import os
import re

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from configs import help_fbnet
from fbnet_jax import errors
from fbnet_jax import workdirs
from meta import adaptation
from meta import baselines
from meta import latency_data
from meta import meta_test
from meta import tasks as tasks_lib
from meta import train


def _config():
  config = help_fbnet.get_config('smoke')
  config.meta.num_episodes = 60
  return config


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('meta'))
  train.train_and_evaluate(_config(), path, progress=False)
  return path


def test_query_loss_falls_and_outputs_exist(workdir):
  with open(os.path.join(workdir, train.HISTORY)) as f:
    saved = json.load(f)
  history = saved['history']
  # The rate once compiled is timed after the first chunk and validation.
  assert saved['episodes_per_s_compiled'] > 0 and saved['episodes_per_s'] > 0
  assert [h['episode'] for h in history] == [20, 40, 60]
  assert history[-1]['query_mse'] < history[0]['query_mse']
  assert np.isfinite(history[-1]['valid_spearman'])
  assert os.path.exists(os.path.join(workdir, train.PREDICTOR_DIR,
                                     adaptation.PARAMS_FILE))
  _assert_png(os.path.join(workdir, train.PLOT_FILE))


def _assert_png(path):
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n', path


class _Killed(Exception):
  """Stands for the process dying right after a checkpoint was written."""


def _flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_a_run_whose_validations_are_all_nan_still_saves(tmp_path,
                                                         monkeypatch):
  """No checkpoint is ever selected (the initial parameters stay the best):
  those must survive the training chunk, which donates its input state."""
  monkeypatch.setattr(train, 'make_validator',
                      lambda config, tasks: lambda params: float('nan'))
  config = _config()
  config.meta.num_episodes = 40
  predictor = train.train_and_evaluate(config, str(tmp_path), progress=False)
  saved = json.loads((tmp_path / train.HISTORY).read_text())
  assert saved['best_episode'] == 0
  assert [h['episode'] for h in saved['history']] == [20, 40]
  init = adaptation.init_meta_params(config, jax.random.PRNGKey(config.seed))
  chex.assert_trees_all_close(predictor.meta_params, init)


def test_a_kill_between_history_and_checkpoint_is_not_counted_twice(
    tmp_path, monkeypatch):
  save, calls = train._save, []  # pylint: disable=protected-access

  def die_before_second_save(path, obj):
    calls.append(path)
    if len(calls) == 2:  # episode 40's history is written, not its state
      raise _Killed()
    save(path, obj)

  monkeypatch.setattr(train, '_save', die_before_second_save)
  with pytest.raises(_Killed):
    train.train_and_evaluate(_config(), str(tmp_path), progress=False)
  monkeypatch.undo()
  history = json.loads((tmp_path / train.HISTORY).read_text())['history']
  assert [h['episode'] for h in history] == [20, 40]
  train.train_and_evaluate(_config(), str(tmp_path), progress=False)
  history = json.loads((tmp_path / train.HISTORY).read_text())['history']
  assert [h['episode'] for h in history] == [20, 40, 60]


def test_resume_continues_from_checkpoint(workdir, tmp_path, monkeypatch):
  # A run killed after its first checkpoint and resumed in the same workdir
  # must be the run that was never stopped (the module's 60-episode one):
  # the same per-chunk metrics and the same final state. A resume that
  # re-initialised the parameters, the Adam moments or the rng but kept the
  # episode counter would still count [20, 40, 60]; it fails here.
  save = train._save  # pylint: disable=protected-access

  def save_then_die(path, obj):
    save(path, obj)
    raise _Killed()

  monkeypatch.setattr(train, '_save', save_then_die)
  with pytest.raises(_Killed):
    train.train_and_evaluate(_config(), str(tmp_path), progress=False)
  monkeypatch.undo()
  with open(tmp_path / train.HISTORY) as f:
    assert [h['episode'] for h in json.load(f)['history']] == [20]
  train.train_and_evaluate(_config(), str(tmp_path), progress=False)

  with open(os.path.join(workdir, train.HISTORY)) as f:
    straight = json.load(f)
  with open(tmp_path / train.HISTORY) as f:
    resumed = json.load(f)
  assert [h['episode'] for h in resumed['history']] == [20, 40, 60]
  assert resumed['best_episode'] == straight['best_episode']
  for a, b in zip(resumed['history'], straight['history']):
    assert set(a) == set(b)
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
  # The whole checkpoint: parameters, optimizer state, rng, step, best.
  with open(os.path.join(workdir, train.CHECKPOINT), 'rb') as f:
    want = _flat(flax.serialization.msgpack_restore(f.read()))
  with open(tmp_path / train.CHECKPOINT, 'rb') as f:
    got = _flat(flax.serialization.msgpack_restore(f.read()))
  assert sorted(got) == sorted(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-8,
                               err_msg=key)

  config = _config()
  config.meta.num_episodes = 80  # may grow: continues the same records
  train.train_and_evaluate(config, str(tmp_path), progress=False)
  with open(tmp_path / train.HISTORY) as f:
    history = json.load(f)['history']
  assert [h['episode'] for h in history] == [20, 40, 60, 80]
  assert history[:3] == resumed['history']
  config.meta.num_episodes = 20  # fewer than it has trained: an error
  with pytest.raises(ValueError, match='past meta.num_episodes=20'):
    train.train_and_evaluate(config, str(tmp_path), progress=False)
  config.meta.num_episodes = 80
  # Another meta-learning setting is an error, not a silent continuation.
  config.meta.inner_lr = 0.5
  with pytest.raises(ValueError,
                     match='config.json: was started with another '
                     'meta.inner_lr'):
    train.train_and_evaluate(config, str(tmp_path), progress=False)
  config.meta.inner_lr = _config().meta.inner_lr
  # A checkpoint of another state (older code), or cut short: one error.
  (tmp_path / train.CHECKPOINT).write_bytes(flax.serialization.to_bytes(
      {'state': {'step': 3}, 'best': {}}))
  with pytest.raises(errors.InputError, match=r"checkpoint\.msgpack: does "
                     r"not hold this run's state"):
    train.train_and_evaluate(config, str(tmp_path), progress=False)


def test_meta_training_never_sees_query_rows():
  # HELP's protocol: meta-training uses the meta-train devices' pool rows
  # (and the reference architectures) only; a meta-test task adapts on
  # references + pool rows and is scored on query rows it never saw. Each
  # expectation is rebuilt here from the raw benchmark file and the split.
  config = _config()
  split = latency_data.SPLITS['fbnet']
  raw = latency_data.load_space_data('fbnet')
  q0, q1 = split.query_rows
  assert split.pool_rows <= q0
  query_archs = {a.tobytes() for a in raw.archs[q0:q1]
                 if not any((a == r).all() for r in raw.reference_archs)}

  data = train.episode_data(config)
  # One latency row per meta-train device, that device's: no meta-valid or
  # meta-test device's latencies.
  assert data.latency.shape[0] == len(split.meta_train)
  np.testing.assert_array_equal(
      np.asarray(data.latency),
      np.stack([raw.latency_ms[raw.devices.index(n)]
                for n in split.meta_train]))
  pool, refs = np.asarray(data.pool), np.asarray(data.refs)
  assert int(pool.max()) < split.pool_rows <= q0 and int(pool.min()) >= 0
  np.testing.assert_array_equal(refs, raw.reference_rows)
  assert not np.isin(pool, refs).any()  # references: support, never query
  assert len(pool) == split.pool_rows - len(np.unique(
      raw.reference_rows[raw.reference_rows < split.pool_rows]))

  # Episodes: with every latency outside the pool and the references made
  # NaN, a task that touches any other row has a NaN label or embedding.
  # Mixed tasks too (task_mixup) and reference dropout both drawn.
  allowed = np.zeros(data.latency.shape[1], bool)
  allowed[pool] = allowed[refs] = True
  poisoned = data.replace(latency=jnp.where(allowed, data.latency, jnp.nan))
  config.meta.task_mixup = 0.5
  batch = jax.jit(jax.vmap(lambda k: train.sample_task(k, poisoned, config)))(
      jax.random.split(jax.random.PRNGKey(0), 256))
  for key in ('support_y', 'query_y', 'hardware'):
    assert np.isfinite(np.asarray(batch[key])).all(), key

  # Meta-test tasks: support (references first, then pool rows) never holds
  # a query architecture; the query set is the query rows, trimmed by HELP's
  # protocol to ranks [10%, 90%) of the device's query latencies.
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  lat = raw.latency_ms[raw.devices.index('raspi4')]
  query_lat = np.array([lat[q0 + i] for i, a in enumerate(raw.archs[q0:q1])
                        if a.tobytes() in query_archs])
  assert len(query_lat) == 1000  # no reference architecture is a query row
  for trim, num_query in ((True, 800), (False, 1000)):
    ts = tasks_lib.make_tasks(dev, num_samples=10, seeds=[0, 1], trim=trim)
    assert ts[0].support_archs.tobytes() != ts[1].support_archs.tobytes()
    for t in ts:
      assert len(t.query_ms) == num_query
      leaked = {a.tobytes() for a in t.support_archs} & query_archs
      assert not leaked, f'{len(leaked)} support archs are query archs'
      assert {a.tobytes() for a in t.query_archs} <= query_archs
      np.testing.assert_array_equal(t.support_archs[:10], raw.reference_archs)
      kept = np.sort(query_lat)[100:900] if trim else np.sort(query_lat)
      np.testing.assert_array_equal(np.sort(t.query_ms), kept)

  # Model selection: meta-valid tasks are drawn from pool rows only, their
  # held-out part disjoint from their support.
  pool_archs = {a.tobytes() for a in raw.archs[:split.pool_rows]}
  pool_archs |= {a.tobytes() for a in raw.reference_archs}
  for t in train.validation_tasks(config):
    support = {a.tobytes() for a in t.support_archs}
    held = {a.tobytes() for a in t.query_archs}
    assert not (support | held) - pool_archs, (
        f'{t.device}: {len((support | held) - pool_archs)} archs from '
        'outside the pool')
    assert not support & held, f'{t.device}: support among held-out rows'
  # The same support, scored on the device's own query rows instead
  # (benchmarks.metavalid_rows): no pool row among them.
  name = split.meta_valid[0]
  seen = train.validation_device(config.space, name,
                                 config.eval.valid_fraction)
  unseen = train.validation_device(config.space, name,
                                   config.eval.valid_fraction, True)
  np.testing.assert_array_equal(seen.archs[~seen.is_query],
                                unseen.archs[~unseen.is_query])
  unseen_query = {a.tobytes() for a in unseen.archs[unseen.is_query]}
  assert unseen_query and not unseen_query & pool_archs


@pytest.mark.parametrize('episodes,every,per_call', [(50, 20, 20),
                                                     (60, 30, 20)])
def test_schedule_off_the_compiled_chunks_is_an_error(
    episodes, every, per_call, tmp_path):
  config = _config()
  config.meta.num_episodes = episodes
  config.eval.every = every
  config.meta.episodes_per_call = per_call
  with pytest.raises(ValueError, match='expected multiples of'):
    train.train_and_evaluate(config, str(tmp_path), progress=False)
  assert not os.listdir(tmp_path)  # refused before anything was written


def test_episodes_that_could_adapt_on_nothing_are_refused(tmp_path):
  # No samples, and reference dropout could drop all ten references.
  config = _config()
  config.meta.num_support = 0
  with pytest.raises(errors.InputError, match=r'config\.meta\.num_support: 0 '
                     r'with config\.meta\.ref_dropout 0\.2'):
    train.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('ms, refs, message', [
    ([1.0, 0.0], None, r'support_ms: entry 1 is 0\.0; expected a finite'),
    ([1.0, np.nan], None, 'support_ms: entry 1 is nan'),
    ([1.0], None, r'support_ms: expected shape \[2\], got \[1\]'),
    ([1.0, 2.0], [1.0] * 3, r'reference_ms: expected shape \[10\]'),
    ([1.0, 2.0], [np.nan] * 9 + [-1.0], 'reference_ms: entry 9 is -1.0'),
])
def test_support_latencies_are_checked(ms, refs, message):
  archs = latency_data.bundled_device('fbnet', 'raspi4').archs[:2]
  # Bad input (a command prints it as one line), not a bug's ValueError.
  with pytest.raises(errors.InputError, match=message):
    adaptation.support_arrays('fbnet', archs, ms, refs, 'log')


@pytest.mark.parametrize('fraction', [0.999, 0.0002])
def test_a_validation_split_too_small_names_its_setting(fraction, tmp_path):
  config = _config()
  config.eval.valid_fraction = fraction
  with pytest.raises(errors.InputError,
                     match=rf'config\.eval\.valid_fraction: {fraction} '
                     r'leaves meta_valid device \w+ \d+ query rows'):
    train.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  assert not (tmp_path / 'w').exists()  # refused before anything is written


def test_a_support_without_any_measurement_is_an_error():
  archs = np.zeros((0, 22), np.int32)
  with pytest.raises(errors.InputError, match='no measured latency at all'):
    adaptation.support_arrays('fbnet', archs, np.zeros(0), None, 'log')
  with pytest.raises(errors.InputError, match='no measured latency at all'):
    adaptation.support_arrays('fbnet', archs, np.zeros(0), [np.nan] * 10,
                              'log')


def test_a_reference_measured_twice_is_the_mean_of_both():
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  refs = latency_data.load_space_data('fbnet').reference_archs
  archs = np.concatenate([refs, refs[:1], dev.archs[:3]])
  ms = np.concatenate([np.arange(1.0, 11.0), [3.0], [5.0, 6.0, 7.0]])
  arrays = adaptation.support_arrays('fbnet', archs, ms, None, 'log')
  np.testing.assert_allclose(arrays['reference_ms'],
                             [2.0] + list(np.arange(2.0, 11.0)))
  assert float(arrays['support_w'].sum()) == 13  # 10 references + 3 others


def test_save_load_round_trip(workdir, tmp_path):
  predictor = adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR))
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  rows = np.r_[dev.reference_rows(), np.arange(100, 110)]
  adapted = predictor.adapt(dev.archs[rows], dev.latency_ms[rows],
                            device='raspi4')
  query = dev.archs[dev.is_query][:50]
  ms = adapted.predict_ms(query)
  assert ms.shape == (50,) and np.all(np.isfinite(ms))
  adapted.save(str(tmp_path / 'adapted'))
  again = adaptation.AdaptedPredictor.load(str(tmp_path / 'adapted'))
  np.testing.assert_allclose(again.predict_ms(query), ms, rtol=1e-5)
  assert again.device == 'raspi4'
  # The soft interface is differentiable and agrees on one-hot inputs.
  probs = adapted.space.one_hot(query)
  np.testing.assert_allclose(adapted.predict_ms_soft(probs), ms, rtol=1e-5)
  grad = jax.grad(lambda p: adapted.latency_fn(p).sum())(probs)
  assert np.isfinite(np.asarray(grad)).all()
  # The wrong folder is named, with the right one.
  with pytest.raises(errors.InputError,
                     match=r"field kind is None, expected 'meta'; this is a "
                     r'meta_train workdir, its predictor is .*predictor'):
    adaptation.MetaPredictor.load(workdir)
  with pytest.raises(errors.InputError,
                     match=r"field kind is 'adapted', expected 'meta' \(an "
                     r'adapted one: AdaptedPredictor\.load\)'):
    adaptation.MetaPredictor.load(str(tmp_path / 'adapted'))
  # Files that do not belong together, or are cut short, are named.
  import shutil  # pylint: disable=g-import-not-at-top
  bad = tmp_path / 'bad'
  shutil.copytree(os.path.join(workdir, train.PREDICTOR_DIR), bad)
  info = json.loads((bad / adaptation.CONFIG_FILE).read_text())
  info['config']['model']['hidden'] = info['config']['model']['hidden'] + 1
  (bad / adaptation.CONFIG_FILE).write_text(json.dumps(info))
  with pytest.raises(errors.InputError, match=r'bad/params\.msgpack: '
                     r'parameter .* has shape .* but config\.json beside it'):
    adaptation.MetaPredictor.load(str(bad))
  shutil.copy(os.path.join(workdir, train.PREDICTOR_DIR,
                           adaptation.CONFIG_FILE), bad)
  params = bad / adaptation.PARAMS_FILE
  params.write_bytes(params.read_bytes()[:100])
  with pytest.raises(errors.InputError, match=r'params\.msgpack: not the '
                     'parameters .* cut short'):
    adaptation.MetaPredictor.load(str(bad))
  (bad / adaptation.CONFIG_FILE).write_text('{"kind": "meta", ')
  with pytest.raises(errors.InputError, match=r'config\.json: not valid '
                     'JSON'):
    adaptation.MetaPredictor.load(str(bad))


def _check_schema(result, devices):
  assert set(result['devices']) == set(devices)
  for d in result['devices'].values():
    assert isinstance(d['spearman'], float) and -1 <= d['spearman'] <= 1
    assert isinstance(d['spearman_std'], float) and d['spearman_std'] >= 0
    assert isinstance(d['num_query'], int) and d['num_query'] > 0
  assert isinstance(result['mean_spearman'], float)


def test_meta_test_json_schema(workdir):
  result = meta_test.run(_config(), workdir)
  with open(os.path.join(workdir, meta_test.RESULT_FILE)) as f:
    assert json.load(f) == result
  _assert_png(os.path.join(workdir, 'meta_test.png'))
  names = ['fpga', 'raspi4', 'eyeriss']
  _check_schema(result, names)
  _check_schema(result['trimmed'], names)
  assert set(result['baselines']) == {'linear_mix', 'bayes_linear',
                                      'op_counts', 'flops'}
  # The baselines chosen on meta-valid say what was chosen, and its score.
  # Each is one of its candidates, and scores on the predictor's own
  # meta-valid tasks what it says.
  valid = train.validation_tasks(adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR)).config)
  meta_train = latency_data.SPLITS['fbnet'].meta_train
  for name, cls in (('linear_mix', baselines.LinearMix),
                    ('bayes_linear', baselines.BayesLinear),
                    ('op_counts', baselines.OpCounts)):
    settings = dict(result['baselines'][name]['selected'])
    score = settings.pop('valid_spearman')
    if cls is baselines.BayesLinear:
      assert all(settings[k] in v for k, v in cls.GRID.items())
    elif cls is baselines.LinearMix:
      assert settings['mix_l2'] in (1e-3, 1e-1)
    model = (cls('fbnet', **settings) if cls is baselines.OpCounts else
             cls('fbnet', meta_train, **settings))
    assert score == pytest.approx(np.mean([tasks_lib.spearman(
        model.adapt(t)(t.query_archs), t.query_ms) for t in valid]),
                                  abs=1e-6)
  assert 'selected' not in result['baselines']['flops']
  # The predictor's own score on those tasks, to compare methods by.
  ours = adaptation.MetaMethod(adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR)))
  assert result['valid_spearman'] == pytest.approx(np.mean([
      tasks_lib.spearman(ours.adapt(t)(t.query_archs), t.query_ms)
      for t in valid]), abs=1e-6)
  # The config's primary protocol (eval.trim False) at the top level, the
  # other one under its name.
  assert result['protocol'] == 'untrimmed' and 'untrimmed' not in result
  assert result['num_samples'] == 10 and result['seeds'] == 2
  split = latency_data.SPLITS['fbnet']
  raw = latency_data.load_space_data('fbnet')
  query = np.arange(*split.query_rows)
  query = query[~np.isin(query, raw.reference_rows)]
  # HELP's trimmed protocol drops the 10% fastest and the 10% slowest.
  trimmed_count = len(query) - 2 * int(0.1 * len(query))
  assert (len(query), trimmed_count) == (1000, 800)
  tables = {'untrimmed': [result, *(b['untrimmed']
                                    for b in result['baselines'].values())],
            'trimmed': [result['trimmed'],
                        *(b['trimmed']
                          for b in result['baselines'].values())]}
  for protocol, count in (('untrimmed', len(query)),
                          ('trimmed', trimmed_count)):
    for res in tables[protocol]:
      assert {d['num_query'] for d in res['devices'].values()} == {count}
      assert res['mean_spearman'] == pytest.approx(
          np.mean([d['spearman'] for d in res['devices'].values()]),
          rel=1e-12)
  for name in names:  # a different query set, so different numbers
    assert (result['devices'][name]['spearman'] !=
            result['trimmed']['devices'][name]['spearman'])

  # The FLOPs proxy ranks by the space's analytic MACs (a monotone fit):
  # its Spearman is that of MACs against the query latencies, whatever the
  # support draw (std 0).
  from fbnet_jax import spaces as spaces_lib
  space = spaces_lib.get_space('fbnet')
  macs = np.array([space.flops(a) for a in raw.archs[query]])
  flops = result['baselines']['flops']
  for name in names:
    lat = raw.latency_ms[raw.devices.index(name)][query]
    middle = np.argsort(lat)[len(query) // 10:len(query) - len(query) // 10]
    for protocol, rows in (('untrimmed', slice(None)), ('trimmed', middle)):
      want = scipy.stats.spearmanr(macs[rows], lat[rows])[0]
      got = flops[protocol]['devices'][name]
      assert got['spearman'] == pytest.approx(want, abs=1e-9), (name,
                                                                protocol)
      assert got['spearman_std'] == pytest.approx(0, abs=1e-9)


def test_meta_test_plot_shows_an_evaluated_draw(workdir):
  predictor = adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR))
  method = adaptation.MetaMethod(predictor, predictor.config.meta.algorithm)
  devices = meta_test.load_devices('fbnet', [])
  result = tasks_lib.evaluate(method, devices, num_samples=10, seeds=[0, 1],
                              trim=False)
  panels = meta_test.device_panels(method, devices, result, 10, 0, 2)
  split = latency_data.SPLITS['fbnet']
  assert [p.label for p in panels] == list(split.meta_test)
  for panel, device in zip(panels, devices):
    scored = result['devices'][device.name]
    # All (untrimmed) query rows; the references + 10 samples adapted on.
    assert len(panel.query_ms) == scored['num_query'] == 1000
    assert len(panel.support_ms) == 10 + 10
    np.testing.assert_array_equal(panel.query_ms,
                                  device.latency_ms[device.is_query])
    assert panel.mean_spearman == scored['spearman']
    # Of two draws, each is one standard deviation from their mean: the
    # panel's is draw 0 of the evaluation, same support, same predictions.
    assert abs(panel.spearman - panel.mean_spearman) == pytest.approx(
        scored['spearman_std'], abs=1e-9)


def test_meta_test_device_file_with_missing_references(workdir, tmp_path):
  dev = latency_data.bundled_device('fbnet', 'eyeriss')
  keep = np.ones(len(dev.archs), bool)
  keep[dev.reference_rows()[:4]] = False
  path = str(tmp_path / 'mine.npz')
  latency_data.save_device_file(path, latency_data.Device(
      'mine', 'fbnet', dev.archs[keep], dev.latency_ms[keep],
      dev.is_query[keep]))
  result = meta_test.run(_config(), workdir, [path], with_baselines=False)
  _check_schema(result, ['mine'])
  assert result['devices']['mine']['missing_references'] == 4


def test_trimmed_protocol_keeps_a_small_support_pool():
  """A device file with the references + exactly 10 other non-query rows:
  under HELP's trimmed protocol the support takes all 10 (trimming them
  would leave 8) and only the query rows are trimmed; a pool that is too
  small even untrimmed is an error naming the file."""
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  pool = np.nonzero(~dev.is_query)[0]
  pool = pool[~np.isin(pool, dev.reference_rows())]
  rows = np.r_[dev.reference_rows(), pool[:10],
               np.nonzero(dev.is_query)[0][:50]]
  small = dataclasses.replace(dev, archs=dev.archs[rows],
                              latency_ms=dev.latency_ms[rows],
                              is_query=dev.is_query[rows], source='mine.npz')
  from unittest import mock  # pylint: disable=g-import-not-at-top
  with mock.patch.object(tasks_lib.logging, 'warning') as warn:
    task, = tasks_lib.make_tasks(small, num_samples=10, seeds=[0], trim=True)
    tasks_lib.make_tasks(small, num_samples=10, seeds=[1], trim=True)
  assert warn.call_count == 1  # said once, not once per method or call
  np.testing.assert_array_equal(np.sort(task.support_ms[10:]),
                                np.sort(dev.latency_ms[pool[:10]]))
  assert len(task.query_ms) == 40
  with pytest.raises(latency_data.DeviceFileError,
                     match=r'mine\.npz: field is_query: only 10 non-query.*'
                     r'config\.eval\.num_samples'):
    tasks_lib.make_tasks(small, num_samples=11, seeds=[0], trim=True)
  # Two query rows are enough untrimmed; trimmed, one is left, and the
  # error says that trimming took the other.
  two = dataclasses.replace(small, is_query=np.r_[small.is_query[:-48],
                                                  np.zeros(48, bool)])
  assert len(tasks_lib.make_tasks(two, num_samples=10, seeds=[0],
                                  trim=False)[0].query_ms) == 2
  with pytest.raises(latency_data.DeviceFileError,
                     match=r"mine\.npz: field is_query: 1 query rows left of "
                     r"2 by HELP's trimming"):
    tasks_lib.make_tasks(two, num_samples=10, seeds=[0], trim=True)


def test_missing_references_are_imputed_by_a_first_adaptation(workdir):
  """Unmeasured references: adapt with them masked, predict them, adapt
  again with the predictions in their place; nothing changes when every
  reference was measured."""
  predictor = adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR))
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  refs = dev.reference_rows()
  rows = np.r_[refs[3:], np.arange(100, 110)]  # references 0-2 missing
  archs, ms = dev.archs[rows], dev.latency_ms[rows]
  query = dev.archs[dev.is_query][:50]
  masked = predictor.adapt(archs, ms, impute_references=False)
  imputed = predictor.adapt(archs, ms)
  ref_archs = dev.archs[refs]
  filled = dev.latency_ms[refs].copy()
  filled[:3] = masked.predict_ms(ref_archs[:3])
  by_hand = predictor.adapt(archs, ms, reference_ms=filled,
                            impute_references=False)
  np.testing.assert_allclose(imputed.predict_ms(query),
                             by_hand.predict_ms(query), rtol=1e-6)
  assert not np.allclose(imputed.predict_ms(query), masked.predict_ms(query))
  full = np.r_[refs, np.arange(100, 110)]
  np.testing.assert_array_equal(
      predictor.adapt(dev.archs[full], dev.latency_ms[full]).predict_ms(query),
      predictor.adapt(dev.archs[full], dev.latency_ms[full],
                      impute_references=False).predict_ms(query))


def test_meta_test_evaluates_a_predictor_dir(workdir, tmp_path):
  out = str(tmp_path / 'new' / 'workdir')
  with pytest.raises(FileNotFoundError, match='--predictor_dir=.*pretrained'):
    meta_test.run(_config(), out, with_baselines=False)
  result = meta_test.run(_config(), out, with_baselines=False,
                         predictor_dir=os.path.join(workdir,
                                                    train.PREDICTOR_DIR))
  with open(os.path.join(out, meta_test.RESULT_FILE)) as f:
    assert json.load(f) == json.loads(json.dumps(result))
  assert result == meta_test.run(_config(), workdir, with_baselines=False,
                                 out_path=str(tmp_path / 'same.json'))


def _small_device_file(path, name='mine'):
  """A few rows of raspi4 (references, 40 pool, 60 query) as a device file."""
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  pool = np.nonzero(~dev.is_query)[0]
  query = np.nonzero(dev.is_query)[0]
  rows = np.r_[dev.reference_rows(), pool[:40], query[:60]]
  latency_data.save_device_file(path, latency_data.Device(
      name, 'fbnet', dev.archs[rows], dev.latency_ms[rows], dev.is_query[rows]))
  return path


def test_meta_test_compare_keeps_one_column_per_predictor(workdir, tmp_path):
  # Two --compare workdirs meta-trained with the main one's meta.algorithm
  # (untrained predictors here, so their numbers differ from the main one's).
  others = []
  for i, parent in enumerate(['b', 'c'], 1):
    other = str(tmp_path / parent / 'run')
    adaptation.MetaPredictor(_config(), adaptation.init_meta_params(
        _config(), jax.random.PRNGKey(i))).save(
            os.path.join(other, train.PREDICTOR_DIR))
    others.append(other)
  path = _small_device_file(str(tmp_path / 'mine.npz'))
  alone = meta_test.run(_config(), workdir, [path], with_baselines=False,
                        out_path=str(tmp_path / 'alone.json'))
  result = meta_test.run(_config(), workdir, [path], with_baselines=False,
                         compare=others, out_path=str(tmp_path / 'all.json'))
  algorithm = _config().meta.algorithm
  # The main predictor's numbers are its own, not a compared one's.
  assert result['method'] == algorithm
  assert result['devices'] == alone['devices']
  assert result['trimmed'] == alone['trimmed']
  assert list(result['baselines']) == [f'{algorithm}@run',
                                       f'{algorithm}@run#2']
  for other, res in zip(others, result['baselines'].values()):
    assert res['workdir'] == other
    assert res['untrimmed']['devices'] != alone['devices']


def test_meta_test_device_files_with_one_name_are_refused(tmp_path):
  a = _small_device_file(str(tmp_path / 'a.npz'), name='host_cpu')
  b = _small_device_file(str(tmp_path / 'b.npz'), name='host_cpu')
  with pytest.raises(latency_data.DeviceFileError) as e:
    meta_test.load_devices('fbnet', [a, b])
  assert a in str(e.value) and b in str(e.value)
  assert "field 'name' is 'host_cpu'" in str(e.value)
  assert 'rename' in str(e.value)
  c = _small_device_file(str(tmp_path / 'c.npz'), name='other_cpu')
  assert [d.name for d in meta_test.load_devices('fbnet', [a, c])] == [
      'host_cpu', 'other_cpu']


def test_a_device_file_named_like_a_training_device_is_warned_about(
    workdir, tmp_path):
  from unittest import mock  # pylint: disable=g-import-not-at-top
  path = _small_device_file(str(tmp_path / 'mine.npz'), name='1080ti_1')
  with mock.patch.object(meta_test.logging, 'warning') as warn:
    meta_test.run(_config(), workdir, [path], with_baselines=False,
                  out_path=str(tmp_path / 'out.json'))
  assert warn.call_count == 1
  assert warn.call_args[0][1:] == (path, '1080ti_1')
  assert 'not a few-shot test' in warn.call_args[0][0]


def test_meta_test_devices_and_device_file_are_exclusive(tmp_path):
  path = _small_device_file(str(tmp_path / 'mine.npz'))
  with pytest.raises(ValueError, match='--devices=raspi4 and --device_file='
                     f'{path}: .*expected one of the two'):
    meta_test.load_devices('fbnet', [path], ['raspi4'])
  with pytest.raises(ValueError, match="^--devices: Unknown device 'raspi5' "
                     "for space 'fbnet'"):
    meta_test.load_devices('fbnet', [], ['raspi5'])


def test_meta_test_refuses_a_config_of_another_space(tmp_path):
  import meta  # pylint: disable=g-import-not-at-top
  config = help_fbnet.get_config()
  config.space = 'ofa'
  with pytest.raises(errors.InputError, match="^config.space: 'ofa', but .*"
                     'is a fbnet predictor'):
    meta_test.run(config, str(tmp_path), predictor_dir=os.path.join(
        meta.PRETRAINED_DIR, 'fbnet'))


def test_adapt_accepts_a_meta_train_workdir(workdir):
  from fbnet_jax import latency
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  support = latency.predictor_support('fbnet', dev, predictor_dir=workdir,
                                      num_samples=5)
  assert len(support.ms) == 15
  with pytest.raises(latency.LatencyConfigError,
                     match='nor does .*predictor; expected a meta_train '
                     'workdir or its predictor/'):
    latency.predictor_support('fbnet', dev,
                              predictor_dir=os.path.dirname(workdir))


def test_adapt_refuses_negative_num_samples():
  from fbnet_jax import latency
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  with pytest.raises(latency.LatencyConfigError,
                     match=r'num_samples \(--num_samples\): -3; expected >= 0'):
    latency.predictor_support('fbnet', dev, num_samples=-3)


def test_adapted_predictors_share_one_compiled_prediction(workdir):
  # Adapting to another device (or re-adapting) compiles nothing new.
  predictor = adaptation.MetaPredictor.load(
      os.path.join(workdir, train.PREDICTOR_DIR))
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  first = predictor.adapt(dev.archs[:20], dev.latency_ms[:20])
  second = predictor.adapt(dev.archs[20:40], dev.latency_ms[20:40])
  assert first._predict is second._predict  # pylint: disable=protected-access
  assert first.latency_fn_with_params is second.latency_fn_with_params
  a, b = first.predict_ms(dev.archs[:5]), second.predict_ms(dev.archs[:5])
  assert a.shape == (5,) and not np.allclose(a, b)  # each its own params
  # Batches are padded to a power of two: 33 to 64 rows share one compiled
  # shape (compiled here, or by an earlier test), and a row's prediction
  # does not depend on the batch it is in.
  compiled = first._predict._cache_size()  # pylint: disable=protected-access
  preds = [first.predict_ms(dev.archs[:n]) for n in (33, 40, 64)]
  assert first._predict._cache_size() - compiled <= 1  # pylint: disable=protected-access
  np.testing.assert_allclose(preds[0], preds[2][:33], rtol=1e-6)
  np.testing.assert_allclose(preds[0][:5], a, rtol=1e-6)


def test_predicted_milliseconds_are_floored_and_ranked_raw():
  # The bundled NAS-Bench-201 predictor adapted to raspi4 from its support
  # predicts some mostly-'none' cells at or below zero; predict_ms reports
  # MIN_PREDICTED_MS there, and the few-shot evaluation ranks the raw values.
  import meta  # pylint: disable=g-import-not-at-top
  predictor = adaptation.MetaPredictor.load(
      os.path.join(meta.PRETRAINED_DIR, 'nasbench201'))
  dev = latency_data.bundled_device('nasbench201', 'raspi4')
  adapted = predictor.adapt(dev.archs[:20], dev.latency_ms[:20])
  archs = latency_data.load_space_data('nasbench201').archs
  raw = adapted.predict_ms(archs, floor=False)
  assert (raw < meta.MIN_PREDICTED_MS).any()  # what the floor is for
  np.testing.assert_array_equal(adapted.predict_ms(archs),
                                np.maximum(raw, meta.MIN_PREDICTED_MS))
  task = tasks_lib.make_tasks(dev, num_samples=10, seeds=[0], trim=False)[0]
  ranked = adaptation.MetaMethod(predictor).adapt(task)(archs)
  raw = predictor.adapt(task.support_archs, task.support_ms,
                        task.reference_ms, task.device).predict_ms(
                            archs, floor=False)
  assert (raw < meta.MIN_PREDICTED_MS).any()  # where a floor would tie them
  np.testing.assert_array_equal(ranked, raw)


def test_adapting_to_a_device_meta_training_saw_warns(workdir):
  from fbnet_jax import latency
  from unittest import mock
  with mock.patch.object(latency.logging, 'warning') as warn:
    latency.predictor_support('fbnet', latency_data.bundled_device(
        'fbnet', 'raspi4'), predictor_dir=workdir)
    warn.assert_not_called()  # a meta-test device
    latency.predictor_support('fbnet', latency_data.bundled_device(
        'fbnet', 'pixel3'), predictor_dir=workdir)
  assert warn.call_args[0][1:3] == ('pixel3', 'meta-train')


def test_meta_train_refuses_an_unknown_head_before_writing(tmp_path):
  config = help_fbnet.get_config('smoke')
  config.meta.head = 'Ridge'
  with pytest.raises(ValueError, match="config.meta.head: expected one of"):
    train.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  assert not (tmp_path / 'w').exists()


def test_meta_test_refuses_devices_meta_training_used(workdir):
  with pytest.raises(ValueError, match=r"--devices: \['pixel3', 'titanx_1'\] "
                     'were used in meta-training or model selection'):
    meta_test.run(_config(), workdir,
                  device_names=['raspi4', 'titanx_1', 'pixel3'])
  split = latency_data.SPLITS['fbnet']
  assert [split.seen_as(n) for n in ('pixel3', 'titanx_1', 'raspi4')] == [
      'meta-train', 'meta-valid', None]


def test_leave_one_out_predicts_each_sample_from_the_others():
  """Each non-reference support row, predicted by the predictor adapted on
  all the other rows (the references stay); none with fewer than two."""
  import meta  # pylint: disable=g-import-not-at-top
  predictor = adaptation.MetaPredictor.load(
      os.path.join(meta.PRETRAINED_DIR, 'fbnet'))
  dev = latency_data.bundled_device('fbnet', 'raspi4')
  refs = dev.reference_rows()
  samples = dev.sample_rows()[:6]
  rows = np.concatenate([refs, samples])
  archs, ms = dev.archs[rows], dev.latency_ms[rows]
  relative = predictor.leave_one_out(archs, ms)
  assert relative.shape == (6,)
  keep = np.arange(len(rows)) != 10 + 2  # the third sample left out
  alone = predictor.adapt(archs[keep], ms[keep]).predict_ms(archs[12:13])[0]
  assert relative[2] == pytest.approx(alone / ms[12] - 1, rel=1e-4, abs=1e-5)
  # In-sample the adapted predictor is closer than out of sample.
  fitted = predictor.adapt(archs, ms).predict_ms(archs[10:]) / ms[10:] - 1
  assert np.median(np.abs(fitted)) < np.median(np.abs(relative))
  assert predictor.leave_one_out(archs[:11], ms[:11]).shape == (0,)
  # A sample measured twice is one fold, both rows left out (the second
  # would otherwise leak its own latency into the fold).
  twice = predictor.leave_one_out(np.concatenate([archs, archs[10:11]]),
                                  np.concatenate([ms, ms[10:11] * 1.02]))
  assert twice.shape == (6,)
  without = np.arange(len(rows)) != 10
  alone = predictor.adapt(archs[without], ms[without]).predict_ms(
      archs[10:11])[0]
  assert twice[0] == pytest.approx(alone / (ms[10] * 1.01) - 1, rel=1e-4,
                                   abs=1e-5)
  # Missing references are imputed in every fold; more samples than
  # max_folds: that many folds, spread over them.
  partial = predictor.leave_one_out(archs[5:], ms[5:])
  assert partial.shape == (6,) and np.all(np.isfinite(partial))
  assert predictor.leave_one_out(archs, ms, max_folds=3).shape == (3,)


def test_adapt_command_saves_and_reports_its_support(tmp_path):
  """experiments.adapt on a device file: the support it used (references +
  --num_samples of the 40 other non-query rows), the query score, and a
  saved predictor that loads and predicts."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = _small_device_file(str(tmp_path / 'mine.npz'))
  out = str(tmp_path / 'adapted')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.adapt', f'--device_file={path}',
       f'--workdir={out}', '--num_samples=10'], cwd=root,
      capture_output=True, text=True, timeout=300, check=True)
  assert f'adapted to mine (fbnet) from 20 of its 50 non-query rows -> {out}' \
      in proc.stdout
  printed = re.search(r'query rows: 60; Spearman ([0-9.]+)', proc.stdout)
  dev = latency_data.load_device_file(path)
  ms = adaptation.AdaptedPredictor.load(out).predict_ms(dev.archs[:5])
  assert ms.shape == (5,) and np.all(ms > 0)
  # The printed score is the saved predictor's on the file's query rows
  # (a copy of raspi4's rows: the predictor ranks them well).
  query = adaptation.AdaptedPredictor.load(out).predict_ms(
      dev.archs[dev.is_query], floor=False)
  spearman = scipy.stats.spearmanr(query, dev.latency_ms[dev.is_query])[0]
  assert float(printed.group(1)) == pytest.approx(spearman, abs=6e-4)
  assert spearman > 0.8
  _assert_png(os.path.join(out, 'adapt.png'))  # the query rows, plotted
  # The leave-one-out estimate over the 10 samples, printed and recorded
  # with the query check.
  report = workdirs.read_json(os.path.join(out, 'adapt.json'))
  loo = report['leave_one_out']
  assert report['support_rows'] == 20 and loo['num_rows'] == 10
  assert loo['median_abs_relative_error'] == pytest.approx(
      np.median(np.abs(loo['relative_errors'])))
  assert (f'leave-one-out over its 10 samples (each predicted after adapting '
          f'on the other rows): median |relative error| '
          f'{100 * loo["median_abs_relative_error"]:.1f}%') in proc.stdout
  assert report['query']['num_rows'] == 60
  assert report['query']['spearman'] == pytest.approx(spearman, abs=6e-4)
  # Another device's file into the same workdir: said, then done.
  other = _small_device_file(str(tmp_path / 'other.npz'), name='other')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.adapt', f'--device_file={other}',
       f'--workdir={out}'], cwd=root, capture_output=True, text=True,
      timeout=300, check=True)
  assert ("replacing the adapted predictor of device 'mine' with one of "
          "'other'") in proc.stderr
  assert adaptation.AdaptedPredictor.load(out).device == 'other'


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
  """An entry point given a bad device file prints the loader's sentence
  (file, field, expectation) and exits with status 2; FBNET_JAX_TRACEBACK=1
  shows the traceback."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = str(tmp_path / 'bad.npz')
  np.savez(path, space='fbnet', arch=np.zeros((3, 22), np.int8),
           latency_ms=np.array([1.0, -1.0, 2.0]))
  cmd = [sys.executable, '-m', 'experiments.adapt', f'--device_file={path}',
         f'--workdir={tmp_path / "out"}']
  proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 2
  assert (f"error: {path}: field 'latency_ms': row 1 is -1.0" in proc.stderr
          and 'Traceback' not in proc.stderr)
  proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                        timeout=300, check=False,
                        env={**os.environ, 'FBNET_JAX_TRACEBACK': '1'})
  assert proc.returncode != 0 and 'Traceback' in proc.stderr
  assert not (tmp_path / 'out').exists()  # a bad file leaves no folder
  # A workdir it cannot write is said before the file is adapted.
  good = _small_device_file(str(tmp_path / 'good.npz'))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.adapt', f'--device_file={good}',
       f'--workdir={path}'], cwd=root, capture_output=True, text=True,
      timeout=300, check=False)
  assert proc.returncode == 2
  assert f'error: --workdir: {path}/adapt.json: cannot write there' in (
      proc.stderr)


def test_which_errors_are_bad_input():
  from experiments import cli  # pylint: disable=g-import-not-at-top
  assert cli.is_user_error(latency_data.DeviceFileError('x.npz: field ...'))
  assert cli.is_user_error(errors.InputError('config.evolve.initial: ...'))
  assert cli.is_user_error(ImportError("needs the 'onnx' extra: pip install"))
  # Anything else is a bug to report, with its traceback.
  assert not cli.is_user_error(ValueError('operands could not be broadcast'))
  assert not cli.is_user_error(ImportError('No module named foo'))
  assert not cli.is_user_error(KeyError('latency_ms'))


def test_a_workdir_that_cannot_be_a_folder_is_one_line(tmp_path):
  from experiments import cli  # pylint: disable=g-import-not-at-top
  a_file = tmp_path / 'result.json'
  a_file.write_text('{}')
  with pytest.raises(FileExistsError) as info:
    os.makedirs(a_file)
  assert cli.is_user_error(info.value)
  assert cli.user_message(info.value) == (
      f'{a_file}: File exists; expected a path this job can read or write '
      '(check the flag or config field that names it).')
  # An --out checked before the work that ends by writing it.
  with pytest.raises(errors.InputError, match=r'^--out: .*result\.json/x\.npz: '
                     'cannot write there'):
    workdirs.check_writable(str(a_file / 'x.npz'), '--out')
  with pytest.raises(errors.InputError, match='is a directory'):
    workdirs.check_writable(str(tmp_path), '--out')
  workdirs.check_writable(str(tmp_path / 'new' / 'x.npz'), '--out')
  assert (tmp_path / 'new').is_dir() and not list((tmp_path / 'new').iterdir())


def test_few_support_rows_and_held_out_references_are_said(caplog):
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top
  bundled = latency_data.bundled_device('fbnet', 'raspi4')
  refs = bundled.reference_rows()
  rows = np.concatenate([refs, bundled.sample_rows()[:1]])
  is_query = np.ones(len(rows), bool)
  is_query[1:] = False  # reference 0 held out; 9 references + 1 other left
  device = latency_data.Device('mine', 'fbnet', bundled.archs[rows],
                               bundled.latency_ms[rows], is_query,
                               source='mine.npz')
  support = latency.predictor_support('fbnet', device, num_samples=10)
  assert len(support.archs) == 10
  assert ('mine.npz: 10 samples asked for, but only 1 non-query rows '
          'besides the reference architectures') in caplog.text
  assert ('mine.npz: 1 reference architectures are only among the is_query '
          'rows') in caplog.text
  assert 'measurements only' not in caplog.text  # 10 rows: not "few"
  caplog.clear()
  device.is_query[:6] = True
  latency.predictor_support('fbnet', device, num_samples=0)
  assert 'mine.npz: 6 reference architectures are only among' in caplog.text
  assert 'mine.npz: adapting on 5 measurements only' in caplog.text


def test_adapt_to_device_adapts_on_every_non_query_row(tmp_path):
  """The README's one-line adaptation equals the command's support with
  --num_samples=0 (the references + every other non-query row)."""
  import meta  # pylint: disable=g-import-not-at-top
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top
  dev = latency_data.load_device_file(
      _small_device_file(str(tmp_path / 'mine.npz')))
  predictor = adaptation.MetaPredictor.load(
      os.path.join(meta.PRETRAINED_DIR, 'fbnet'))
  adapted = predictor.adapt_to_device(dev)
  assert adapted.device == 'mine'
  support = latency.predictor_support('fbnet', dev, num_samples=0)
  assert len(support.archs) == (~dev.is_query).sum() == 50
  query = dev.archs[dev.is_query]
  np.testing.assert_allclose(adapted.predict_ms(query),
                             support.adapt().predict_ms(query), rtol=1e-4)
  # Adapted on 50 rows of raspi4, it ranks raspi4's query rows.
  assert tasks_lib.spearman(adapted.predict_ms(query),
                            dev.latency_ms[dev.is_query]) > 0.9
