r"""DNAS search (FBNet) for a target device and latency.

    python -m experiments.search --config=configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.search --config=configs/fbnet_cifar100.py \
        --config.latency.device=pixel3 --config.latency.target_ms=12 --workdir=W

Writes ``WORKDIR/result.json`` (architecture, latency from every source,
FLOPs, params, supernet accuracy), ``arch_distribution.png`` and
``latency.png``, TensorBoard scalars, and resumable orbax checkpoints.

The closed loop on this machine's own hardware:

    python -m experiments.search --config=configs/closed_loop.py \
        --config.latency.device_file=runs/my_cpu.npz \
        --config.latency.target_ms=3 --workdir=runs/my_cpu_search

measures the device file first if it does not exist (the reference
architectures + ``latency.num_samples`` random ones, on the local JAX
backend), adapts the predictor to it, searches, and then measures the found
architecture and adds predicted vs. measured latency to ``result.json``
(``--verify``; by default whenever the device file was measured on this
machine's backend): the median of ``config.measure.verify_sessions``
measuring sessions.
"""

import os

from absl import flags
import jax
from jax.experimental import multihost_utils
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import closed_loop
from fbnet_jax import compilation_cache
from fbnet_jax import errors
from fbnet_jax import latency
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import search_report
from fbnet_jax import workdirs
from meta import latency_data

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Search configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart',
                               'Output directory (resumes if it exists).')
_MULTIHOST = flags.DEFINE_bool('multihost', False,
                               'Call jax.distributed.initialize() first.')
_VERIFY = flags.DEFINE_enum(
    'verify', 'auto', ['auto', 'yes', 'no'],
    'Measure the found architecture on this machine (auto: when the device '
    'file was measured on this backend; its settings must then match '
    'config.measure).')


def main(argv):
  del argv
  if _MULTIHOST.value:
    jax.distributed.initialize()
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.search')
  errors.check_bounds(config, searcher_lib.BOUNDS)  # before any measuring
  path = config.latency.get('device_file')
  if path and config.latency.source == 'lut':  # before 'no such file'
    latency.latency_source(config)  # the error that says what to set
  if _VERIFY.value == 'yes' and not path:
    raise errors.InputError(
        '--verify=yes: measures the found architecture against '
        'config.latency.device_file, which is not set; set it '
        'to a device file of this machine (experiments.measure),'
        ' or use --verify=auto or no.')
  # Multi-host: the first process measures and writes; the others wait.
  main_process = jax.process_index() == 0
  if path and config.latency.source == 'predictor' and not os.path.exists(
      path):
    if main_process:
      made = closed_loop.ensure_device_file(config, path,
                                            config.latency.num_samples)
      print(f'measured {made["measured"]} architectures -> {path} in '
            f'{made["seconds"]:.0f} s')
    _sync('device file')
  device = latency_data.load_device_file(path) if path else None
  verify = device is not None and _should_verify(config, device)
  if verify:  # before the search: a file measured otherwise is not comparable
    closed_loop.check_measured_here(config, device, path)
  result = search.train_and_evaluate(config, _WORKDIR.value)
  print(search_report.summary(result))
  if verify and main_process:
    check = result['measured'] = closed_loop.verify_found(
        config, result, device, _WORKDIR.value)
    workdirs.write_json(os.path.join(_WORKDIR.value, search.RESULT_FILE),
                        result)
    print(f'measured here: {check["measured_ms"][0]:.3f} ms, the median of '
          f'{len(check["sessions"])} sessions (predicted '
          f'{check["predicted_ms"]:.3f} ms, target '
          f'{config.latency.target_ms} ms; reference drift since the '
          f'device file {100 * check["drift_vs_device_file"]:+.1f}%)')


def _sync(name: str) -> None:
  """Multi-host: every process waits here until all have arrived."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _should_verify(config, device) -> bool:
  """auto: when the device file was measured here with this config's
  runtime (JAX on this backend, or ONNX Runtime: ``onnxruntime_cpu``)."""
  if _VERIFY.value != 'auto':
    return _VERIFY.value == 'yes'
  return closed_loop.on_this_backend(config, device)


if __name__ == '__main__':
  cli.run(main)
