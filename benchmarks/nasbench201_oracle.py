r"""How far the measured data lets any NAS-Bench-201 predictor go.

    python -m benchmarks.nasbench201_oracle [--out=runs/nasbench201_oracle.json]

An "oracle" that has seen every one of a device's 15,625 measured cells:
each query cell predicted by the mean latency of the cells with its
operation counts (how many of the 6 edges hold each of the 5 operations),
over all cells (``all_cells``) or over all cells but itself
(``leave_one_out``, a nonparametric model that never sees the cell it
predicts). Spearman on each NAS-Bench-201 meta-test device's query rows
(reference rows excluded, as ``meta_test`` scores them), both protocols
(HELP's trimming by the measured latencies). A device whose latencies
follow the operation counts, up to its measurement's resolution, is
capped near these numbers: pixel2 measures whole milliseconds. Writes
``--out``.
"""

import json
import os

from absl import app
from absl import flags
import numpy as np
from scipy import stats

from benchmarks import write_json
from meta import latency_data

_OUT = flags.DEFINE_string('out', 'runs/nasbench201_oracle.json', 'Results.')


def op_count_means(archs: np.ndarray, latency_ms: np.ndarray,
                   num_ops: int) -> tuple[np.ndarray, np.ndarray]:
  """Each cell's mean latency over the cells with its operation counts,
  with and without the cell itself."""
  counts = np.stack([(archs == op).sum(-1) for op in range(num_ops)], -1)
  _, group = np.unique(counts, axis=0, return_inverse=True)
  group = group.ravel()
  sums = np.bincount(group, weights=latency_ms)
  sizes = np.bincount(group)
  with_cell = sums[group] / sizes[group]
  others = np.maximum(sizes[group] - 1, 1)  # a lone cell: its own value
  without = np.where(sizes[group] > 1,
                     (sums[group] - latency_ms) / others, latency_ms)
  return with_cell, without


def main(argv):
  del argv
  data = latency_data.load_space_data('nasbench201')
  raw = np.load(os.path.join(latency_data.DATA_DIR, 'nasbench201_latency.npz'))
  archs = raw['arch'].astype(np.int64)
  num_ops = len(raw['op_names'])
  out = {'command': 'python -m benchmarks.nasbench201_oracle',
         'devices': {}}
  for name in data.split.meta_test:
    device = latency_data.bundled_device('nasbench201', name)
    table = raw['latency_ms'][list(raw['devices']).index(name)]
    with_cell, without = op_count_means(archs, table.astype(np.float64),
                                        num_ops)
    rows = device.meta['benchmark_rows']
    query = device.is_query & ~np.isin(rows, data.reference_rows)
    q_rows, truth = rows[query], device.latency_ms[query]
    np.testing.assert_allclose(table[q_rows], truth)  # the same rows
    keep = latency_data.trim_mask(truth)
    result = {'num_query': int(query.sum()),
              'distinct_query_latencies': int(len(np.unique(truth)))}
    for label, pred in (('all_cells', with_cell), ('leave_one_out', without)):
      result[label] = {
          'untrimmed': float(stats.spearmanr(pred[q_rows], truth)[0]),
          'trimmed': float(stats.spearmanr(pred[q_rows][keep],
                                           truth[keep])[0])}
    out['devices'][name] = result
    print(name, json.dumps(result), flush=True)
  write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
