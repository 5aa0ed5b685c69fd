r"""Does what else a session measures change a network's measured latency?

    python -m benchmarks.session_composition --front=runs/evolve_loop_here/front.json \
        --out=benchmarks/results/cpu_2026-11-28/session_composition.json

An evolutionary search's front, measured with the harness, is mostly
skip-heavy networks of 1-3 ms; the sessions of latency in the loop measure
them among mid-size networks of 6-12 ms. This measures the front's
architectures in alternating sessions of two kinds, each in a fresh
process beside the 10 reference architectures: ``alone`` (front +
references, as ``config.evolve.measure_front`` does) and ``mixed`` (the
same + ``--num_random`` random networks, as in the loop), and reports each
front network's latency divided by its session's references, per kind.
A systematic gap between the kinds means the session's composition biases
the measurement; no gap beyond the session-to-session spread means it does
not.
"""

import json

from absl import app
from absl import flags
import numpy as np

import benchmarks
from fbnet_jax import compilation_cache
from fbnet_jax import measure
from fbnet_jax import spaces
from meta import latency_data

_FRONT = flags.DEFINE_string('front', 'runs/evolve_loop_here/front.json',
                             'A front.json of experiments.evolve (FBNet).')
_PAIRS = flags.DEFINE_integer('pairs', 2, 'Sessions of each kind.')
_RANDOM = flags.DEFINE_integer('num_random', 16, 'Random networks in the '
                               'mixed sessions.')
_BUDGET = flags.DEFINE_float('time_budget_s', 45.0, 'Timing budget of a '
                             'session (after compilation).')
_ROUND_WARMUP = flags.DEFINE_integer(
    'round_warmup', 1, 'Untimed calls of a network before each round '
    '(MeasureConfig.round_warmup).')
_OUT = flags.DEFINE_string('out', '', 'JSON output.')


def main(argv):
  del argv
  compilation_cache.enable()
  with open(_FRONT.value) as f:
    front = np.array([p['arch_index'] for p in json.load(f)], np.int32)
  refs = latency_data.load_space_data('fbnet').reference_archs
  others = spaces.get_space('fbnet').sample(np.random.default_rng(3),
                                            _RANDOM.value)
  config = measure.MeasureConfig(time_budget_s=_BUDGET.value,
                                 round_warmup=_ROUND_WARMUP.value)
  kinds = {'alone': np.concatenate([refs, front]),
           'mixed': np.concatenate([refs, front, others])}
  out = {'front_archs': front.tolist(), 'round_warmup': config.round_warmup,
         'sessions': []}
  for pair in range(_PAIRS.value):
    for kind, archs in kinds.items():
      dev = measure.measure_archs_in_fresh_process(
          archs, config, reference_rows=list(range(len(refs))),
          progress=False)
      ms = np.asarray(dev.latency_ms, float)
      speed = float(np.median(ms[:len(refs)] / np.asarray(
          out['sessions'][0]['ms'][:len(refs)]))) if out['sessions'] else 1.0
      out['sessions'].append({'kind': kind, 'ms': ms.tolist(),
                              'reference_speed': speed})
      print(f'session {len(out["sessions"]) - 1} ({kind}): references x'
            f'{speed:.3f}, front '
            + ' '.join(f'{v:.2f}' for v in ms[len(refs):][:len(front)]),
            flush=True)
  n = len(refs)
  vs_refs = {kind: np.stack([
      np.asarray(s['ms'][n:n + len(front)]) / s['reference_speed']
      for s in out['sessions'] if s['kind'] == kind]) for kind in kinds}
  gap = np.median(vs_refs['mixed'], 0) / np.median(vs_refs['alone'], 0) - 1
  within = {kind: float(np.mean(np.abs(v / np.median(v, 0) - 1)))
            for kind, v in vs_refs.items()}
  out['mixed_vs_alone_per_network'] = gap.tolist()
  out['median_gap'] = float(np.median(gap))
  out['mean_abs_deviation_within_kind'] = within
  print('mixed / alone - 1 per front network (vs references): '
        + ' '.join(f'{100 * g:+.1f}%' for g in gap)
        + f'; median {100 * np.median(gap):+.1f}%; within a kind the '
        f'sessions deviate by {100 * within["alone"]:.1f}% (alone) and '
        f'{100 * within["mixed"]:.1f}% (mixed) on average')
  if _OUT.value:
    benchmarks.write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
