r"""A reported front measured again on this machine, later, in several sessions.

    python -m benchmarks.remeasure_front --front=runs/evolve_quick_1core/front.json \
        --device_file=runs/closed_loop_1core/local_device.npz \
        --statistic=min --cpu_cores=1 --sessions=3

An evolutionary search with latency in the loop on this machine reports
measured latencies (each from one session of the loop, on the device
file's scale). This times the front's architectures again in ``--sessions``
fresh sessions beside the references (``closed_loop.verify_in_sessions``,
each network's median over them) and compares: the front's reported
``latency_ms`` against the new median, raw and against the references;
and, where the front has them, the predictions made before measuring
(``predicted_latency_ms``). The harness's settings must be those of the
device file (``closed_loop.check_measured_here``). Writes ``--out``.
"""

import json

from absl import app
from absl import flags
import numpy as np

from configs import evolve_quick
from fbnet_jax import closed_loop
from fbnet_jax import compilation_cache
from fbnet_jax import evolve_report
from meta import latency_data

_FRONT = flags.DEFINE_string('front', None, 'front.json of an FBNet search.',
                             required=True)
_DEVICE = flags.DEFINE_string('device_file', None, 'The device file of this '
                              'machine the search used.', required=True)
_STATISTIC = flags.DEFINE_enum('statistic', 'median', ['median', 'min'],
                               'As the device file was measured.')
_CORES = flags.DEFINE_integer('cpu_cores', 0, 'As the device file was '
                              'measured (0: all cores).')
_SESSIONS = flags.DEFINE_integer('sessions', 3, 'Measuring sessions.')
_OUT = flags.DEFINE_string('out', 'runs/remeasure_front.json', 'Results.')


def main(argv):
  del argv
  compilation_cache.enable()
  with open(_FRONT.value) as f:
    front = json.load(f)
  config = evolve_quick.get_config()
  config.latency.source = 'predictor'
  config.latency.device_file = _DEVICE.value
  config.measure.statistic = _STATISTIC.value
  config.measure.cpu_cores = _CORES.value
  device = latency_data.load_device_file(_DEVICE.value)
  closed_loop.check_measured_here(config, device, _DEVICE.value)
  archs = np.array([p['arch_index'] for p in front], np.int32)
  check = closed_loop.verify_in_sessions(config, archs, device,
                                         sessions=_SESSIONS.value)
  reported = [p['latency_ms'] for p in front]
  out = {
      'front': _FRONT.value, 'device_file': _DEVICE.value,
      'statistic': _STATISTIC.value, 'cpu_cores': _CORES.value,
      'reported_ms': reported, **check,
      'reported_vs_raw': evolve_report.agreement(reported,
                                                 check['measured_ms']),
      'reported_vs_references': evolve_report.agreement(
          reported, check['measured_vs_references_ms'])}
  if all('predicted_latency_ms' in p for p in front):
    predicted = [p['predicted_latency_ms'] for p in front]
    out['predicted_vs_raw'] = evolve_report.agreement(predicted,
                                                      check['measured_ms'])
  for key in ('reported_vs_raw', 'reported_vs_references', 'predicted_vs_raw'):
    if key in out:
      errors = np.abs(out[key]['relative_errors'])
      print(f'{key}: median {100 * np.median(errors):.1f}%, worst '
            f'{100 * errors.max():.1f}%, {int((errors <= 0.1).sum())} of '
            f'{len(errors)} within 10%')
  print('references per session against the device file: ' + ', '.join(
      f'{100 * s["drift_vs_device_file"]:+.1f}%' for s in check['sessions']))
  with open(_OUT.value, 'w') as f:
    json.dump(out, f, indent=1)


if __name__ == '__main__':
  app.run(main)
