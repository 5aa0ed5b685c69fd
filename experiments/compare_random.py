r"""Found architecture vs. random architectures of the same latency.

    python -m experiments.compare_random --config=configs/quickstart.py \
        --arch=runs/quickstart/result.json --workdir=runs/quickstart/compare

Retrains the found architecture and ``--num_random`` uniformly random FBNet
architectures whose lookup-table latency is within 3% of it, from scratch,
with the same settings, and prints/writes their accuracy.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from fbnet_jax import compilation_cache
from fbnet_jax import studies

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Config (data, retrain, device).')
_ARCH = flags.DEFINE_string('arch', 'runs/quickstart/result.json',
                            'result.json of a search.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart/compare', 'Root.')
_NUM = flags.DEFINE_integer('num_random', 4, 'Random architectures.')


def main(argv):
  del argv
  compilation_cache.enable()
  out = studies.found_vs_random(_CONFIG.value, _ARCH.value, _WORKDIR.value,
                                _NUM.value)
  print(f'found {out["found"]["accuracy"]:.4f} vs random '
        f'{out["random_mean"]:.4f} +- {out["random_std"]:.4f} '
        f'({len(out["random"])} archs at the same latency)')


if __name__ == '__main__':
  app.run(main)
