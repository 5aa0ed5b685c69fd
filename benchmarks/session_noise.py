r"""How much a network's measured latency moves between measuring sessions.

    python -m benchmarks.session_noise --sessions=6 --pause_s=60 \
        --out=benchmarks/results/cpu_2026-11-27/session_noise.json

Measures the same FBNet architectures (the 10 reference architectures,
``--num_random`` random ones and ``--num_fast`` skip-heavy ones, like the
fast end of a Pareto front: each layer skipped with probability 0.85) in
``--sessions`` separate measuring sessions,
each in a fresh process (as the closed loop does), ``--pause_s`` apart.
For each statistic the harness can store (the median of a session's timings,
the default of device files, and their minimum), it reports how much one
architecture's value moves across sessions (relative standard deviation,
largest deviation from its median over sessions), raw and after dividing
each session by its references' speed (the closed loop's drift
correction). A statistic that moves less between sessions is the one a
device file should hold on a machine whose speed moves, because the closed
loop compares sessions hours apart. The random and the skip-heavy
networks are summarised apart: whether dividing by the references (6-12 ms
on the 2-core VM) also corrects networks of 1-3 ms is the question for
latency measured in an evolutionary search's loop. Run it under
``--cpu_cores=1`` (``MeasureConfig.cpu_cores``), ``taskset`` or ``XLA_FLAGS``
to compare thread settings (all are recorded in the output). Each session
is compared with the median over sessions, the anchors' drift too (the
loop's ``MeasuredHere`` fixes the anchors' baseline in its first session
instead). The persistent compilation cache is on: sessions
after the first load their executables instead of compiling.
``--runtime=onnxruntime`` asks the same of ONNX Runtime (graphs exported
once, then loaded from the cache beside XLA's).
"""

import os
import time

from absl import app
from absl import flags
import numpy as np

import benchmarks
from fbnet_jax import measured_here
from fbnet_jax import compilation_cache
from fbnet_jax import measure
from fbnet_jax import spaces
from meta import latency_data

_SESSIONS = flags.DEFINE_integer('sessions', 6, 'Measuring sessions.')
_PAUSE = flags.DEFINE_float('pause_s', 60.0, 'Seconds between sessions.')
_RANDOM = flags.DEFINE_integer('num_random', 6, 'Random architectures.')
_FAST = flags.DEFINE_integer('num_fast', 0, 'Skip-heavy architectures.')
_ANCHORS = flags.DEFINE_integer(
    'num_anchors', 0, 'Anchor networks (measured_here.anchor_archs, as '
    'MeasuredHere times with config.evolve.anchors): also report each '
    "network divided by measured_here.drift_by_latency (anchors' and "
    "references' drift, interpolated in log latency).")
_BUDGET = flags.DEFINE_float('time_budget_s', 60.0, 'Timing budget of a '
                             'session (after compilation).')
_OUT = flags.DEFINE_string('out', '', 'JSON output.')
_CORES = flags.DEFINE_integer('cpu_cores', 0, 'MeasureConfig.cpu_cores: 0 '
                              'all, k: every session pinned to k cores.')
_RUNTIME = flags.DEFINE_enum('runtime', 'jax', list(measure.RUNTIMES),
                             'Time with the JAX backend or ONNX Runtime.')


def rel_std(v: np.ndarray) -> float:
  """Mean over columns of the relative standard deviation over rows."""
  return float(np.mean(v.std(axis=0, ddof=1) / v.mean(axis=0)))


def summarize(ms: np.ndarray, num_refs: int,
              anchors: np.ndarray | None = None) -> dict:
  """Session-to-session movement of ``ms [sessions, archs]``, whose first
  ``num_refs`` columns are the reference architectures: raw, and for the
  other architectures after dividing each session by the median ratio of
  its references to their typical value (the closed loop's drift
  correction); with ``anchors`` (``[sessions, K]`` latencies of the anchor
  networks), also divided by :func:`measured_here.drift_by_latency`."""
  ratio = ms / np.median(ms, axis=0)
  ref_drift = np.median(ratio[:, :num_refs], axis=1, keepdims=True)
  corrected = (ratio / ref_drift)[:, num_refs:]
  by_anchors = {}
  if anchors is not None:
    anchor_drift = np.median(anchors / np.median(anchors, axis=0), axis=1)
    drift = np.stack([measured_here.drift_by_latency(
        ms[s, num_refs:], np.median(ms[s, :num_refs]), ref_drift[s, 0],
        np.median(anchors[s]), anchor_drift[s]) for s in range(len(ms))])
    vs_anchors = ratio[:, num_refs:] / drift
    by_anchors = {
        'anchor_drift': anchor_drift.tolist(),
        'vs_anchors_relative_std': rel_std(vs_anchors),
        'vs_anchors_max_abs_deviation': float(np.abs(
            vs_anchors / np.median(vs_anchors, axis=0) - 1).max())}

  return {
      'ms': ms.tolist(),
      'session_speed': np.median(ratio, axis=1).tolist(),
      'relative_std_per_arch_mean': rel_std(ms),
      'max_abs_relative_deviation': float(np.abs(ratio - 1).max()),
      'share_within_5pct': float(np.mean(np.abs(ratio - 1) <= 0.05)),
      'share_within_10pct': float(np.mean(np.abs(ratio - 1) <= 0.10)),
      'vs_references_relative_std': rel_std(corrected),
      'vs_references_max_abs_deviation': float(np.abs(
          corrected / np.median(corrected, axis=0) - 1).max()),
      **by_anchors,
  }


