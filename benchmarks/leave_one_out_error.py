r"""Does the support set say how accurate the adapted predictor will be?

    python -m benchmarks.leave_one_out_error [--out=runs/leave_one_out_error.json]

A user who measured only the references and ~10 samples has no held-out
rows to check the adapted predictor on. ``MetaPredictor.leave_one_out``
estimates its error from the support alone: each sample predicted by the
predictor adapted on the other rows. Here, for every device that neither
meta-training nor model selection used (each space's meta-test devices and
the bundled devices no split uses) and 5 support draws of 10 samples
(``meta_test``'s protocol, untrimmed): the median |relative error| of that
estimate against the median |relative error| on the device's query rows,
per device, and their rank correlation over all draws. ``--device_file``
(repeatable) adds measured device files, each adapted on all its non-query
rows (the references + its samples) and checked on its query rows. Writes
``--out``.
"""

import os

from absl import app
from absl import flags
import numpy as np
import scipy.stats

import meta
from benchmarks import write_json
from meta import adaptation
from meta import latency_data
from meta import tasks as tasks_lib

_OUT = flags.DEFINE_string('out', 'runs/leave_one_out_error.json', 'Results.')
_SEEDS = flags.DEFINE_integer('seeds', 5, 'Support draws per device.')
_FILES = flags.DEFINE_multi_string('device_file', [], 'Measured device '
                                   'files to check as well.')


def unseen_devices(space: str) -> list[str]:
  """The meta-test devices, then the bundled devices no split uses."""
  split = latency_data.SPLITS[space]
  used = set(split.meta_train + split.meta_valid + split.meta_test)
  return list(split.meta_test) + [
      d for d in latency_data.load_space_data(space).devices if d not in used]


def main(argv):
  del argv
  out = {'command': 'python -m benchmarks.leave_one_out_error',
         'seeds': _SEEDS.value, 'num_samples': 10, 'devices': {}}
  estimated, actual = [], []
  for space in ('fbnet', 'nasbench201', 'ofa'):
    predictor = adaptation.MetaPredictor.load(
        os.path.join(meta.PRETRAINED_DIR, space))
    for name in unseen_devices(space):
      device = latency_data.bundled_device(space, name)
      rows = []
      for task in tasks_lib.make_tasks(device, num_samples=10,
                                       seeds=range(_SEEDS.value), trim=False):
        adapted = predictor.adapt(task.support_archs, task.support_ms,
                                  task.reference_ms)
        query = adapted.predict_ms(task.query_archs) / task.query_ms - 1
        loo = predictor.leave_one_out(task.support_archs, task.support_ms,
                                      task.reference_ms)
        rows.append((float(np.median(np.abs(loo))),
                     float(np.median(np.abs(query)))))
      estimated += [r[0] for r in rows]
      actual += [r[1] for r in rows]
      entry = {'leave_one_out_median_abs_error': [r[0] for r in rows],
               'query_median_abs_error': [r[1] for r in rows],
               'num_query': int(device.is_query.sum())}
      out['devices'][f'{space}/{name}'] = entry
      print(f'{space:12s} {name:14s} leave-one-out '
            f'{100 * np.mean(entry["leave_one_out_median_abs_error"]):5.1f}%'
            f'  query rows {100 * np.mean(entry["query_median_abs_error"]):5.1f}%'
            ' (median |relative error|, mean over draws)', flush=True)
  for path in _FILES.value:
    device = latency_data.load_device_file(path)
    predictor = adaptation.MetaPredictor.load(
        os.path.join(meta.PRETRAINED_DIR, device.space))
    rows = ~device.is_query
    adapted = predictor.adapt(device.archs[rows], device.latency_ms[rows])
    query = (adapted.predict_ms(device.archs[device.is_query]) /
             device.latency_ms[device.is_query] - 1)
    loo = predictor.leave_one_out(device.archs[rows], device.latency_ms[rows])
    out.setdefault('device_files', {})[path] = {
        'leave_one_out_median_abs_error': float(np.median(np.abs(loo))),
        'query_median_abs_error': float(np.median(np.abs(query))),
        'num_samples': int(len(loo)),
        'num_query': int(device.is_query.sum())}
    print(f'{path}: leave-one-out {100 * np.median(np.abs(loo)):.1f}%  query '
          f'rows {100 * np.median(np.abs(query)):.1f}%', flush=True)
  out['rank_correlation_over_draws'] = float(
      scipy.stats.spearmanr(estimated, actual)[0])
  ratio = np.array(estimated) / np.array(actual)
  out['estimate_over_actual'] = {
      'median': float(np.median(ratio)),
      'within_factor_1.5': float(np.mean((ratio > 1 / 1.5) & (ratio < 1.5))),
      'within_factor_2': float(np.mean((ratio > 0.5) & (ratio < 2)))}
  print(f'{len(estimated)} draws: rank correlation '
        f'{out["rank_correlation_over_draws"]:.3f}; estimate / actual: median '
        f'{out["estimate_over_actual"]["median"]:.2f}, within 1.5x '
        f'{100 * out["estimate_over_actual"]["within_factor_1.5"]:.0f}%, '
        f'within 2x {100 * out["estimate_over_actual"]["within_factor_2"]:.0f}%')
  write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
