"""Retraining a found architecture: reads result.json, trains, evaluates."""

import json
import os

import numpy as np
import pytest

from configs import quickstart
from fbnet_jax import errors
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


def test_retraining_is_data_parallel_over_the_devices(tmp_path):
  """The 4 fake CPU devices (conftest) split each batch; the run is the
  one-device run up to float rounding (batch norm sees the whole batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  assert len(jax.local_devices()) == 4
  arch = [8] * 22
  arch[5] = 0
  config = quickstart.get_config('smoke')
  config.retrain.steps_per_epoch = 6
  one = retrain.train_and_evaluate(config, arch, str(tmp_path / 'one'),
                                   progress=False,
                                   devices=jax.local_devices()[:1])
  four = retrain.train_and_evaluate(config, arch, str(tmp_path / 'four'),
                                    progress=False)
  np.testing.assert_allclose([l for _, l in four['train_loss']],
                             [l for _, l in one['train_loss']], rtol=1e-4)
  assert abs(four['accuracy'] - one['accuracy']) <= 1 / 32  # one image
  assert (one['num_devices'], four['num_devices']) == (1, 4)
  # Its checkpoint, saved from the 4-device mesh, loads in a process with
  # one device (export on a smaller machine).
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ('import jax; from configs import quickstart; '
          'from fbnet_jax import retrain; '
          "c = quickstart.get_config('smoke'); c.retrain.steps_per_epoch = 6; "
          f"_, v, step = retrain.load_trained(c, {arch}, "
          f"{str(tmp_path / 'four')!r}); "
          "print(step, len(jax.devices()), len(jax.tree.leaves(v)))")
  proc = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      env={**os.environ, 'JAX_PLATFORMS': 'cpu',
           'XLA_FLAGS': '--xla_force_host_platform_device_count=1'},
      timeout=300, check=True)
  step, devices, leaves = map(int, proc.stdout.split()[-3:])
  assert (step, devices) == (6, 1) and leaves > 10
  config.retrain.batch_size = 18  # not a multiple of 4 devices
  with pytest.raises(errors.InputError, match=r'config\.retrain\.batch_size '
                     r'\(18\) must be a multiple of the device count \(4\)'):
    retrain.train_and_evaluate(config, arch, str(tmp_path / 'bad'),
                               progress=False)


def test_retrain_resumes_only_under_its_own_settings(tmp_path, monkeypatch):
  arch = [8] * 22
  arch[3] = 1
  config = quickstart.get_config('smoke')
  workdir = str(tmp_path / 'w')
  first = retrain.train_and_evaluate(config, arch, workdir, progress=False)
  # A finished run is read back, not retrained; data_dir does not matter.
  build = retrain.build_model
  monkeypatch.setattr(retrain, 'build_model',
                      lambda *a, **k: pytest.fail('retrained again'))
  config.data.data_dir = '/elsewhere'
  assert retrain.train_and_evaluate(config, arch, workdir,
                                    progress=False) == first
  config.seed = 1
  with pytest.raises(ValueError,
                     match='retrain.json: was started with another seed'):
    retrain.train_and_evaluate(config, arch, workdir, progress=False)
  other = list(arch)
  other[4] = 2
  config.seed = 0
  with pytest.raises(ValueError, match='another arch than'):
    retrain.train_and_evaluate(config, other, workdir, progress=False)
  # Without retrain.json it is a run stopped after its last checkpoint:
  # it resumes (no step left) under its settings.json, and only under it.
  monkeypatch.setattr(retrain, 'build_model', build)
  (tmp_path / 'w' / retrain.RESULT_FILE).unlink()
  config.retrain.lr = 0.5
  with pytest.raises(
      ValueError, match='settings.json: was started with another retrain.lr'):
    retrain.train_and_evaluate(config, arch, workdir, progress=False)
  config.retrain.lr = quickstart.get_config('smoke').retrain.lr
  config.retrain.checkpoint_every = 7  # does not change the result
  again = retrain.train_and_evaluate(config, arch, workdir, progress=False)
  assert again['accuracy'] == first['accuracy']
  # Nothing was left to train; the curve is the first run's, from its log.
  assert again['train_loss'] == first['train_loss']
  assert again['resumed_at_steps'] == [first['steps']]
  (tmp_path / 'w' / retrain.SETTINGS_FILE).unlink()
  (tmp_path / 'w' / retrain.RESULT_FILE).unlink()
  with pytest.raises(ValueError,
                     match='holds a checkpoint but no settings.json'):
    retrain.train_and_evaluate(config, arch, workdir, progress=False)


def test_interrupted_retrain_resumes_to_the_same_result(tmp_path,
                                                        monkeypatch):
  arch = [8] * 22
  arch[5] = 0
  config = quickstart.get_config('smoke')
  config.retrain.steps_per_epoch = 12
  config.retrain.checkpoint_every = 5
  whole = retrain.train_and_evaluate(config, arch, str(tmp_path / 'whole'),
                                     progress=False)
  assert whole['resumed_at_steps'] == []
  batches = retrain.data_lib.train_batches

  def killed_after_7(*args, **kwargs):
    for i, batch in enumerate(batches(*args, **kwargs)):
      if i == 7:
        raise KeyboardInterrupt  # killed between checkpoints 5 and 10
      yield batch

  monkeypatch.setattr(retrain.data_lib, 'train_batches', killed_after_7)
  workdir = str(tmp_path / 'killed')
  with pytest.raises(KeyboardInterrupt):
    retrain.train_and_evaluate(config, arch, workdir, progress=False)
  monkeypatch.setattr(retrain.data_lib, 'train_batches', batches)
  resumed = retrain.train_and_evaluate(config, arch, workdir, progress=False)
  assert resumed['resumed_at_steps'] == [5]
  assert resumed['accuracy'] == whole['accuracy']
  # The whole curve: step 0 from the log written with checkpoint 5, steps
  # 10 and 11 trained after the resume.
  assert [s for s, _ in resumed['train_loss']] == [0, 10, 11]
  np.testing.assert_allclose(resumed['train_loss'], whole['train_loss'],
                             rtol=1e-5)
  assert resumed['train_seconds'] > 0
  assert resumed['input_size'] == whole['input_size'] == 8  # digits


def test_a_retraining_that_cannot_start_leaves_its_workdir_free(
    tmp_path, monkeypatch):
  """A dataset that is not prepared fails before settings.json is written;
  a workdir left with an empty checkpoints/ by an older version is a fresh
  start, not a resume under the other settings."""
  from fbnet_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from fbnet_jax import initializers  # pylint: disable=g-import-not-at-top
  arch = [8] * 22
  config = quickstart.get_config('smoke')
  config.data.update(name='cifar10', data_dir=str(tmp_path / 'no_data'))
  workdir = tmp_path / 'w'
  with pytest.raises(data_lib.DatasetNotPreparedError, match='cifar10'):
    retrain.train_and_evaluate(config, arch, str(workdir), progress=False)
  assert not (workdir / retrain.SETTINGS_FILE).exists()
  (workdir / 'checkpoints').mkdir(parents=True)
  (workdir / retrain.SETTINGS_FILE).write_text(json.dumps({'seed': 7}))

  class Started(Exception):
    pass

  def stop(*args, **kwargs):
    raise Started
  monkeypatch.setattr(initializers, 'fast_init', stop)
  with pytest.raises(Started):  # past the settings check: a fresh start
    retrain.train_and_evaluate(quickstart.get_config('smoke'), arch,
                               str(workdir), progress=False)
  recorded = json.loads((workdir / retrain.SETTINGS_FILE).read_text())
  assert recorded['seed'] == 0


def test_bad_result_json_is_a_clear_error(tmp_path):
  path = tmp_path / 'result.json'
  path.write_text(json.dumps({'space': 'fbnet'}))
  with pytest.raises(ValueError, match="field 'arch_index' missing"):
    retrain.load_arch(str(path))


def test_load_arch_names_the_file_and_field_of_a_bad_result(tmp_path):
  path = tmp_path / 'result.json'

  def rejects(content, match):
    path.write_text(content if isinstance(content, str) else
                    json.dumps(content))
    with pytest.raises(ValueError, match=match):
      retrain.load_arch(str(path))

  arch = [8] * 22
  rejects({'space': 'fbnet', 'arch_index': arch[:21]},
          r'result.json: field arch_index: a fbnet architecture has 22 units,'
          r' got shape \(21,\)')
  rejects({'space': 'fbnet', 'arch_index': 'k3_e1'},
          r"result.json: field arch_index is 'k3_e1'; expected a list of 22 "
          'fbnet choice indices')
  rejects({'space': 'fbnet', 'arch_index': arch[:-1] + [9]},
          r'result.json: field arch_index: unit 21 \(layer21\) has choice '
          'index 9')
  rejects({'space': 'fbnet', 'arch_index': arch[:-1] + [1.5]},
          'result.json: field arch_index is .*; expected a list of 22')
  rejects({'space': 'resnet', 'arch_index': arch},
          "result.json: field space is 'resnet'; expected one of fbnet")
  rejects({'space': 'fbnet', 'macro': 'tiny', 'arch_index': arch},
          "result.json: field macro is 'tiny'; expected one of cifar")
  rejects('{"space": "fbnet", ', r'result.json: not a JSON file')
  rejects([arch], 'result.json: holds a JSON list')
  rejects({'space': 'fbnet', 'arch_index': arch,
           'arch': ['skip'] * 21 + ['k3_e1']},
          r'result.json: fields arch and arch_index name different '
          r"architectures \(1 unit differs, first unit 21: arch 'k3_e1', "
          r"arch_index 8 = 'skip'\)")
  rejects({'space': 'fbnet', 'arch_index': arch, 'arch': 'skip'},
          "arch is 'skip', expected a list of 22 op names")
  path.write_text(json.dumps({'space': 'fbnet', 'arch_index': arch,
                              'arch': ['skip'] * 22}))
  assert retrain.load_arch(str(path))[0] == arch  # the same architecture
  with pytest.raises(ValueError, match=r'is a folder; expected the '
                     r'result.json that experiments.search wrote \(e.g. '
                     r'.*/result.json\)'):
    retrain.load_arch(str(tmp_path))
  with pytest.raises(errors.InputError, match=r'missing.json: no such file; '
                     'expected the result.json that experiments.search'):
    retrain.load_arch(str(tmp_path / 'missing.json'))


def test_load_arch_checks_space_and_macro_against_the_config(tmp_path):
  config = quickstart.get_config('smoke')  # fbnet, cifar macro
  arch = [8] * 22
  path = tmp_path / 'result.json'
  for macro in ('cifar', '', None):  # None: a file from before the field
    result = {'space': 'fbnet', 'arch_index': arch}
    if macro is not None:
      result['macro'] = macro
    path.write_text(json.dumps(result))
    assert retrain.load_arch(str(path), config)[0] == arch
  path.write_text(json.dumps({'space': 'fbnet', 'macro': 'imagenet',
                              'arch_index': arch}))
  with pytest.raises(ValueError, match="result.json: field macro is "
                     "'imagenet', the config's is 'cifar'"):
    retrain.load_arch(str(path), config)
  config.macro = 'imagenet'
  assert retrain.load_arch(str(path), config)[0] == arch
  ofa = spaces.get_space('ofa').sample(np.random.default_rng(0), 1)[0]
  path.write_text(json.dumps({'space': 'ofa', 'macro': '',
                              'arch_index': [int(a) for a in ofa]}))
  with pytest.raises(ValueError, match="result.json: field space is 'ofa', "
                     "the config's is 'fbnet'"):
    retrain.load_arch(str(path), config)
  # The space that names an OFA result's architecture (its macro is '';
  # experiments.train prints the names with it).
  ofa_result = json.loads(path.read_text())
  assert retrain.result_space(str(path), ofa_result).names(
      ofa_result['arch_index']) == spaces.get_space('ofa').names(ofa)


def test_train_cli_checks_the_result_before_writing(tmp_path):
  """experiments.train: a bad result.json (another length or macro network,
  not JSON, a folder) is one line naming the file and field, exit status 2,
  before the workdir is written."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  arch = [8] * 22
  for name, result, error in [
      ('short', {'space': 'fbnet', 'arch_index': arch[:21]},
       'short.json: field arch_index: a fbnet architecture has 22 units'),
      ('imagenet', {'space': 'fbnet', 'macro': 'imagenet', 'arch_index': arch},
       "imagenet.json: field macro is 'imagenet', the config's is 'cifar'"),
      ('text', 'k3_e1 skip', 'text.json: not a JSON file'),
      ('folder', None, 'folder.json: is a folder')]:
    path = tmp_path / f'{name}.json'
    if result is None:
      path.mkdir()
    else:
      path.write_text(result if isinstance(result, str) else
                      json.dumps(result))
    workdir = tmp_path / f'w_{name}'
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.train', f'--arch={path}',
         '--config=configs/quickstart.py:smoke', f'--workdir={workdir}'],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f'error: {path}' in proc.stderr and error in proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert not workdir.exists()


