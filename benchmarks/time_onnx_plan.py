r"""Fills an --export_onnx folder's timings.csv with ONNX Runtime timings.

    python -m experiments.measure --archs=reference,random:10,query:100 \
        --export_onnx=runs/ort1
    python -m benchmarks.time_onnx_plan --plan=runs/ort1 --threads=1
    python -m experiments.measure --from_timings=runs/ort1/timings.csv \
        --name=ort_1thread --out=runs/ort_1thread.npz

The step a user does with their own tool on their own device (TFLite's
benchmark tool, trtexec, a vendor SDK), done here with ONNX Runtime on
this CPU: an example to adapt, and the test of the route end to end. Each
model gets ``--warmup`` untimed calls, then ``--rounds`` rounds time every
model ``--repeats`` times in a fresh random order (interleaved, so that
the machine's drift spreads over all models); a model's latency is the
median of its timings. Writes the milliseconds into ``timings.csv`` (the
other columns unchanged) and the spread beside it (``timings_spread.json``).
"""

import csv
import os
import time

from absl import app
from absl import flags
import numpy as np
import tqdm

from benchmarks import write_json
from fbnet_jax import elsewhere
from fbnet_jax import export
from fbnet_jax import workdirs

_PLAN = flags.DEFINE_string('plan', None, 'An --export_onnx folder.',
                            required=True)
_THREADS = flags.DEFINE_integer('threads', 1, 'ONNX Runtime intra-op threads '
                                '(0: its default, one per physical core).')
_WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed calls per model.')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Interleaved rounds.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per model and '
                                'round.')


def main(argv):
  del argv
  path = os.path.join(_PLAN.value, elsewhere.TIMINGS_FILE)
  with open(path, newline='', encoding='utf-8-sig') as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f'{path}: no rows; expected the timings.csv that '
                     'experiments.measure --export_onnx wrote.')
  calls = []
  for row in tqdm.tqdm(rows, desc='sessions', unit='model'):
    session = export.onnxruntime_session(
        os.path.join(_PLAN.value, row['model']), threads=_THREADS.value)
    shape = tuple(int(d) for d in row['input_shape'].split('x'))
    call = export.onnxruntime_forward(session, np.zeros(shape, np.float32))
    for _ in range(_WARMUP.value):
      call()
    calls.append(call)
  times = [[] for _ in rows]
  rng = np.random.default_rng(0)
  t0 = time.time()
  for _ in tqdm.trange(_ROUNDS.value, desc='rounds'):
    for i in rng.permutation(len(rows)):
      for _ in range(_REPEATS.value):
        start = time.perf_counter()
        calls[i]()
        times[i].append(1e3 * (time.perf_counter() - start))
  medians = [float(np.median(t)) for t in times]
  spread = [float(np.subtract(*np.percentile(t, [75, 25])) / np.median(t))
            for t in times]
  for row, ms in zip(rows, medians):
    row['latency_ms'] = f'{ms:.4f}'
  with workdirs.atomic_open(path, 'w') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  write_json(os.path.join(_PLAN.value, 'timings_spread.json'), {
      'command': 'python -m benchmarks.time_onnx_plan', 'threads':
      _THREADS.value, 'rounds': _ROUNDS.value, 'repeats': _REPEATS.value,
      'seconds': time.time() - t0,
      'median_relative_iqr': float(np.median(spread)),
      'max_relative_iqr': float(np.max(spread))})
  print(f'{len(rows)} models timed: {min(medians):.3f}..{max(medians):.3f} '
        f'ms, median IQR/median {np.median(spread):.3f} -> {path}')


if __name__ == '__main__':
  app.run(main)
