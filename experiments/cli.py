"""What the entry points share: bad input as one line, not a traceback."""

import logging as py_logging
import os
import sys
import traceback
from typing import Optional

from absl import app
from absl import flags
from absl import logging

from fbnet_jax import errors
from fbnet_jax import workdirs

# The project's error for what a user gave it (errors.InputError: a bad
# setting, file or workdir; the message names it and what was expected),
# and files that are not there (a dataset not prepared,
# fbnet_jax.data.DatasetNotPreparedError, among them).
USER_ERRORS = (errors.InputError, FileNotFoundError)


# A path given that cannot be a folder or file to write (a --workdir that is
# a file, or inside one; a folder without write permission).
PATH_ERRORS = (FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def is_user_error(e: BaseException) -> bool:
  """One of :data:`USER_ERRORS` or :data:`PATH_ERRORS`, or a missing
  optional extra (an ImportError that says what to install). Every check
  of a setting raises an InputError (``tests/test_errors.py`` holds the
  code to it)."""
  if isinstance(e, USER_ERRORS + PATH_ERRORS):
    return True
  return isinstance(e, ImportError) and 'pip install' in str(e)


def user_message(e: BaseException) -> str:
  """The line printed for a user error: its message, and for a path that
  cannot be written, which path and what was expected."""
  if isinstance(e, PATH_ERRORS) and e.filename:
    return (f'{e.filename}: {e.strerror}; expected a path this job can read '
            'or write (check the flag or config field that names it).')
  return str(e)


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO lines of libraries that log every step of their own
  (orbax: several lines per checkpoint saved or restored) or what is no
  news (JAX: "Unable to initialize backend 'tpu'" on every machine without
  one); their warnings and errors pass."""

  QUIET = (f'{os.sep}orbax{os.sep}', f'{os.sep}jax2onnx{os.sep}')

  def filter(self, record: py_logging.LogRecord) -> bool:
    if record.levelno >= py_logging.WARNING:
      return True
    if "Unable to initialize backend 'tpu'" in record.getMessage():
      return False
    return not any(q in record.pathname for q in self.QUIET)


def _config_arg() -> str:
  """The ``--config`` argument as given (``--config=FILE[:ARG]``, also
  written ``--config FILE``; the last one if repeated, as absl takes it),
  or ``--config`` for the command's default."""
  args = sys.argv[1:]
  given = '--config'
  for i, a in enumerate(args):
    if a.startswith('--config='):
      given = a
    elif a == '--config' and i + 1 < len(args):
      given = f'--config={args[i + 1]}'
  return given


def config_flag_error(e: BaseException) -> Optional[str]:
  """One line for an error of the ``--config`` flag itself, which
  ml_collections raises from its own code (``config_flags``); None for any
  other error.

  - ``--config.<field>`` that the config lacks: an AttributeError (or
    KeyError) naming the field, with a "did you mean" where one is close,
    raised while the entry point defines its flag, at import, before
    :func:`run`.
  - ``--config=FILE`` that cannot be loaded: an OSError, raised where
    ``main`` first reads the config.
  """
  frames = traceback.extract_tb(e.__traceback__)
  if not any(f'{os.sep}config_flags{os.sep}' in f.filename for f in frames):
    return None
  given = _config_arg()
  if isinstance(e, (AttributeError, KeyError)):
    message = e
    while isinstance(message, BaseException):  # AttributeError(KeyError(s))
      message = message.args[0] if message.args else ''
    field, *hints = str(message).split('\n')
    field = field.strip('\'"')
    flag = next((a.split('=')[0] for a in sys.argv[1:]
                 if a.startswith('--config.') and
                 field in a.split('=')[0].split('.')), None)
    if flag is None:  # not an override: the file itself (no get_config)
      return (f'{given}: the file defines no get_config(); expected a '
              'configs/<name>.py with get_config().' if 'get_config' in field
              else None)
    nested = _fields_named(given, field, e)
    if nested and flag == f'--config.{field}':
      hint = '; did you mean ' + ' or '.join(
          f'--config.{path}' for path in nested) + '?'
    else:
      hint = '; ' + hints[0][:1].lower() + hints[0][1:] if hints else ''
    return f'{flag}: the config has no field {field!r}{hint}'
  if isinstance(e, OSError):
    reason = [l.strip() for l in str(e).splitlines() if l.strip()][-1]
    return (f'{given}: cannot load the config file ({reason}); expected a '
            'configs/<name>.py with get_config().')
  return None


def _fields_named(config_flag: str, name: str,
                  error: BaseException) -> list[str]:
  """Dotted paths of the fields called ``name`` in a section of the config
  that ``config_flag`` (``--config=FILE[:ARG]``; else the entry point's
  default, read from the ``DEFINE_config_file`` call that ``error`` was
  raised in) loads; [] if it cannot be loaded. ``--config.seeds`` is
  ``--config.eval.seeds`` in the HELP configs."""
  import runpy  # pylint: disable=g-import-not-at-top
  spec = config_flag.partition('=')[2]
  tb = error.__traceback__
  while not spec and tb is not None:
    if tb.tb_frame.f_code.co_name == 'DEFINE_config_file':
      spec = tb.tb_frame.f_locals.get('default') or ''
    tb = tb.tb_next
  path, _, arg = str(spec).partition(':')
  try:
    get_config = runpy.run_path(path)['get_config']
    config = get_config(arg) if arg else get_config()
    fields = workdirs.flatten(config.to_dict())
  except Exception:  # pylint: disable=broad-except
    return []
  return sorted(path for path in fields if path.endswith(f'.{name}'))


# The sections that make a config of each kind, and configs of that kind.
CONFIG_KINDS = {
    'meta-training': (('meta', 'eval', 'model'),
                      'configs/help_fbnet.py, help_nasbench201.py or '
                      'help_ofa.py'),
    # meta_test reads only the evaluation settings (config.eval); the
    # predictor brings its own.
    'evaluation': (('eval',), 'configs/help_fbnet.py, help_nasbench201.py '
                   'or help_ofa.py'),
    'evolve': (('evolve', 'search', 'latency', 'data'),
               'configs/evolve_quick.py or another configs/evolve_*.py'),
    'search': (('search', 'latency', 'data'),
               'configs/quickstart.py, fbnet_cifar100.py, fbnet_imagenet.py, '
               'ofa_imagenet.py, latency_control.py or closed_loop.py'),
}


def config_of_kind(flag, kind: str, command: str):
  """``flag.value`` (a ``DEFINE_config_file`` flag), checked to be a config
  of ``kind`` (:data:`CONFIG_KINDS`): a meta-training config given to the
  search, say, is one clear error naming both kinds, not an
  AttributeError from deep inside the job."""
  config = flag.value
  sections, examples = CONFIG_KINDS[kind]
  missing = [s for s in sections if s not in config]
  if missing:
    given = _config_arg()
    found = next((k for k, (need, _) in CONFIG_KINDS.items()
                  if all(s in config for s in need)), None)
    def a(kind):
      return f'{"an" if kind[0] in "aeiou" else "a"} {kind} config'
    raise errors.InputError(
        f'{given}: {a(found) if found else "a config"}, without the '
        f'section(s) {", ".join(missing)}; {command} expects {a(kind)} '
        f'({examples}).')
  return config


def _excepthook(kind, value, tb) -> None:
  """``sys.excepthook``: an error of the ``--config`` flag raised before
  :func:`run` (:func:`config_flag_error`) as one line, exit status 2."""
  message = (None if os.environ.get('FBNET_JAX_TRACEBACK') else
             config_flag_error(value))
  if message is None:
    sys.__excepthook__(kind, value, tb)
    return
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  os._exit(2)  # pylint: disable=protected-access


sys.excepthook = _excepthook


def flag_error(e: BaseException) -> str:
  """One line for an error that absl raises while parsing the flags
  (``absl.flags.Error``): a value that does not parse
  (``--config.latency.target_ms=abc``) or a ``--config=FILE:VARIANT`` whose
  ``get_config`` refuses the variant; ml_collections puts the loading
  traceback in the message, of which the last line says what failed."""
  lines = [l.strip() for l in str(e).splitlines() if l.strip()] or [
      f'{type(e).__name__} while parsing the flags']
  head, last = lines[0], lines[-1]
  if 'Error whilst parsing config file' in head:
    given = head.removeprefix('flag ').split(': Error whilst')[0]
    path, _, variant = given.partition('=')[2].partition(':')
    if 'get_config() takes 0 positional arguments' in last:
      return (f'{given}: {path} has no variants; expected --config={path} '
              f'without ":{variant}".')
    return f'{given}: {last.partition(": ")[2] or last}'
  if head.startswith('Unknown command line flag'):
    return f'{head} (--helpshort lists the flags).'
  return head.removeprefix('flag ')


def _parse_flags(argv):
  """absl's flag parsing, with a bad flag value as one line (exit status 2,
  as every other bad input) instead of absl's FATAL message and status 1;
  ``FBNET_JAX_TRACEBACK=1``: absl's own handling."""
  if os.environ.get('FBNET_JAX_TRACEBACK'):
    return app.parse_flags_with_usage(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.stderr.write(f'error: {flag_error(e)}\n')
    sys.exit(2)


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
      message = (user_message(e) if is_user_error(e) else
                 config_flag_error(e))
      if message is None or os.environ.get('FBNET_JAX_TRACEBACK'):
        raise
      sys.stderr.write(f'error: {message}\n')
      sys.exit(2)

  app.run(checked, flags_parser=_parse_flags)
