"""Bad input is an InputError, which the commands print as one line.

``experiments/cli.py`` turns :class:`fbnet_jax.errors.InputError` (and its
subclasses) into ``error: <message>`` with exit status 2, and lets every other
exception through with its traceback, as a bug. So a check of a setting must
raise an InputError: a plain ValueError naming ``config.<field>`` or
``--flag`` would reach the user as a traceback.
"""

import ast
import inspect
import pathlib
from unittest import mock

import ml_collections
import numpy as np
import pytest

from experiments import cli
from fbnet_jax import data
from fbnet_jax import errors
from fbnet_jax import spaces

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETTING_PREFIXES = ('config.', '--', 'MeasureConfig.')


def _leading_text(node: ast.expr):
  """The literal text a message expression starts with, if it has one."""
  if isinstance(node, ast.Constant) and isinstance(node.value, str):
    return node.value
  if isinstance(node, ast.JoinedStr) and node.values:
    return _leading_text(node.values[0])
  if isinstance(node, ast.BinOp):
    return _leading_text(node.left)
  return None


def _plain_value_errors_naming_a_setting(root=ROOT):
  for package in ('fbnet_jax', 'meta', 'experiments'):
    for path in sorted((root / package).rglob('*.py')):
      for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Raise) and
                isinstance(node.exc, ast.Call) and
                isinstance(node.exc.func, ast.Name) and
                node.exc.func.id == 'ValueError' and node.exc.args):
          continue
        text = _leading_text(node.exc.args[0])
        if text is not None and text.startswith(SETTING_PREFIXES):
          yield f'{path.relative_to(root)}:{node.lineno}: {text[:40]!r}'


def test_the_scan_finds_a_plain_value_error_naming_a_setting(tmp_path):
  for package in ('fbnet_jax', 'meta', 'experiments'):
    (tmp_path / package).mkdir()
  (tmp_path / 'meta' / 'bad.py').write_text(
      "def f(x):\n  if x:\n    raise ValueError(f'--x={x}: bad.')\n"
      "  raise errors.InputError('config.x: fine.')\n")
  assert list(_plain_value_errors_naming_a_setting(tmp_path)) == [
      "meta/bad.py:3: '--x='"]


def test_every_check_of_a_setting_raises_an_input_error():
  assert not list(_plain_value_errors_naming_a_setting())


@pytest.mark.parametrize('make, field', [
    (lambda: data.dataset_info('mnist'), 'config.data.name'),
    (lambda: spaces.space_for('fbnet', 'tiny'), 'config.macro'),
    (lambda: spaces.space_for('darts'), 'config.space'),
])
def test_bad_settings_are_input_errors_that_name_the_field(make, field):
  with pytest.raises(errors.InputError, match=field) as info:
    make()
  assert cli.is_user_error(info.value)


def test_other_errors_are_bugs_with_a_traceback():
  assert not cli.is_user_error(ValueError('config.x: a ValueError, not an '
                                          'InputError'))


def test_bounds_say_what_they_expect():
  config = ml_collections.ConfigDict(
      {'a': 0, 'opt': {'lr': 0.0, 'decay': 1.0}, 'limit': None, 'on': True})
  cases = [
      (errors.Bound('a', 1, integer=True), 'config.a: expected a whole number '
       '>= 1, got 0.'),
      (errors.Bound('opt.lr', 0, open_low=True), 'config.opt.lr: expected a '
       'number > 0, got 0.0.'),
      (errors.Bound('opt.decay', 0, 1, open_high=True), 'config.opt.decay: '
       'expected a number in [0, 1), got 1.0.'),
      (errors.Bound('on', 0), 'config.on: expected a number >= 0, got True.'),
  ]
  for bound, message in cases:
    with pytest.raises(errors.InputError) as info:
      errors.check_bounds(config, [bound])
    assert str(info.value) == message
  errors.check_bounds(config, [
      errors.Bound('limit', 1, integer=True, none_ok=True),  # None: default
      errors.Bound('opt.decay', 0, 1),
      errors.Bound('not_in_this_config', 1)])


