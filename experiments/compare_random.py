r"""Found architecture vs. random architectures of the same latency.

    python -m experiments.compare_random --config=configs/quickstart.py \
        --arch=runs/quickstart/result.json --workdir=runs/quickstart/compare

Retrains the found architecture and ``--num_random`` uniformly random FBNet
architectures whose lookup-table latency is within 3% of it, from scratch,
with the same settings, each with several seeds (``--seeds``; the found one
with ``--found_seeds``), and writes ``found_vs_random.json`` (every seed's
accuracy, each architecture's mean, Welch's t-test of the found
architecture's seeds against the random architectures' means) and
``found_vs_random.png``. A killed study resumes where it stopped.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import compilation_cache
from fbnet_jax import studies

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Config (data, retrain, device).')
_ARCH = flags.DEFINE_string('arch', 'runs/quickstart/result.json',
                            'result.json of a search.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart/compare', 'Root.')
_NUM = flags.DEFINE_integer('num_random', 4, 'Random architectures.')
_SEEDS = flags.DEFINE_integer('seeds', 1, 'Retraining seeds per random '
                              'architecture (config.seed + 0, 1, ...).')
_FOUND_SEEDS = flags.DEFINE_integer('found_seeds', None, 'Retraining seeds '
                                    'of the found architecture (default: '
                                    '--seeds).')


def main(argv):
  del argv
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.compare_random')
  out = studies.found_vs_random(config, _ARCH.value, _WORKDIR.value,
                                _NUM.value, _SEEDS.value, _FOUND_SEEDS.value)
  spread = ('' if out['random_std'] is None
            else f' +- {out["random_std"]:.4f}')
  print(f'found {out["found"]["accuracy"]:.4f} (mean of '
        f'{len(out["found"]["seeds"])} seeds) vs random '
        f'{out["random_mean"]:.4f}{spread} '
        f'({len(out["random"])} archs at the same latency); found ranks '
        f'{out["found_rank"]} of {out["num_archs"]}')
  if 'welch' in out:
    w = out['welch']
    print(f'found - random: 95% CI [{w["ci95_found_minus_random"][0]:+.4f}, '
          f'{w["ci95_found_minus_random"][1]:+.4f}], Welch p = '
          f'{w["p_two_sided"]:.3f}')


if __name__ == '__main__':
  cli.run(main)
