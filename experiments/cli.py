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


def run(main) -> None:
  """``absl.app.run(main)``; a :data:`USER_ERRORS` error is printed as one
  line on stderr and exits with status 2 (``FBNET_JAX_TRACEBACK=1``: the
  traceback instead)."""

  def checked(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      if os.environ.get('FBNET_JAX_TRACEBACK'):
        raise
      sys.stderr.write(f'error: {e}\n')
      sys.exit(2)

  app.run(checked)
