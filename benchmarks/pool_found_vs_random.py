r"""Several searches' found-vs-random studies as one comparison.

    python -m benchmarks.pool_found_vs_random \
        --studies=runs/quickstart/compare_seeds/found_vs_random.json,runs/quickstart_seed1/compare_seeds/found_vs_random.json

Each study (``experiments.compare_random``) compares one search's found
architecture with random architectures of its latency. Pooled: the mean of
the per-search differences with a paired t-test over searches, and, as a
looser view, every found seed against every random architecture's mean
(Welch; optimistic, as one architecture's seeds share it), i.e. "do this
method's searches find architectures better than random ones of their
latency?" rather than "is this one architecture".
"""

import json

from absl import app
from absl import flags

from fbnet_jax import studies

_STUDIES = flags.DEFINE_list('studies', None, 'found_vs_random.json files.',
                             required=True)
_OUT = flags.DEFINE_string('out', None, 'Write the pooled result here.')


def main(argv):
  del argv
  loaded = []
  for path in _STUDIES.value:
    with open(path) as f:
      loaded.append(json.load(f))
  out = studies.pool_found_vs_random(loaded)
  per = ', '.join(f'{100 * d:+.2f}'
                  for d in out['per_search_found_minus_random'])
  print(f'{out["num_searches"]} searches: found minus random '
        f'{100 * out["mean_found_minus_random"]:+.2f} points on average (per '
        f'search: {per}); found {out["found_mean"]:.4f} '
        f'({out["num_found_runs"]} retrainings), random '
        f'{out["random_mean"]:.4f} ({out["num_random_archs"]} archs)')
  for key, what in (('paired', 'paired over searches'),
                    ('welch_seeds', 'every found seed vs every random '
                     'architecture (optimistic)')):
    if key in out:
      w = out[key]
      print(f'  {what}: 95% CI [{100 * w["ci95_found_minus_random"][0]:+.2f}'
            f', {100 * w["ci95_found_minus_random"][1]:+.2f}] points, '
            f'p = {w["p_two_sided"]:.3f}')
  if 'sign' in out:
    sign = out['sign']
    p = sign['p_two_sided']
    print(f'  signs: ahead in {sign["ahead"]} of {sign["untied"]} untied '
          f'({out["num_searches"]} searches), p = '
          + ('n/a' if p is None else f'{p:.3f}'))
  if out['shared_random_archs']:
    print(f'  NOT independent: {out["shared_random_archs"]} random '
          'architecture(s) retrained in more than one study (two studies of '
          'one search seed?); the tests above assume independent searches.')
  if _OUT.value:
    out['studies'] = _STUDIES.value
    with open(_OUT.value, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  app.run(main)
