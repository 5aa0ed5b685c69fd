r"""How the adapted predictor improves with more measurements of a device.

    python -m benchmarks.predictor_support_size --space=nasbench201 \
        [--devices=raspi4,pixel2,eyeriss,fpga] [--sizes=10,20,40,80,160]

Adapts the bundled meta-trained predictor of ``--space`` to each bundled
device from its reference architectures + N random non-query rows (3 draws
per N; the support padded to one size, so one adaptation compiles) and
scores it on the device's query rows, which adaptation never sees:
Spearman and median relative error, mean over the draws. The evolutionary
search's latency in the loop (``config.evolve.measure_latency``) re-adapts
on dozens of measurements; this says where that can help. Writes ``--out``.
"""

import json

from absl import app
from absl import flags
import numpy as np
import scipy.stats

from fbnet_jax import latency as latency_lib
from meta import latency_data

_SPACE = flags.DEFINE_string('space', 'nasbench201', 'Bundled space.')
_DEVICES = flags.DEFINE_list('devices', ['raspi4', 'pixel2', 'eyeriss',
                                         'fpga'], 'Bundled devices.')
_SIZES = flags.DEFINE_list('sizes', ['10', '20', '40', '80', '160'],
                           'Measurements besides the references.')
_DRAWS = flags.DEFINE_integer('draws', 3, 'Support draws per size.')
_OUT = flags.DEFINE_string('out', 'runs/predictor_support_size.json',
                           'Results.')


def main(argv):
  del argv
  sizes = [int(n) for n in _SIZES.value]
  rows = []
  for name in _DEVICES.value:
    device = latency_data.bundled_device(_SPACE.value, name)
    refs = device.reference_rows()
    refs = refs[refs >= 0]
    others = np.nonzero(~device.is_query)[0]
    others = others[~np.isin(others, refs)]
    query = np.nonzero(device.is_query)[0]
    truth = device.latency_ms[query]
    for n in sizes:
      rho, err = [], []
      for draw in range(_DRAWS.value):
        support = latency_lib.predictor_support(_SPACE.value, device,
                                                num_samples=n, seed=draw)
        adapted = support.adapt(pad_to=len(refs) + max(sizes))
        pred = adapted.predict_ms(device.archs[query], floor=False)
        rho.append(scipy.stats.spearmanr(pred, truth)[0])
        err.append(np.median(np.abs(pred / truth - 1)))
      rows.append({'device': name, 'samples': n,
                   'spearman': float(np.mean(rho)),
                   'median_relative_error': float(np.mean(err))})
      print(f'{name:10s} {n:4d} samples: Spearman {rows[-1]["spearman"]:.4f}'
            f'  median error {rows[-1]["median_relative_error"]:.3f}',
            flush=True)
  with open(_OUT.value, 'w') as f:
    json.dump({'space': _SPACE.value, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
