r"""Throughput of the evolutionary search's latency objective (issue 5).

    python -m benchmarks.evolve_speed [--num_archs=100000] [--device=raspi4] [--out=runs/evolve_speed.json]

Scores ``--num_archs`` random FBNet (CIFAR macro) architectures with each
latency source (the HW-NAS-Bench lookup table and the meta-trained predictor
adapted to the device) through ``LatencyModel.arch_ms``, batched and
jit-compiled, and prints predictions per second after compilation (median
of five timed calls; the first call compiles and is not timed). The issue
asks for at least 100,000 predictions/s on CPU. For reference it also times
the eager path (numpy one-hot, then the source's function op by op).
"""

import json
import os
import platform
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import benchmarks
from fbnet_jax import latency as latency_lib
from fbnet_jax import spaces

_NUM_ARCHS = flags.DEFINE_integer('num_archs', 100_000,
                                  'Random architectures per timed call.')
_DEVICE = flags.DEFINE_string('device', 'raspi4', 'A bundled LUT device.')
_OUT = flags.DEFINE_string('out', 'runs/evolve_speed.json', 'Result file.')
_REPEATS = 5


def _timed(fn, archs) -> float:
  """Predictions per second of ``fn(archs)`` (median of repeats)."""
  fn(archs)  # compiles
  times = []
  for _ in range(_REPEATS):
    t0 = time.perf_counter()
    out = fn(archs)
    np.asarray(out)
    times.append(time.perf_counter() - t0)
  return len(archs) / float(np.median(times))


def main(argv):
  del argv
  space = spaces.get_space('fbnet', macro='cifar')
  archs = space.sample(np.random.default_rng(0), _NUM_ARCHS.value)
  config = ml_collections.ConfigDict({
      'space': 'fbnet', 'macro': 'cifar',
      'latency': {'source': 'lut', 'device': _DEVICE.value, 'device_file': '',
                  'predictor_dir': '', 'adapted_dir': '', 'num_samples': 10,
                  'seed': 0}})
  results = {}
  for source in ('lut', 'predictor'):
    config.latency.source = source
    model = latency_lib.latency_source(config)
    eager = lambda a, m=model: m.expected_ms(jnp.asarray(space.one_hot(a)))
    results[model.name] = {
        'arch_ms_per_s': _timed(model.arch_ms, archs),
        'eager_per_s': _timed(eager, archs)}
    print(f'{model.name:18s} arch_ms (batched, jit): '
          f'{results[model.name]["arch_ms_per_s"]:>12,.0f} predictions/s   '
          f'eager: {results[model.name]["eager_per_s"]:>12,.0f} /s')
  slowest = min(r['arch_ms_per_s'] for r in results.values())
  print(f'{len(archs):,} random FBNet archs; slowest source '
        f'{slowest:,.0f}/s (target >= 100,000/s: '
        f'{"met" if slowest >= 1e5 else "NOT met"}).')
  benchmarks.write_json(_OUT.value, {
      'machine': f'{platform.node()} ({os.cpu_count()} CPUs, '
                 f'{jax.devices()[0].platform})',
      'device': _DEVICE.value, 'num_archs': len(archs),
      'repeats': _REPEATS, 'statistic': 'median', 'sources': results})
  print(json.dumps(results))


if __name__ == '__main__':
  app.run(main)
