"""Settings a workdir was started with: recorded, compared, fingerprinted."""

import os

import numpy as np
import pytest

from fbnet_jax import errors
from fbnet_jax import workdirs


def test_check_names_nested_and_missing_settings():
  recorded = {'seed': 0, 'optim': {'lr': 0.1, 'momentum': 0.9}}
  workdirs.check('w/settings.json', recorded,
                 {'seed': 0, 'optim': {'lr': 0.1}})  # a subset is compared
  with pytest.raises(ValueError, match=r'another optim\.lr, extra than'):
    workdirs.check('w/settings.json', recorded,
                   {'seed': 0, 'optim': {'lr': 0.2}, 'extra': None})


def test_record_or_check(tmp_path):
  path = str(tmp_path / 'run' / 'settings.json')
  with pytest.raises(ValueError, match='holds a checkpoint but no'):
    workdirs.record_or_check(path, {'a': (1, 2)}, resuming=True)
  workdirs.record_or_check(path, {'a': (1, 2)}, resuming=False)
  workdirs.record_or_check(path, {'a': [1, 2]}, resuming=True)  # as JSON
  with pytest.raises(ValueError, match='another a than'):
    workdirs.record_or_check(path, {'a': [1, 3]}, resuming=True)


def test_fingerprint_is_of_the_values_not_their_order():
  a = workdirs.fingerprint({'x': 1, 'y': {'z': (1, 2)}})
  assert a == workdirs.fingerprint({'y': {'z': [1, 2]}, 'x': 1})
  assert a != workdirs.fingerprint({'x': 2, 'y': {'z': [1, 2]}})
  assert len(a) == 8


def test_without_drops_dotted_keys_from_a_copy():
  settings = {'a': 1, 'b': {'c': 2, 'd': 3}}
  assert workdirs.without(settings, ('a', 'b.c', 'b.missing', 'x.y')) == {
      'b': {'d': 3}}
  assert settings == {'a': 1, 'b': {'c': 2, 'd': 3}}


def test_json_written_atomically_and_a_broken_file_named(tmp_path):
  path = str(tmp_path / 'r.json')
  workdirs.write_json(path, {'a': [1, 2]})
  assert workdirs.read_json(path) == {'a': [1, 2]}
  assert sorted(p.name for p in tmp_path.iterdir()) == ['r.json']  # no tmp
  assert workdirs.read_json(str(tmp_path / 'missing.json')) is None
  (tmp_path / 'r.json').write_text('{"a": [1,')  # killed while writing
  with pytest.raises(ValueError, match=r'r\.json: not valid JSON'):
    workdirs.read_json(path)


def test_atomic_open_replaces_whole_or_leaves_the_old_file(tmp_path):
  path = str(tmp_path / 'f.txt')
  with workdirs.atomic_open(path) as f:
    f.write('old')
  with pytest.raises(RuntimeError):
    with workdirs.atomic_open(path) as f:
      f.write('half of the new')
      raise RuntimeError('killed')
  with open(path) as f:
    assert f.read() == 'old'
  assert os.listdir(tmp_path) == ['f.txt']  # no temporary file left


def test_a_half_written_checkpoint_of_a_killed_job_is_removed(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  state = {'w': np.arange(3.0)}
  with workdirs.checkpoint_manager(str(tmp_path), max_to_keep=2) as manager:
    manager.save(1, args=ocp.args.StandardSave(state))
  # What orbax leaves of step 2 when the job is killed while writing it.
  half = tmp_path / 'checkpoints' / '2.orbax-checkpoint-tmp-1733'
  (half / 'default').mkdir(parents=True)
  with workdirs.checkpoint_manager(str(tmp_path), max_to_keep=2) as manager:
    assert manager.latest_step() == 1  # the half-written step is not read
    manager.save(2, args=ocp.args.StandardSave(state))
  assert sorted(p.name for p in (tmp_path / 'checkpoints').iterdir()) == [
      '1', '2']


@pytest.mark.parametrize('saved', [
    {'w': np.arange(3.0)},  # an entry of the state missing (older code)
    {'w': np.arange(4.0), 'b': np.zeros(2)},  # an array of another shape
])
def test_a_checkpoint_of_another_state_is_named(tmp_path, saved):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with workdirs.checkpoint_manager(str(tmp_path), max_to_keep=1) as manager:
    manager.save(3, args=ocp.args.StandardSave(saved))
  state = {'w': np.zeros(3), 'b': np.zeros(2)}
  with workdirs.checkpoint_manager(str(tmp_path), max_to_keep=1) as manager:
    with pytest.raises(errors.InputError, match=r'checkpoints/3: .*this '
                       r"run's state.*start again in a new workdir"):
      workdirs.restore_checkpoint(manager, state)
    manager.save(4, args=ocp.args.StandardSave(state), force=True)
    restored = workdirs.restore_checkpoint(manager, state)
  assert sorted(restored) == ['b', 'w'] and restored['w'].shape == (3,)


def test_quantile_names_round_rather_than_truncate():
  assert [workdirs.quantile_name(q) for q in (0.15, 0.2, 0.5, 0.85)] == [
      'q15', 'q20', 'q50', 'q85']  # the stored studies' folders
  assert workdirs.quantile_name(0.29) != workdirs.quantile_name(0.28)


def test_environment_records_the_convolution_choice_when_set(monkeypatch):
  monkeypatch.delenv('FBNET_JAX_CONV', raising=False)
  default = workdirs.environment()
  assert 'FBNET_JAX_CONV' not in default  # the keys stored runs have
  assert set(default) == {'jax', 'jaxlib', 'backend', 'device_kind', 'cpu'}
  monkeypatch.setenv('FBNET_JAX_CONV', 'auto')  # the default, said
  assert workdirs.environment() == default
  monkeypatch.setenv('FBNET_JAX_CONV', 'xla')
  assert workdirs.environment() == dict(default, FBNET_JAX_CONV='xla')
