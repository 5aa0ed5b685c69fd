r"""Compile time and latency of standalone networks, serial vs. threaded.

    python -m benchmarks.measure_compile --num=6 --workers=1,4
    XLA_FLAGS=--xla_gpu_autotune_level=0 python -m benchmarks.measure_compile

The measurement harness (:mod:`fbnet_jax.measure`) compiles every network
before timing it; this prints how long that takes per network on the local
backend with 1 and with N compile threads, and the median latency of each
network, so that a device-file session can be sized (and the effect of
XLA's GPU autotuning on both seen). Results go to ``--out`` as JSON.
"""

from concurrent import futures
import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

import benchmarks
from fbnet_jax import measure
from fbnet_jax import spaces

_NUM = flags.DEFINE_integer('num', 6, 'Random FBNet CIFAR networks.')
_WORKERS = flags.DEFINE_list('workers', ['1', '4'], 'Compile threads.')
_OUT = flags.DEFINE_string('out', 'runs/measure_compile.json', 'Result.')


def main(argv):
  del argv
  space = spaces.space_for('fbnet', 'cifar')
  config = measure.MeasureConfig()
  result = {'backend': jax.default_backend(),
            'device_kind': jax.devices()[0].device_kind,
            'cpus': os.cpu_count(), 'xla_flags': os.environ.get(
                'XLA_FLAGS', ''), 'runs': []}
  for seed, workers in enumerate(map(int, _WORKERS.value)):
    archs = space.sample(np.random.default_rng(seed), _NUM.value)

    def build(a):
      t0 = time.perf_counter()
      fn = measure.build_forward('fbnet', a, config)
      return fn, time.perf_counter() - t0

    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(workers) as pool:
      built = list(pool.map(build, archs))
    wall = time.perf_counter() - t0
    ms = [float(np.median(measure.time_fn(fn, repeats=20))) * 1e3
          for fn, _ in built]
    run = {'workers': workers, 'num': len(archs), 'wall_s': wall,
           'per_net_s': [s for _, s in built], 'latency_ms': ms}
    print(json.dumps(run), flush=True)
    result['runs'].append(run)
    benchmarks.write_json(_OUT.value, result)


if __name__ == '__main__':
  app.run(main)
