"""Shared test setup: CPU, a few fake host devices for sharding tests, and
XLA's backend optimisation level 0.

The suite's time is mostly XLA compiling tiny supernets that then run a few
steps; level 0 cuts the LLVM work of each compile (about a quarter of a
supernet step's compile on 2 cores) and changes no result beyond float
rounding. ``XLA_FLAGS`` set by the caller win.
"""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
flags = os.environ.get('XLA_FLAGS', '')
if '--xla_force_host_platform_device_count' not in flags:
  os.environ['XLA_FLAGS'] = (flags +
                             ' --xla_force_host_platform_device_count=4').strip()
if '--xla_backend_optimization_level' not in flags:
  os.environ['XLA_FLAGS'] += ' --xla_backend_optimization_level=0'
