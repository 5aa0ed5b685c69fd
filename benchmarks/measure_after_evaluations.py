r"""Does the search process slow down the measuring session it starts?

    python -m benchmarks.measure_after_evaluations \
        --front=runs/evolve_loop_here/front.json --supernet=runs/evolve_loop_here/supernet \
        --device_file=runs/local_cpu_fbnet.npz

Latency in the loop on this machine (``measured_here.MeasuredHere``) measures
from a process that holds a trained supernet and has run evaluations. This
measures a front's architectures (``closed_loop.verify``: a fresh process,
beside the references) twice from one process: first bare, then after
restoring the supernet of the quick evolve config and fully evaluating
``--evaluations`` architectures. Around each session it lists every process
of the machine that used CPU time meanwhile (``ps``), besides the measuring
child, and this process's own CPU time.
"""

import json
import subprocess
import time

from absl import app
from absl import flags
import numpy as np

from configs import evolve_quick
from fbnet_jax import closed_loop
from fbnet_jax import compilation_cache
from fbnet_jax import evolve
from fbnet_jax import nsga
from fbnet_jax import searcher as searcher_lib
from meta import latency_data

_FRONT = flags.DEFINE_string('front', 'runs/evolve_loop_here/front.json',
                             'front.json of an FBNet evolve run.')
_SUPERNET = flags.DEFINE_string('supernet', 'runs/evolve_loop_here/supernet',
                                'Trained supernet of configs/evolve_quick.py.')
_DEVICE = flags.DEFINE_string('device_file', 'runs/local_cpu_fbnet.npz',
                              'A device file of this machine.')
_EVALUATIONS = flags.DEFINE_integer('evaluations', 4, 'Full evaluations '
                                    'before the second session.')


def _cpu_seconds() -> dict:
  """``{pid: (cumulative CPU seconds, command)}`` of every process."""
  out = subprocess.run(['ps', '-eo', 'pid=,times=,args='], capture_output=True,
                       text=True, check=True).stdout
  rows = (line.split(None, 2) for line in out.splitlines())
  return {pid: (int(t), args[:80]) for pid, t, args in rows}


def main(argv):
  del argv
  compilation_cache.enable()
  config = evolve_quick.get_config()
  config.latency.source = 'predictor'
  config.latency.device_file = _DEVICE.value
  device = latency_data.load_device_file(_DEVICE.value)
  with open(_FRONT.value) as f:
    front = np.array([p['arch_index'] for p in json.load(f)], np.int32)

  def session(tag):
    t0, cpu0, before = time.time(), time.process_time(), _cpu_seconds()
    result = closed_loop.verify(config, front, device)
    busy = {pid: (t - before.get(pid, (0,))[0], args)
            for pid, (t, args) in _cpu_seconds().items()
            if t > before.get(pid, (0,))[0]}
    print(f'{tag}: references {100 * result["drift_vs_device_file"]:+.1f}% '
          'since the device file; front ' + ' '.join(
              f'{v:.2f}' for v in result['measured_ms']) +
          f' ms; this process used {time.process_time() - cpu0:.1f} CPU s '
          f'in {time.time() - t0:.0f} s; other processes busy meanwhile: '
          f'{busy or "none"}', flush=True)

  session('bare process')
  searcher = searcher_lib.Searcher(config)
  state = evolve.restore_supernet(searcher, _SUPERNET.value)
  evaluator = evolve.SupernetEvaluator(searcher, state, None)
  encoding = nsga.Encoding(searcher.space, searcher.allowed())
  for arch in encoding.sample(np.random.default_rng(5), _EVALUATIONS.value):
    evaluator.validation(arch)
  session(f'after restoring the supernet and {_EVALUATIONS.value} '
          'evaluations')


if __name__ == '__main__':
  app.run(main)
