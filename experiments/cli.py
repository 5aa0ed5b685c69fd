"""What the entry points share: bad input as one line, not a traceback."""

import os
import sys

from absl import app

from fbnet_jax import latency
from fbnet_jax import spaces
from meta import latency_data

# The project's errors for what a user gave it (each names the file or
# setting and what was expected), and files that are not there (a dataset
# not prepared, fbnet_jax.data.DatasetNotPreparedError, among them).
USER_ERRORS = (latency_data.DeviceFileError, latency.LatencyConfigError,
               spaces.ArchitectureError, FileNotFoundError)


def is_user_error(e: BaseException) -> bool:
  """One of :data:`USER_ERRORS`; a ValueError whose message starts with the
  setting it refuses (``config.x:`` or ``--flag``, this codebase's
  convention for a bad setting); or a missing optional extra (an
  ImportError that says what to install)."""
  if isinstance(e, USER_ERRORS):
    return True
  if isinstance(e, ValueError):
    return str(e).startswith(('config.', '--'))
  return isinstance(e, ImportError) and 'pip install' in str(e)


def run(main) -> None:
  """``absl.app.run(main)``; an error of bad input (:func:`is_user_error`)
  is printed as one line on stderr and exits with status 2
  (``FBNET_JAX_TRACEBACK=1``: the traceback instead)."""

  def checked(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      if not is_user_error(e) or os.environ.get('FBNET_JAX_TRACEBACK'):
        raise
      sys.stderr.write(f'error: {e}\n')
      sys.exit(2)

  app.run(checked)
