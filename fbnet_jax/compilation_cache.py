"""JAX's persistent compilation cache, for the supernet's long CPU compiles.

A supernet step takes XLA a minute or more to compile on CPU; with the cache
a second search of the same shapes (another device or target, a resumed
run) starts at once. Directory: ``$FBNET_JAX_CACHE`` or
``~/.cache/fbnet_jax/xla``; ``FBNET_JAX_CACHE=off`` disables it.
:func:`onnx_dir` is its sibling for exported ONNX graphs (the measurement
harness's ``onnxruntime`` runtime), which take longer to export than the
same networks take to compile.
"""

import os

import jax


_OPTIONS = ('jax_compilation_cache_dir',
            'jax_persistent_cache_min_compile_time_secs',
            'jax_persistent_cache_min_entry_size_bytes')


def enable() -> None:
  path = os.environ.get('FBNET_JAX_CACHE',
                        os.path.join(os.path.expanduser('~'), '.cache',
                                     'fbnet_jax', 'xla'))
  if path == 'off':
    return
  os.makedirs(path, exist_ok=True)
  restore(dict(zip(_OPTIONS, (path, 1.0, 0))))


def settings() -> dict:
  """This process's cache settings, to hand to another process."""
  return {name: getattr(jax.config, name) for name in _OPTIONS}


def restore(values: dict) -> None:
  """Applies :func:`settings` of another process (nothing if it had no
  cache)."""
  if values['jax_compilation_cache_dir']:
    for name, value in values.items():
      jax.config.update(name, value)


def onnx_dir() -> str:
  """Where exported ONNX graphs are kept while the cache is on ('' if off):
  beside the XLA cache, ``<its directory>_onnx``."""
  xla = jax.config.jax_compilation_cache_dir
  return xla.rstrip(os.sep) + '_onnx' if xla else ''
