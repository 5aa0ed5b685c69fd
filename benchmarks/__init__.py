"""Speed and accuracy measurements; results under ``benchmarks/results/``."""

import json
import os


def write_json(path: str, value) -> None:
  """Writes ``value`` to ``path`` as indented JSON, creating its folder."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(value, f, indent=1)
