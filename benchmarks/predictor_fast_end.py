r"""The adapted predictor's error against a lookup table, by skip fraction.

    python -m benchmarks.predictor_fast_end [--device=raspi4] [--seeds=0,1,2]

Adapts the bundled meta-trained FBNet predictor to a lookup-table device
with each kind of support (``config.latency.support``: 'random' measured
rows of the device, or 'spread' from ``SearchSpace.sample_spread``, both
besides the 10 references) and scores 2000 random draws at each
fraction of skip layers (each distinct architecture once: at 90% skips
many draws are the same network) against the table: the fast end of the space,
where a latency-accuracy front ends. Prints the median, 95th percentile
and maximum relative error per support seed; writes ``--out``.
"""

import json

from absl import app
from absl import flags
import numpy as np

from configs import evolve_quick
from fbnet_jax import latency as latency_lib
from fbnet_jax import spaces

_DEVICE = flags.DEFINE_string('device', 'raspi4', 'A bundled LUT device.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Support draws.')
_SKIPS = flags.DEFINE_list('skip_fractions', ['0.11', '0.5', '0.7', '0.9'],
                           'Probability of skip per layer (0.11: uniform).')
_OUT = flags.DEFINE_string('out', 'runs/predictor_fast_end.json', 'Results.')


def main(argv):
  del argv
  space = spaces.get_space('fbnet')
  skip = space.units[0].choices.index('skip')
  table = latency_lib.lookup_table_latency(_DEVICE.value)
  rows = []
  for support in ('random', 'spread'):
    for seed in map(int, _SEEDS.value):
      config = evolve_quick.get_config()
      config.latency.update(source='predictor', device=_DEVICE.value,
                            support=support, seed=seed)
      model = latency_lib.latency_source(config)
      rng = np.random.default_rng(1)  # the same test architectures each time
      for p_skip in map(float, _SKIPS.value):
        archs = rng.integers(0, len(space.units[0].choices), (2000, 22))
        archs[rng.random(archs.shape) < p_skip] = skip
        archs = np.unique(archs, axis=0)
        err = np.abs(np.asarray(model.arch_ms(archs)) /
                     np.asarray(table.arch_ms(archs)) - 1)
        rows.append({'support': support, 'seed': seed, 'skip': p_skip,
                     'architectures': len(archs),
                     'median': float(np.median(err)),
                     'p95': float(np.quantile(err, 0.95)),
                     'max': float(err.max())})
        print(f'{support:6s} seed {seed} skip {p_skip:.2f} ({len(archs)} '
              'architectures): median '
              f'{rows[-1]["median"]:.3f} p95 {rows[-1]["p95"]:.3f} max '
              f'{rows[-1]["max"]:.3f}', flush=True)
  with open(_OUT.value, 'w') as f:
    json.dump({'device': _DEVICE.value, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