def test_found_vs_random_refuses_an_arch_outside_the_searched_ops(tmp_path):
  from fbnet_jax import studies  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'result.json'
  path.write_text(json.dumps({'space': 'fbnet', 'arch_index': [7] * 22}))
  config = quickstart.get_config('smoke')  # ops k3_e1 and skip
  with pytest.raises(errors.InputError,
                     match=r"result\.json: field arch uses \['k5_e6'\], "
                     r'outside config\.search\.ops'):
    studies.found_vs_random(config, str(path), str(tmp_path / 'cmp'))
  assert not (tmp_path / 'cmp').exists()
  # The lookup tables are the CIFAR macro network's: an ImageNet search's
  # latency cannot be matched by them.
  config.macro = 'imagenet'
  with pytest.raises(errors.InputError, match=r"config\.space, config\.macro: "
                     r"'fbnet', 'imagenet'; expected 'fbnet', 'cifar'"):
    studies.found_vs_random(config, str(path), str(tmp_path / 'cmp'))
  assert not (tmp_path / 'cmp').exists()


def test_found_vs_random_seeds_test_and_resume(tmp_path, monkeypatch):
  """Seeds per architecture, the Welch test's fields, the plot, and a second
  call that reads every finished run back instead of retraining."""
  from fbnet_jax import studies  # pylint: disable=g-import-not-at-top
  space = spaces.get_space('fbnet')
  found = [8] * 22
  found[5] = 0
  path = tmp_path / 'result.json'
  path.write_text(json.dumps({'space': 'fbnet', 'arch_index': found}))
  # Uniformly random architectures at a found arch's latency have many real
  # blocks and compile for minutes; two other one-block ones stand in.
  others = np.array([[8] * 22, [8] * 22])
  others[0, 3], others[1, 7] = 0, 1
  monkeypatch.setattr(studies, 'random_archs_at_latency',
                      lambda device, lat, n, seed, ops: others[:n])
  config = quickstart.get_config('smoke')
  root = str(tmp_path / 'cmp')
  out = studies.found_vs_random(config, str(path), root, num_random=2,
                                seeds=1, found_seeds=2)
  assert out['found']['seeds'] == [0, 1]
  assert [len(r['seed_accuracies']) for r in out['random']] == [1, 1]
  assert out['found']['accuracy'] == pytest.approx(
      np.mean(out['found']['seed_accuracies']))
  assert out['found']['accuracy_std'] == pytest.approx(
      np.std(out['found']['seed_accuracies'], ddof=1))
  assert out['random'][0]['accuracy_std'] is None  # one seed: no spread
  assert out['random_mean'] == pytest.approx(
      np.mean([r['accuracy'] for r in out['random']]))
  assert out['found_rank'] == 1 + sum(
      r['accuracy'] > out['found']['accuracy'] + 1e-9 for r in out['random'])
  assert out['num_archs'] == 3
  assert out['random'][1]['arch'] == space.names(others[1])
  assert set(out['welch']) == {'t', 'p_two_sided', 'ci95_found_minus_random'}
  assert (tmp_path / 'cmp' / 'found_vs_random.png').stat().st_size > 0
  curves = [json.loads((tmp_path / 'cmp' / 'found' / f'seed{s}' /
                        retrain.RESULT_FILE).read_text())['train_loss']
            for s in (0, 1)]
  assert curves[0] != curves[1]  # the seed changes the initialisation
  # Finished runs are read back: poison retraining and call again.
  monkeypatch.setattr(retrain, 'build_model',
                      lambda *a, **k: pytest.fail('retrained again'))
  again = studies.found_vs_random(config, str(path), root, num_random=2,
                                  seeds=1, found_seeds=2)
  assert again['found']['seed_accuracies'] == out['found'][
      'seed_accuracies']
  with pytest.raises(ValueError, match='at least 1'):
    studies.found_vs_random(config, str(path), root, seeds=0)
  with pytest.raises(ValueError, match='num_random=0.*at least 1'):
    studies.found_vs_random(config, str(path), root, num_random=0)
  # Random architectures at the found one's latency on the search's device.
  other = tmp_path / 'fpga.json'
  other.write_text(json.dumps({'space': 'fbnet', 'device': 'fpga',
                               'arch_index': found}))
  with pytest.raises(ValueError, match="field device is 'fpga', "
                     "config.latency.device is 'raspi4'.*device=fpga"):
    studies.found_vs_random(config, str(other), root)
  other.write_text(json.dumps({'space': 'fbnet', 'device': 'runs/mine.npz',
                               'arch_index': found}))
  with pytest.raises(ValueError, match='mine.npz.*a search on a device file'):
    studies.found_vs_random(config, str(other), root)
  # Which jax, backend and CPU the retrainings ran on (one here).
  assert [set(e) for e in out['environments']] == [
      {'jax', 'jaxlib', 'backend', 'device_kind', 'cpu'}]
  # Another retraining setting in the same workdir is an error, not a reuse.
  config.retrain.lr = 0.5
  with pytest.raises(ValueError, match='another retrain.lr than'):
    studies.found_vs_random(config, str(path), root, num_random=2, seeds=1,
                            found_seeds=2)


