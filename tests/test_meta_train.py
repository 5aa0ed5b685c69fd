"""End to end: tiny meta-training, resume, save/load, meta_test JSON."""

import json
import os

import jax
import numpy as np
import pytest

from configs import help_fbnet
from meta import adaptation
from meta import latency_data
from meta import meta_test
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
    history = json.load(f)['history']
  assert [h['episode'] for h in history] == [20, 40, 60]
  assert history[-1]['query_mse'] < history[0]['query_mse']
  assert np.isfinite(history[-1]['valid_spearman'])
  assert os.path.exists(os.path.join(workdir, train.PREDICTOR_DIR,
                                     adaptation.PARAMS_FILE))


def test_resume_continues_from_checkpoint(tmp_path):
  config = _config()
  config.meta.num_episodes = 20
  train.train_and_evaluate(config, str(tmp_path), progress=False)
  config.meta.num_episodes = 40
  train.train_and_evaluate(config, str(tmp_path), progress=False)
  with open(tmp_path / train.HISTORY) as f:
    history = json.load(f)['history']
  assert [h['episode'] for h in history] == [20, 40]
  config.meta.num_episodes = 20  # fewer than it has trained: an error
  with pytest.raises(ValueError, match='past meta.num_episodes=20'):
    train.train_and_evaluate(config, str(tmp_path), progress=False)
  config.meta.num_episodes = 40
  # Another meta-learning setting is an error, not a silent continuation.
  config.meta.inner_lr = 0.5
  with pytest.raises(ValueError,
                     match='config.json: was started with another '
                     'meta.inner_lr'):
    train.train_and_evaluate(config, str(tmp_path), progress=False)


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


@pytest.mark.parametrize('ms, refs, message', [
    ([1.0, 0.0], None, r'support_ms: entry 1 is 0\.0; expected a finite'),
    ([1.0, np.nan], None, 'support_ms: entry 1 is nan'),
    ([1.0], None, r'support_ms: expected shape \[2\], got \[1\]'),
    ([1.0, 2.0], [1.0] * 3, r'reference_ms: expected shape \[10\]'),
    ([1.0, 2.0], [np.nan] * 9 + [-1.0], 'reference_ms: entry 9 is -1.0'),
])
def test_support_latencies_are_checked(ms, refs, message):
  archs = latency_data.bundled_device('fbnet', 'raspi4').archs[:2]
  with pytest.raises(ValueError, match=message):
    adaptation.support_arrays('fbnet', archs, ms, refs, 'log')


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


def _check_schema(result, devices):
  assert set(result['devices']) == set(devices)
  for d in result['devices'].values():
    assert isinstance(d['spearman'], float) and -1 <= d['spearman'] <= 1
    assert isinstance(d['spearman_std'], float) and d['spearman_std'] >= 0
    assert isinstance(d['num_query'], int) and d['num_query'] > 0
  assert isinstance(result['mean_spearman'], float)


def test_meta_test_json_schema(workdir):
  meta_test.run(_config(), workdir)
  with open(os.path.join(workdir, meta_test.RESULT_FILE)) as f:
    result = json.load(f)
  _check_schema(result, ['fpga', 'raspi4', 'eyeriss'])
  _check_schema(result['trimmed'], ['fpga', 'raspi4', 'eyeriss'])
  assert set(result['baselines']) == {'linear_mix', 'flops'}
  assert result['devices']['raspi4']['num_query'] == 1000


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
