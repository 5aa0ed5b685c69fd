"""Shared test setup: CPU, a few fake host devices for sharding tests, and
XLA's backend optimisation level 0.

The suite's time is mostly XLA compiling tiny supernets that then run a few
steps; level 0 cuts the LLVM work of each compile (about a quarter of a
supernet step's compile on 2 cores) and changes no result beyond float
rounding. ``XLA_FLAGS`` set by the caller win.
"""

import os

import pytest

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
flags = os.environ.get('XLA_FLAGS', '')
if '--xla_force_host_platform_device_count' not in flags:
  os.environ['XLA_FLAGS'] = (flags +
                             ' --xla_force_host_platform_device_count=4').strip()
if '--xla_backend_optimization_level' not in flags:
  os.environ['XLA_FLAGS'] += ' --xla_backend_optimization_level=0'


@pytest.fixture(scope='module')
def module_compilation_cache(tmp_path_factory):
  """JAX's persistent compilation cache for one test module, so that its
  runs sharing shapes (a supernet trained, then searched, resumed or
  evaluated by another Searcher) compile once."""
  import jax  # pylint: disable=g-import-not-at-top  (after XLA_FLAGS)
  jax.config.update('jax_compilation_cache_dir',
                    str(tmp_path_factory.mktemp('xla_cache')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
  yield
  jax.config.update('jax_compilation_cache_dir', None)
