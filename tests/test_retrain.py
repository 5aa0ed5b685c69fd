"""Retraining a found architecture: reads result.json, trains, evaluates."""

import json

import pytest

from configs import quickstart
from fbnet_jax import retrain
from fbnet_jax import spaces


def test_retrain_from_result_json(tmp_path):
  space = spaces.get_space('fbnet')
  arch = [8] * 22
  arch[5] = 0  # one real block, the rest skip: compiles in seconds
  result = {'space': 'fbnet', 'arch': space.names(arch), 'arch_index': arch}
  path = tmp_path / 'result.json'
  path.write_text(json.dumps(result))
  loaded, _ = retrain.load_arch(str(path))
  assert loaded == arch
  config = quickstart.get_config('smoke')
  config.retrain.steps_per_epoch = 20
  out = retrain.train_and_evaluate(config, loaded, str(tmp_path / 'w'),
                                   progress=False)
  assert 0.0 <= out['accuracy'] <= 1.0 and out['num_eval'] == 32
  with open(tmp_path / 'w' / retrain.RESULT_FILE) as f:
    assert json.load(f)['arch'] == arch
  curve = out['train_loss']
  assert curve[0][0] == 0 and curve[-1][0] == 19
  assert curve[-1][1] < curve[0][1]


def test_bad_result_json_is_a_clear_error(tmp_path):
  path = tmp_path / 'result.json'
  path.write_text(json.dumps({'space': 'fbnet'}))
  with pytest.raises(ValueError, match="field 'arch_index' missing"):
    retrain.load_arch(str(path))
