"""Bad input is an InputError, which the commands print as one line.

``experiments/cli.py`` turns :class:`fbnet_jax.errors.InputError` (and its
subclasses) into ``error: <message>`` with exit status 2, and lets every other
exception through with its traceback, as a bug. So a check of a setting must
raise an InputError: a plain ValueError naming ``config.<field>`` or
``--flag`` would reach the user as a traceback.
"""

import ast
import pathlib

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
