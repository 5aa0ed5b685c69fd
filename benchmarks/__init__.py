"""Speed and accuracy measurements; results under ``benchmarks/results/``."""

import os

from fbnet_jax import workdirs


def write_json(path: str, value) -> None:
  """Writes ``value`` to ``path`` as indented JSON, creating its folder
  (atomically: a killed benchmark leaves the old file or none)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  workdirs.write_json(path, value)
