"""Shared test setup: CPU, a few fake host devices for sharding tests,
XLA's backend optimisation level 0, and no persistent compilation cache.

The suite's time is mostly XLA compiling tiny supernets that then run a few
steps; level 0 cuts the LLVM work of each compile (about a quarter of a
supernet step's compile on 2 cores) and changes no result beyond float
rounding. ``XLA_FLAGS`` set by the caller win.

JAX's persistent compilation cache stays off (``FBNET_JAX_CACHE=off`` for
the experiments' entry points and their subprocesses too): it saved the
suite under 10% of its time (506 s without it, 464 s with it, 2-core VM),
and the one crash CI has seen (SIGABRT on 2026-12-03) came in the first
test that ran executables loaded back from it.
"""

import os

import pytest

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('FBNET_JAX_CACHE', 'off')
flags = os.environ.get('XLA_FLAGS', '')
if '--xla_force_host_platform_device_count' not in flags:
  os.environ['XLA_FLAGS'] = (flags +
                             ' --xla_force_host_platform_device_count=4').strip()
if '--xla_backend_optimization_level' not in flags:
  os.environ['XLA_FLAGS'] += ' --xla_backend_optimization_level=0'


@pytest.fixture
def file_measured_here():
  """``write(path, space='fbnet', device='raspi4', name='mine', **fields)``:
  a bundled device's rows saved as if ``experiments.measure`` had measured
  them on this machine (the fields ``closed_loop.check_measured_here``
  compares; ``fields`` override or add some), loaded back."""
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from meta import latency_data  # pylint: disable=g-import-not-at-top

  def write(path, space='fbnet', device='raspi4', name='mine', **fields):
    bundled = latency_data.bundled_device(space, device)
    meta = dict(device_kind=np.array(jax.devices()[0].device_kind),
                batch_size=np.int32(1), dtype=np.array('float32'))
    if space == 'fbnet':
      meta['macro'] = np.array('cifar')
    meta.update({k: np.asarray(v) for k, v in fields.items()})
    latency_data.save_device_file(path, latency_data.Device(
        name, space, bundled.archs, bundled.latency_ms, bundled.is_query,
        meta=meta))
    return latency_data.load_device_file(path)
  return write