def main(argv):
  del argv
  compilation_cache.enable()
  refs = latency_data.load_space_data('fbnet').reference_archs
  space = spaces.get_space('fbnet')
  rng = np.random.default_rng(7)
  fast = space.sample(rng, _FAST.value)
  fast[rng.random(fast.shape) < 0.85] = space.units[0].choices.index('skip')
  groups = {'random': np.arange(_RANDOM.value),
            'skip_heavy': _RANDOM.value + np.arange(_FAST.value)}
  anchors = measured_here.anchor_archs(space, _ANCHORS.value)
  archs = np.concatenate([refs, space.sample(rng, _RANDOM.value), fast,
                          anchors])
  anchor_cols = len(refs) + _RANDOM.value + _FAST.value + np.arange(
      _ANCHORS.value)
  config = measure.MeasureConfig(time_budget_s=_BUDGET.value,
                                 runtime=_RUNTIME.value,
                                 cpu_cores=_CORES.value)
  stats = {'median': [], 'min': []}
  sessions = []
  for s in range(_SESSIONS.value):
    if s:
      time.sleep(_PAUSE.value)
    t0 = time.time()
    dev = measure.measure_archs_in_fresh_process(
        archs, config, reference_rows=list(range(len(refs))), progress=False)
    stats['median'].append(np.asarray(dev.meta['latency_median_ms'], float))
    stats['min'].append(np.asarray(dev.meta['latency_min_ms'], float))
    sessions.append({'start': t0, 'seconds': time.time() - t0,
                     'rounds': int(dev.meta['rounds']),
                     'median_relative_spread': float(
                         dev.meta['median_relative_spread'])})
    print(f'session {s}: median of medians {np.median(stats["median"][-1]):.3f}'
          f' ms, of minima {np.median(stats["min"][-1]):.3f} ms '
          f'({sessions[-1]["seconds"]:.0f} s)', flush=True)
  out = {'archs': archs.tolist(), 'sessions': sessions, 'statistics': {},
         'runtime': _RUNTIME.value,
         'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'cpu_affinity': sorted(os.sched_getaffinity(0)),
         'cpu_cores': _CORES.value}
  for name, values in stats.items():
    ms = np.stack(values)
    anchor_ms = ms[:, anchor_cols] if _ANCHORS.value else None
    # Every network but the anchors (they are the correction, not its test).
    out['statistics'][name] = summarize(ms[:, :anchor_cols[0]] if len(
        anchor_cols) else ms, len(refs))
    for group, cols in groups.items():
      if not len(cols):
        continue
      row = out['statistics'][f'{name}_{group}'] = summarize(
          np.concatenate([ms[:, :len(refs)], ms[:, len(refs) + cols]], 1),
          len(refs), anchor_ms)
      others = np.asarray(row['ms'])[:, len(refs):]
      print(f'{name:6s} {group:10s} ({np.median(others):.2f} ms): relative '
            'std across sessions of each network '
            f'{rel_std(others):.3f} (max |deviation| '
            f'{np.abs(others / np.median(others, 0) - 1).max():.3f}); '
            'divided by the references of the same session '
            f'{row["vs_references_relative_std"]:.3f} (max '
            f'{row["vs_references_max_abs_deviation"]:.3f})' + (
                '; by the anchors and references '
                f'{row["vs_anchors_relative_std"]:.3f} (max '
                f'{row["vs_anchors_max_abs_deviation"]:.3f})'
                if anchor_ms is not None else ''))
  if _OUT.value:
    benchmarks.write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
