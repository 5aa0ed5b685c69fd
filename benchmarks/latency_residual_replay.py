r"""Latency in the loop's residual correction, replayed on real measurements.

    python -m benchmarks.latency_residual_replay \
        [--measured=benchmarks/results/cpu_2026-11-28/evolve_quick_loop_measured_here/measured_here.json] \
        [--device_file=benchmarks/results/cpu_2026-11-28/evolve_quick_measured_here/device_random.npz]

A latency-in-the-loop run on this machine (``experiments.evolve`` with
``config.evolve.measure_latency`` and a device file of this machine) keeps
every measurement in ``measured_here.json``, session by session, on the
device file's scale. This replays it: before each session, the bundled
FBNet predictor is adapted on the device file's support plus every earlier
session, as the loop does, and predicts the session's architectures, with
``config.evolve.latency_residual`` 'none' and 'ridge'
(:class:`fbnet_jax.latency_loop.ResidualCorrected`). On a lookup-table
device, latency is exactly additive over layers and the correction's
model is exact; a real machine's measurements are neither additive nor
free of noise, which is what this checks. Prints the median and the count
over 10% of the relative errors, for all networks and the fast ones
(< ``--fast_ms``); writes ``--out``.
"""

import json

from absl import app
from absl import flags
import numpy as np

from configs import evolve_quick
from fbnet_jax import latency as latency_lib
from fbnet_jax import latency_loop

_RESULTS = 'benchmarks/results/cpu_2026-11-28/'
_MEASURED = flags.DEFINE_string(
    'measured', _RESULTS + 'evolve_quick_loop_measured_here/measured_here.json',
    "A latency-in-the-loop run's measured_here.json.")
_DEVICE_FILE = flags.DEFINE_string(
    'device_file', _RESULTS + 'evolve_quick_measured_here/device_random.npz',
    'The device file that run adapted on (its support).')
_FAST_MS = flags.DEFINE_float('fast_ms', 3.0, 'The fast end: below this.')
_OUT = flags.DEFINE_string('out', 'runs/latency_residual_replay.json',
                           'Results.')


def main(argv):
  del argv
  with open(_MEASURED.value) as f:
    measured = json.load(f)
  config = evolve_quick.get_config()
  config.latency.update(source='predictor', device_file=_DEVICE_FILE.value)
  support = latency_lib.support_for(config)
  model = latency_lib.latency_source(config)
  archs = np.asarray(measured['arch_index'], np.int32)
  ms = np.asarray(measured['latency_ms'], np.float64)
  ends = np.cumsum([s['architectures'] for s in measured['sessions']])
  if ends[-1] != len(archs):
    raise ValueError(f'{_MEASURED.value}: sessions hold {ends[-1]} '
                     f'architectures, arch_index {len(archs)}.')
  pad_to = len(support.archs) + len(archs)
  errors = {'none': [], 'ridge': []}
  for lo, hi in zip(ends[:-1], ends[1:]):
    # As the loop re-adapts (latency_loop.refit); one adaptation serves both.
    ridge = latency_loop.refit(support, model, archs[:lo], ms[:lo], pad_to)
    for name, predict in (('none', ridge.predict), ('ridge', ridge)):
      errors[name].extend(np.asarray(predict(archs[lo:hi])) / ms[lo:hi] - 1)
  fast = ms[ends[0]:] < _FAST_MS.value
  rows = {}
  for name, err in errors.items():
    err = np.abs(np.asarray(err))
    rows[name] = {
        'predicted': len(err), 'median': float(np.median(err)),
        'over_10pct': int((err > 0.1).sum()), 'fast': int(fast.sum()),
        'fast_median': float(np.median(err[fast])),
        'fast_max': float(err[fast].max()),
        'fast_over_10pct': int((err[fast] > 0.1).sum())}
    r = rows[name]
    print(f"latency_residual={name!r}: {r['predicted']} predicted before "
          f"measuring, median {100 * r['median']:.1f}%, {r['over_10pct']} "
          f"> 10% off; the {r['fast']} under {_FAST_MS.value:g} ms: median "
          f"{100 * r['fast_median']:.1f}%, worst {100 * r['fast_max']:.1f}%, "
          f"{r['fast_over_10pct']} > 10% off", flush=True)
  with open(_OUT.value, 'w') as f:
    json.dump({'measured': _MEASURED.value, 'device_file': _DEVICE_FILE.value,
               'sessions': len(ends), 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
