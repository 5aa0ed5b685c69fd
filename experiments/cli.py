"""What the entry points share: bad input as one line, not a traceback."""

import logging as py_logging
import os
import sys
import traceback

from absl import app
from absl import logging

from fbnet_jax import errors

# The project's error for what a user gave it (errors.InputError: a bad
# setting, file or workdir; the message names it and what was expected),
# and files that are not there (a dataset not prepared,
# fbnet_jax.data.DatasetNotPreparedError, among them).
USER_ERRORS = (errors.InputError, FileNotFoundError)


def is_user_error(e: BaseException) -> bool:
  """One of :data:`USER_ERRORS`, or a missing optional extra (an
  ImportError that says what to install). Every check of a setting raises
  an InputError (``tests/test_errors.py`` holds the code to it)."""
  if isinstance(e, USER_ERRORS):
    return True
  return isinstance(e, ImportError) and 'pip install' in str(e)


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO lines of libraries that log every step of their own
  (orbax: several lines per checkpoint saved or restored); their warnings
  and errors pass."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return (record.levelno >= py_logging.WARNING or
            f'{os.sep}orbax{os.sep}' not in record.pathname)


def _unknown_config_field(kind, value, tb) -> None:
  """``sys.excepthook``: a ``--config.<field>`` that the config does not
  have, as one line. ml_collections applies the overrides while the entry
  point defines its ``--config`` flag, at import, before :func:`run`; it
  raises an AttributeError (or KeyError) naming the field, with a "did you
  mean" where one is close."""
  frames = traceback.extract_tb(tb)
  if (issubclass(kind, (AttributeError, KeyError)) and
      not os.environ.get('FBNET_JAX_TRACEBACK') and
      any(f'{os.sep}config_flags{os.sep}' in f.filename for f in frames)):
    message = value
    while isinstance(message, BaseException):  # AttributeError(KeyError(s))
      message = message.args[0] if message.args else ''
    field, *hint = str(message).split('\n')
    field = field.strip('\'"')
    flag = next((a.split('=')[0] for a in sys.argv[1:]
                 if a.startswith('--config.') and
                 field in a.split('=')[0].split('.')), '--config.' + field)
    sys.stderr.write(f'error: {flag}: the config has no field {field!r}'
                     f'{"; " + hint[0][:1].lower() + hint[0][1:] if hint else ""}'
                     '\n')
    sys.stderr.flush()
    os._exit(2)  # pylint: disable=protected-access
  sys.__excepthook__(kind, value, tb)


sys.excepthook = _unknown_config_field


def run(main) -> None:
  """``absl.app.run(main)``; an error of bad input (:func:`is_user_error`)
  is printed as one line on stderr and exits with status 2
  (``FBNET_JAX_TRACEBACK=1``: the traceback instead). Orbax's INFO lines
  are left out of the console."""

  def checked(argv):
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      if not is_user_error(e) or os.environ.get('FBNET_JAX_TRACEBACK'):
        raise
      sys.stderr.write(f'error: {e}\n')
      sys.exit(2)

  app.run(checked)