@pytest.mark.parametrize('field, value', [
    ('batch_size', 0), ('epochs', 0), ('search.tau_decay', 0.0),
    ('search.warmup_epochs', -1), ('optim.weight_lr', -1.0),
    # numpy's default_rng refuses a negative seed with its own traceback.
    ('seed', -1), ('latency.seed', -1),
])
def test_a_search_refuses_settings_that_would_crash_or_train_nothing(
    field, value):
  # Each of these used to crash deep inside (batch_size 0: a division by
  # zero), run without a step (epochs 0), or train on NaN (tau_decay 0:
  # temperature 0) or backwards (a negative learning rate).
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  parent, _, key = ('.' + field).rpartition('.')
  node = config
  for part in filter(None, parent.split('.')):
    node = node[part]
  node[key] = value
  with pytest.raises(errors.InputError, match=rf'^config\.{field}: expected'):
    searcher_lib.Searcher(config)


def test_a_negative_seed_is_refused_before_anything_is_written(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import retrain  # pylint: disable=g-import-not-at-top
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.seed = -1
  with pytest.raises(errors.InputError, match=r'^config\.seed: expected a '
                     r'whole number >= 0, got -1'):
    search.train_and_evaluate(config, str(tmp_path / 's'), progress=False)
  with pytest.raises(errors.InputError, match=r'^config\.seed: expected'):
    retrain.train_and_evaluate(config, [0] * 22, str(tmp_path / 'r'),
                               progress=False)
  assert not list(tmp_path.iterdir())


def test_the_config_flag_named_is_the_one_absl_takes():
  with mock.patch('sys.argv', ['x', '--config=configs/a.py', '--devices=a',
                               '--config', 'configs/b.py:smoke']):
    assert cli._config_arg() == '--config=configs/b.py:smoke'  # pylint: disable=protected-access
  with mock.patch('sys.argv', ['x']):
    assert cli._config_arg() == '--config'  # pylint: disable=protected-access


def test_a_search_refuses_a_latency_unit_before_writing(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.loss.form = 'fbnet'
  config.loss.unit_ms = 100.0  # log(LAT / unit) <= 0 for the fastest arch
  with pytest.raises(errors.InputError, match=r'config\.loss\.unit_ms'):
    search.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  assert not (tmp_path / 'w').exists()  # refused before writing
  # A weights-only run (the evolve configs' supernet) never uses the loss:
  # it gets past the check (to the checkpoints, stopped there).
  config.search.warmup_epochs = config.epochs

  class Reached(Exception):
    pass

  def stop(*args, **kwargs):
    raise Reached

  with mock.patch.object(search, 'checkpoint_manager', stop):
    with pytest.raises(Reached):
      search.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)


def test_a_retraining_refuses_an_evaluation_limit_before_training(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import retrain  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.data.eval_limit = 0  # used to fail only after the whole training
  with pytest.raises(errors.InputError, match=r'^config\.data\.eval_limit'):
    retrain.train_and_evaluate(config, np.zeros(22, np.int32),
                               str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()  # refused before writing


def test_refused_loops_leave_no_workdir(tmp_path):
  # Each was refused only after its workdir was made (an empty folder left),
  # or named a setting the user did not set.
  from configs import closed_loop as closed_loop_config  # pylint: disable=g-import-not-at-top
  from configs import evolve_quick  # pylint: disable=g-import-not-at-top
  from fbnet_jax import closed_loop  # pylint: disable=g-import-not-at-top
  from fbnet_jax import evolve  # pylint: disable=g-import-not-at-top
  config = closed_loop_config.get_config('smoke')
  config.latency.device_file = ''
  with pytest.raises(errors.InputError,
                     match=r'^config\.latency\.device_file: empty'):
    closed_loop.run(config, str(tmp_path / 'loop'))
  config = closed_loop_config.get_config('smoke')
  config.measure.runtime = 'tpu'
  with pytest.raises(errors.InputError, match=r'^config\.measure\.runtime'):
    closed_loop.run(config, str(tmp_path / 'loop'))
  config = evolve_quick.get_config('smoke')
  config.latency.device = 'nope'
  with pytest.raises(errors.InputError, match=r'^config\.latency\.device'):
    evolve.run(config, str(tmp_path / 'evolve'), progress=False)
  config = closed_loop_config.get_config('smoke')
  config.latency.adapted_dir = str(tmp_path / 'nothing')
  config.latency.device_file = ''
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.InputError,
                     match=r'^config\.latency\.adapted_dir: .*experiments'
                     r'\.adapt'):
    searcher_lib.Searcher(config)
  assert not list(tmp_path.iterdir())


def test_a_saved_predictor_is_not_silently_ignored(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')  # source 'lut'
  config.latency.adapted_dir = str(tmp_path / 'adapted')
  with pytest.raises(errors.InputError, match=r"^config\.latency\.adapted_dir: "
                     r"needs config\.latency\.source='predictor'"):
    latency.latency_source(config)
  config.latency.source = 'predictor'
  config.latency.device_file = str(tmp_path / 'mine.npz')
  with pytest.raises(errors.InputError, match=r'adapted_dir, config\.latency'
                     r'\.device_file: both name the device'):
    latency.latency_source(config)


def test_an_unknown_bundled_device_names_its_setting(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top
  from meta import meta_test  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.latency.update(source='predictor', device='raspi5')
  with pytest.raises(errors.InputError, match=r"^config\.latency\.device: "
                     r"Unknown device 'raspi5'.*did you mean 'raspi4'"):
    latency.latency_source(config)
  # The same device file twice: said as such (not as two devices that
  # share a name).
  with pytest.raises(errors.InputError, match=r'^--device_file: .*x\.npz given '
                     'more than once'):
    meta_test.load_devices('fbnet', [str(tmp_path / 'x.npz')] * 2)
  from configs import help_fbnet  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match=r'^--predictor_dir=.*nopred: '
                     'no such folder; expected a meta-trained predictor'):
    meta_test.run(help_fbnet.get_config('smoke'), str(tmp_path / 'w'),
                  predictor_dir=str(tmp_path / 'nopred'))
  assert not (tmp_path / 'w').exists()


def test_meta_training_refuses_an_empty_episode(tmp_path):
  from configs import help_fbnet  # pylint: disable=g-import-not-at-top
  from meta import train  # pylint: disable=g-import-not-at-top
  config = help_fbnet.get_config('smoke')
  config.meta.tasks_per_episode = 0  # used to train on a NaN loss
  with pytest.raises(errors.InputError,
                     match=r'config\.meta\.tasks_per_episode'):
    train.train_and_evaluate(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()  # refused before writing


def test_every_bundled_config_is_within_its_bounds():
  import importlib  # pylint: disable=g-import-not-at-top
  from fbnet_jax import evolve  # pylint: disable=g-import-not-at-top
  from fbnet_jax import retrain  # pylint: disable=g-import-not-at-top
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  from meta import train  # pylint: disable=g-import-not-at-top
  checked = 0
  for path in sorted((ROOT / 'configs').glob('*.py')):
    module = importlib.import_module(f'configs.{path.stem}')
    if not hasattr(module, 'get_config'):
      continue
    takes_variant = bool(inspect.signature(module.get_config).parameters)
    for variant in ('', 'smoke') if takes_variant else (None,):
      config = (module.get_config(variant) if takes_variant else
                module.get_config())
      bounds = (train.BOUNDS if 'meta' in config else
                searcher_lib.BOUNDS + retrain.BOUNDS +
                (evolve.BOUNDS if 'evolve' in config else ()))
      errors.check_bounds(config, bounds)
      checked += 1
  assert checked >= 18


@pytest.mark.parametrize('name', [
    'quickstart', 'latency_control', 'fbnet_cifar100', 'ofa_imagenet',
    'evolve_quick', 'evolve_fbnet_cifar100', 'evolve_ofa',
    'evolve_nasbench201'])
def test_every_bundled_search_config_builds_its_searcher(name):
  """Each config a user runs as it is (its default variant) passes the
  checks its command makes before training: the searcher (settings, ops,
  schedule, latency source) and, for evolve, config.evolve. Configs that
  need a file of the user's (fbnet_imagenet, closed_loop) are left out."""
  import importlib  # pylint: disable=g-import-not-at-top
  from fbnet_jax import evolve  # pylint: disable=g-import-not-at-top
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f'configs.{name}').get_config()
  if 'evolve' in config:
    evolve.check_config(config)
  searcher = searcher_lib.Searcher(config)
  assert searcher.total_steps > 0
  assert searcher.latency.name.startswith(
      'lut:' if config.latency.source == 'lut' else 'predictor:')


@pytest.mark.parametrize('job, flag, message', [
    ('search', '--config.batchsize=8', "error: --config.batchsize: the "
     'config has no field \'batchsize\'; did you mean "batch_size" instead '
     'of "batchsize"?'),
    # The name for a field that the HELP configs keep in a section
    # (ml_collections would suggest the top-level 'seed': another setting).
    ('meta_test', '--config.seeds=3', "error: --config.seeds: the config has "
     "no field 'seeds'; did you mean --config.eval.seeds?"),
    # A device file with the table source: what to set, before the file's
    # absence is reported.
    ('search', '--config.latency.device_file=nope.npz', 'error: '
     "config.latency.device_file: needs config.latency.source='predictor' (a "
     'file has no table; set it, or use configs/closed_loop.py, which '
     'measures the file if it is missing, adapts, searches and verifies).'),
    ('search', '--config=configs/nope.py', 'error: --config=configs/nope.py: cannot '
     "load the config file ([Errno 2] No such file or directory: "
     "'configs/nope.py'); expected a configs/<name>.py with get_config()."),
    ('search', '--config=configs/__init__.py', 'error: --config=configs/__init__.py: '
     'the file defines no get_config(); expected a configs/<name>.py with '
     'get_config().'),
    # A config of another command (an AttributeError deep in the job before).
    ('search', '--config=configs/help_fbnet.py', 'error: '
     '--config=configs/help_fbnet.py: a meta-training config, without the '
     'section(s) search, latency, data; experiments.search expects a search '
     'config (configs/quickstart.py, fbnet_cifar100.py, fbnet_imagenet.py, '
     'ofa_imagenet.py, latency_control.py or closed_loop.py).'),
    ('evolve', '--config=configs/quickstart.py', 'error: '
     '--config=configs/quickstart.py: a search config, without the '
     'section(s) evolve; experiments.evolve expects an evolve config '
     '(configs/evolve_quick.py or another configs/evolve_*.py).'),
    # Errors absl raises while parsing flags (FATAL and status 1 before).
    ('search', '--config.latency.target_ms=abc', 'error: '
     "--config.latency.target_ms=abc: could not convert string to float: "
     "'abc'"),
    ('search', '--config=configs/closed_loop.py:foo', 'error: '
     "--config=configs/closed_loop.py:foo: Unknown variant 'foo'; expected "
     'smoke.'),
    ('search', '--config=configs/fbnet_cifar100.py:foo', 'error: '
     '--config=configs/fbnet_cifar100.py:foo: configs/fbnet_cifar100.py has '
     'no variants; expected --config=configs/fbnet_cifar100.py without '
     '":foo".'),
])
def test_a_bad_config_flag_is_one_line(job, flag, message):
  # ml_collections raises these from its own code (an unknown field at
  # import, before absl's app.run; a file it cannot load where main reads
  # the config): 20-40 lines of traceback before.
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  proc = subprocess.run(
      [sys.executable, '-m', f'experiments.{job}', flag, '--workdir=unused'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
      env={k: v for k, v in os.environ.items() if k != 'FBNET_JAX_TRACEBACK'})
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == message
  assert 'Traceback' not in proc.stderr


def test_the_harness_refuses_a_batch_of_nothing_named_as_the_user_set_it():
  # --batch_size=0 used to time empty batches and write the device file;
  # a negative time budget or spread bound ran too.
  from configs import closed_loop as closed_loop_config  # pylint: disable=g-import-not-at-top
  from fbnet_jax import closed_loop  # pylint: disable=g-import-not-at-top
  from fbnet_jax import measure  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.InputError, match=r'^MeasureConfig\.batch_size: '
                     r'expected a whole number >= 1, got 0\.$'):
    measure.MeasureConfig(batch_size=0)
  with pytest.raises(errors.InputError, match=r'^MeasureConfig\.time_budget'):
    measure.MeasureConfig(time_budget_s=-1.0)
  config = closed_loop_config.get_config('smoke')
  config.measure.spread_bound = -0.5
  with pytest.raises(errors.InputError,
                     match=r'^config\.measure\.spread_bound: expected'):
    closed_loop.measure_config(config)
  config = closed_loop_config.get_config('smoke')
  config.measure.verify_sessions = 0  # was refused only after measuring
  with pytest.raises(errors.InputError,
                     match=r'^config\.measure\.verify_sessions: expected'):
    closed_loop.measure_config(config)


def test_a_predictor_source_without_a_device_says_what_to_set():
  from configs import fbnet_imagenet  # pylint: disable=g-import-not-at-top
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top
  config = fbnet_imagenet.get_config()  # device and device_file both ''
  with pytest.raises(errors.InputError, match=r'^config\.latency\.device, '
                     r'config\.latency\.device_file: neither is set'):
    latency.latency_source(config)
