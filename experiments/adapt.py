r"""Adapts the meta-trained predictor to a device file and saves it.

    python -m experiments.adapt --device_file=runs/my_cpu.npz --workdir=runs/my_cpu_predictor

Support: the file's reference architectures + ``--num_samples`` of its
other non-query rows (0: all of them). If the file has ``is_query`` rows,
prints the Spearman and the median relative error of the predicted
milliseconds on them, and plots them against the measurements
(``WORKDIR/adapt.png``). With or without them, it prints a leave-one-out
estimate of that error from the support alone (each sample predicted
after adapting on the other rows); both go to ``WORKDIR/adapt.json``. A
search uses the result with ``--config.latency.source=predictor
--config.latency.adapted_dir=WORKDIR``.
"""

import os

from absl import flags
from absl import logging
import numpy as np

from experiments import cli
from fbnet_jax import compilation_cache
from fbnet_jax import errors
from fbnet_jax import latency
from fbnet_jax import workdirs
from meta import adaptation
from meta import latency_data
from meta import plots
from meta import tasks

_DEVICE_FILE = flags.DEFINE_string('device_file', None, 'Device file.',
                                   required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where the adapted '
                               'predictor is saved.', required=True)
_PREDICTOR = flags.DEFINE_string('predictor_dir', '', 'Meta-trained '
                                 'predictor: a meta_train workdir or its '
                                 'predictor/ (default: the bundled one).')
_SAMPLES = flags.DEFINE_integer('num_samples', 0, 'Samples besides the '
                                'references (0: every non-query row; 10 '
                                'reproduces the few-shot protocol of '
                                'meta_test and the searches).',
                                lower_bound=0)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the sample draw.',
                             lower_bound=0)
PLOT_FILE = 'adapt.png'  # the query rows, predicted against measured
REPORT_FILE = 'adapt.json'  # support size, leave-one-out, query check


def _warn_if_replacing(workdir: str, name: str) -> None:
  """A warning when ``workdir`` holds another device's adapted predictor
  (a search pointed at it would now get this one)."""
  saved = workdirs.read_json(os.path.join(workdir, adaptation.CONFIG_FILE))
  if saved is None:
    return
  old = saved.get('device')
  if old != name:
    logging.warning('%s: replacing the adapted predictor of device %r with '
                    "one of %r.", workdir, old, name)


def main(argv):
  del argv
  compilation_cache.enable()
  if not _DEVICE_FILE.value:
    raise errors.InputError('--device_file: empty; expected the path of '
                            'your device file (.npz).')
  device = latency_data.load_device_file(_DEVICE_FILE.value)
  if not _WORKDIR.value:
    raise errors.InputError('--workdir: empty; expected the folder to save '
                            'the adapted predictor in.')
  # After the file is read (a bad file leaves no folder), before adapting
  # and the leave-one-out (not when saving).
  workdirs.check_writable(os.path.join(_WORKDIR.value, REPORT_FILE),
                          '--workdir')
  support = latency.predictor_support(
      device.space, device, predictor_dir=_PREDICTOR.value or None,
      num_samples=_SAMPLES.value, seed=_SEED.value)
  adapted = support.adapt()
  _warn_if_replacing(_WORKDIR.value, device.name)
  adapted.save(_WORKDIR.value)
  missing = int((device.reference_rows() < 0).sum())
  print(f'adapted to {device.name} ({device.space}) from '
        f'{len(support.archs)} of its {int((~device.is_query).sum())} '
        'non-query rows'
        + (f'; {missing} reference architectures missing, imputed from a '
           'first adaptation' if missing else '')
        + f' -> {_WORKDIR.value}')
  report = {'device_file': os.path.abspath(_DEVICE_FILE.value),
            'device': device.name, 'space': device.space,
            'support_rows': int(len(support.archs)),
            'missing_references': missing,
            'leave_one_out': support.leave_one_out()}
  loo = report['leave_one_out']
  if loo['num_rows']:
    print(f'leave-one-out over its {loo["num_rows"]} samples (each predicted '
          'after adapting on the other rows): median |relative error| '
          f'{100 * loo["median_abs_relative_error"]:.1f}%, an estimate of '
          'the error on networks it was not adapted on')
  if device.is_query.any():
    q = device.is_query
    raw = adapted.predict_ms(device.archs[q], floor=False)  # ranked raw
    pred = adapted.floored(raw)
    err = np.median(np.abs(pred / device.latency_ms[q] - 1))
    spearman = tasks.spearman(raw, device.latency_ms[q])
    plot = os.path.join(_WORKDIR.value, PLOT_FILE)
    plots.plot_meta_test([plots.DevicePanel(
        label=device.name, query_ms=device.latency_ms[q],
        query_pred_ms=np.asarray(pred, np.float64),
        support_ms=support.ms,
        support_pred_ms=np.asarray(adapted.predict_ms(support.archs)),
        spearman=spearman, mean_spearman=spearman, num_draws=1)], plot,
        f'adapted on {len(support.archs)} of its rows')
    ranked = q.sum() > 1 and np.ptp(device.latency_ms[q]) > 0
    print(f'query rows: {int(q.sum())}; Spearman '
          + (f'{spearman:.4f}' if ranked else
             'undefined (fewer than 2 query rows, or all measured the same)')
          + f'; median |relative error| {100 * err:.1f}% ({plot})')
    report['query'] = {'num_rows': int(q.sum()),
                       'spearman': spearman if ranked else None,
                       'median_abs_relative_error': float(err)}
  workdirs.write_json(os.path.join(_WORKDIR.value, REPORT_FILE), report)


if __name__ == '__main__':
  cli.run(main)
