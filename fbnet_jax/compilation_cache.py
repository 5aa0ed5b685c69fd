"""JAX's persistent compilation cache, for the supernet's long CPU compiles.

A supernet step takes XLA a minute or more to compile on CPU; with the cache
a second search of the same shapes (another device or target, a resumed
run) starts at once. Directory: ``$FBNET_JAX_CACHE`` or
``~/.cache/fbnet_jax/xla``; ``FBNET_JAX_CACHE=off`` disables it.
"""

import os

import jax


def enable() -> None:
  path = os.environ.get('FBNET_JAX_CACHE',
                        os.path.join(os.path.expanduser('~'), '.cache',
                                     'fbnet_jax', 'xla'))
  if path == 'off':
    return
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
