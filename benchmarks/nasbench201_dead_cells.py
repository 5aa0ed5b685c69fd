r"""NAS-Bench-201 cells whose output is cut off from their input, per device.

    python -m benchmarks.nasbench201_dead_cells [--out=runs/nasbench201_dead_cells.json]

A cell whose every input->output path passes a ``none`` edge outputs zeros
(or a constant): the network after it computes nothing that depends on the
image. Some runtimes fold that away, and the whole network then measures
near 0 ms; others run it. For every device of the bundled HELP data
(all 15,625 cells): how many cells are cut off, and their median latency
against the others'. Then, on each NAS-Bench-201 meta-test device, what
knowing it would be worth: the bundled predictor's Spearman on the query
rows (5 support draws, 10 samples, untrimmed, as ``meta_test`` scores) as
it is, and with every cut-off query cell ranked fastest. Writes ``--out``.
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

import meta
from benchmarks import write_json
from fbnet_jax.spaces import nasbench201
from meta import adaptation
from meta import latency_data
from meta import tasks as tasks_lib

_OUT = flags.DEFINE_string('out', 'runs/nasbench201_dead_cells.json',
                           'Results.')


def cut_off(archs: np.ndarray) -> np.ndarray:
  """bool [N]: no input->output path of non-``none`` edges."""
  return np.array([not nasbench201.live_edges(a).any() for a in archs])


def main(argv):
  del argv
  raw = np.load(os.path.join(latency_data.DATA_DIR, 'nasbench201_latency.npz'))
  dead = cut_off(raw['arch'])
  out = {'command': 'python -m benchmarks.nasbench201_dead_cells',
         'num_cells': int(len(dead)), 'num_cut_off': int(dead.sum()),
         'devices': {}, 'meta_test': {}}
  for name, lat in zip(raw['devices'], raw['latency_ms']):
    out['devices'][str(name)] = {
        'median_ms_cut_off': float(np.median(lat[dead])),
        'median_ms_others': float(np.median(lat[~dead])),
        'min_ms_others': float(lat[~dead].min())}
  predictor = adaptation.MetaPredictor.load(
      os.path.join(meta.PRETRAINED_DIR, 'nasbench201'))
  method = adaptation.MetaMethod(predictor, predictor.config.meta.algorithm)
  for name in latency_data.SPLITS['nasbench201'].meta_test:
    device = latency_data.bundled_device('nasbench201', name)
    as_is, known = [], []
    for task in tasks_lib.make_tasks(device, num_samples=10,
                                     seeds=range(5), trim=False):
      pred = np.asarray(method.adapt(task)(task.query_archs), np.float64)
      as_is.append(tasks_lib.spearman(pred, task.query_ms))
      pred[cut_off(task.query_archs)] = pred.min() - 1.0
      known.append(tasks_lib.spearman(pred, task.query_ms))
    out['meta_test'][name] = {
        'query_cut_off': int(cut_off(task.query_archs).sum()),
        'spearman': float(np.mean(as_is)),
        'spearman_cut_off_ranked_fastest': float(np.mean(known))}
    print(name, json.dumps(out['meta_test'][name]), flush=True)
  write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