def test_pool_found_vs_random_hand_checked():
  from fbnet_jax import studies  # pylint: disable=g-import-not-at-top
  from scipy import stats  # pylint: disable=g-import-not-at-top
  one = {'found': {'seed_accuracies': [0.90, 1.00]},
         'random': [{'accuracy': 0.90}]}
  two = {'found': {'seed_accuracies': [0.96, 0.96]},
         'random': [{'accuracy': 0.80}, {'accuracy': 0.85}]}
  three = {'found': {'seed_accuracies': [0.92, 0.92]},
           'random': [{'accuracy': 0.90}]}
  out = studies.pool_found_vs_random([one, two, three])
  assert (out['num_searches'], out['num_found_runs'],
          out['num_random_archs']) == (3, 6, 4)
  assert out['found_mean'] == pytest.approx(5.66 / 6)
  assert out['random_mean'] == pytest.approx(0.8625)
  # Per search: 0.95 - 0.90, 0.96 - 0.825, 0.92 - 0.90.
  assert out['per_search_found_minus_random'] == pytest.approx(
      [0.05, 0.135, 0.02])
  assert out['mean_found_minus_random'] == pytest.approx(0.205 / 3)
  # Paired over searches by hand: differences 0.05, 0.135, 0.02.
  d = np.array([0.05, 0.135, 0.02])
  sd = np.sqrt(np.sum((d - d.mean())**2) / 2)
  t = d.mean() / (sd / np.sqrt(3))
  assert out['paired']['t'] == pytest.approx(t)
  assert out['paired']['p_two_sided'] == pytest.approx(2 * stats.t.sf(t, 2))
  half = stats.t.ppf(0.975, 2) * sd / np.sqrt(3)
  assert out['paired']['ci95_found_minus_random'] == pytest.approx(
      [d.mean() - half, d.mean() + half])
  # All three ahead: two-sided binomial p = 2 / 2**3.
  assert out['sign'] == {'ahead': 3, 'untied': 3,
                         'p_two_sided': pytest.approx(0.25)}
  assert out['shared_random_archs'] == 0
  # Two studies that retrained one random architecture are not independent.
  one['random'][0]['arch'] = two['random'][1]['arch'] = ['skip'] * 22
  assert studies.pool_found_vs_random(
      [one, two, three])['shared_random_archs'] == 1
  # Every seed, Welch by hand: found 0.90 1.00 0.96 0.96 0.92 0.92, random
  # means 0.90 0.80 0.85 0.90.
  f = np.array([0.90, 1.00, 0.96, 0.96, 0.92, 0.92])
  r = np.array([0.90, 0.80, 0.85, 0.90])
  vf, vr = f.var(ddof=1) / 6, r.var(ddof=1) / 4
  t = (f.mean() - r.mean()) / np.sqrt(vf + vr)
  df = (vf + vr)**2 / (vf**2 / 5 + vr**2 / 3)
  assert out['welch_seeds']['t'] == pytest.approx(t)
  assert out['welch_seeds']['p_two_sided'] == pytest.approx(
      2 * stats.t.sf(t, df))
  # A tie (found 0.90 = random 0.90) is left out of the sign test.
  tie = {'found': {'seed_accuracies': [0.90, 0.90]},
         'random': [{'accuracy': 0.90}]}
  sign = studies.pool_found_vs_random([one, two, tie])['sign']
  assert sign == {'ahead': 2, 'untied': 2, 'p_two_sided': pytest.approx(0.5)}
  # ... also where the float means differ by rounding alone.
  tie = {'found': {'seed_accuracies': [0.1, 0.2, 0.3]},
         'random': [{'accuracy': 0.2}]}
  assert np.mean([0.1, 0.2, 0.3]) != 0.2  # 0.20000000000000004
  sign = studies.pool_found_vs_random([one, two, tie])['sign']
  assert (sign['ahead'], sign['untied']) == (2, 2)
