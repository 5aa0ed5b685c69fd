r"""DNAS search (FBNet) for a target device and latency.

    python -m experiments.search --config=configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.search --config=configs/fbnet_cifar100.py \
        --config.latency.device=pixel3 --config.latency.target_ms=12 --workdir=W

Writes ``WORKDIR/result.json`` (architecture, latency from every source,
FLOPs, params, supernet accuracy), ``arch_distribution.png`` and
``latency.png``, TensorBoard scalars, and resumable orbax checkpoints.
"""

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from fbnet_jax import compilation_cache
from fbnet_jax import search

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Search configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart',
                               'Output directory (resumes if it exists).')
_MULTIHOST = flags.DEFINE_bool('multihost', False,
                               'Call jax.distributed.initialize() first.')


def main(argv):
  del argv
  if _MULTIHOST.value:
    jax.distributed.initialize()
  compilation_cache.enable()
  result = search.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(search.summary(result))


if __name__ == '__main__':
  app.run(main)
