r"""Measures architectures on this machine's JAX backend -> a device file.

    python -m experiments.measure --space=fbnet --archs=reference,random:10 \
        --seed=0 --out=runs/my_cpu.npz
    python -m experiments.measure --archs=reference,random:10,query:200 --out=runs/my_cpu_eval.npz
    python -m experiments.measure --archs=result:runs/quickstart/result.json --out=runs/found.npz
    python -m experiments.measure --runtime=onnxruntime --archs=reference,random:10 \
        --out=runs/my_cpu_onnxruntime.npz

``--archs`` is a comma-separated list of: ``reference`` (the space's 10
reference architectures), ``random:N`` (N uniformly random ones),
``spread:N`` (N from uniform to nearly the cheapest: a support set that
covers the fast end, ``SearchSpace.sample_spread``), ``query:N`` (N random
ones flagged ``is_query``: evaluation only),
``result:PATH`` (the derived and sampled architectures of a search) and
``file:PATH`` (the architectures of another device file). The output is a
device file (``meta/data/README.md``) usable as it is by
``experiments.adapt`` and the searches (and by ``experiments.meta_test
--device_file`` when it holds ``query:N`` rows to score), with the
measurement's noise figures. ``--runtime=onnxruntime`` times each network
exported to ONNX on ONNX Runtime instead (a separate device name; needs
``pip install -e '.[onnx]'``).

A device that JAX does not run on (a phone, an NPU, TensorRT):

    python -m experiments.measure --archs=reference,random:10,query:100 \
        --export_onnx=runs/phone          # ONNX models + timings.csv
    # ... time each model on the device, fill in timings.csv's latency_ms ...
    python -m experiments.measure --from_timings=runs/phone/timings.csv \
        --name=my_phone --out=runs/my_phone.npz

(:mod:`fbnet_jax.elsewhere`.)
"""

import dataclasses
import os
import platform

from absl import flags
from absl import logging

from experiments import cli
from fbnet_jax import arch_lists
from fbnet_jax import compilation_cache
from fbnet_jax import elsewhere
from fbnet_jax import errors
from fbnet_jax import measure
from fbnet_jax import models
from fbnet_jax import spaces
from fbnet_jax import workdirs
from meta import latency_data

_SPACE = flags.DEFINE_enum('space', 'fbnet', sorted(models.STANDALONE),
                           'Space (one with standalone networks).')
_ARCHS = flags.DEFINE_list('archs', ['reference', 'random:10'],
                           'What to measure (see the module docstring).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of random architectures.',
                             lower_bound=0)
_OUT = flags.DEFINE_string('out', 'runs/local_device.npz', 'Device file.')
_NAME = flags.DEFINE_string('name', '', 'Device name (default: host + '
                            'backend; with --from_timings, the plan '
                            "folder's name).")
_MACRO = flags.DEFINE_enum('macro', 'cifar', list(spaces.FBNetSpace.MACROS),
                           'FBNet macro network.')
_BATCH = flags.DEFINE_integer('batch_size', 1, 'Batch size.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', list(measure.DTYPES),
                           'Of the timed networks (jax runtime).')
_BUDGET = flags.DEFINE_float('time_budget_s', 600.0,
                             'Stop adding rounds after this many seconds.')
_SPREAD = flags.DEFINE_float('spread_bound', 0.05,
                             'Stop when every IQR/median is below this.')
_MAX_ROUNDS = flags.DEFINE_integer(
    'max_rounds', measure.MeasureConfig.max_rounds,
    'Stop after this many interleaved rounds (the file records what '
    'stopped it: spread_bound, time_budget_s or max_rounds).')
_RUNTIME = flags.DEFINE_enum('runtime', 'jax', list(measure.RUNTIMES),
                             'jax: the local JAX backend; onnxruntime: each '
                             'network exported to ONNX and run on ONNX '
                             "Runtime's CPU provider (needs the onnx extra).")
_STATISTIC = flags.DEFINE_enum(
    'statistic', 'median', list(measure.STATISTICS), "What the file's "
    "latency_ms holds: each network's median or minimum over its timings "
    '(both are stored).')
_EXPORT = flags.DEFINE_string(
    'export_onnx', '', 'Instead of timing here: write the architectures as '
    'ONNX models into this folder, with a timings.csv to fill in on a device '
    'JAX does not run on (a phone, an NPU); see --from_timings.')
_FROM_TIMINGS = flags.DEFINE_string(
    'from_timings', '', 'A timings.csv of an --export_onnx folder with its '
    'latency_ms column filled in: write the device file --out from it.')
_ONNX_THREADS = flags.DEFINE_integer(
    'onnx_threads', 0, "ONNX Runtime's intra-op threads (onnxruntime "
    'runtime only); 0: its default. A closed loop or search measuring with '
    'config.measure.onnx_threads compares only with a file of the same.')
_CORES = flags.DEFINE_integer(
    'cpu_cores', 0, '0: the cores this process may use; k: XLA started and '
    'the timing run on k pinned cores (compiling uses every core; jax '
    'runtime only).')


def from_timings(csv_path: str, out: str, name: str) -> None:
  """``--from_timings``: a filled timings.csv -> the device file ``out``."""
  device = elsewhere.write_device_file(csv_path, out, name)
  missing = int((device.reference_rows() < 0).sum())
  print(f'{len(device.latency_ms)} measured architectures '
        f'({int(device.is_query.sum())} query) -> {os.path.abspath(out)}; '
        f'latency {device.latency_ms.min():.3f}..'
        f'{device.latency_ms.max():.3f} ms'
        + (f'; {missing} of 10 reference architectures missing (imputed)'
           if missing else ''))


def export_onnx(directory: str, space, archs, query, refs) -> None:
  """``--export_onnx``: the architectures as ONNX models to time elsewhere."""
  csv_path = elsewhere.export_plan(directory, space, archs, query, refs,
                                   batch_size=_BATCH.value)
  print(f'{len(archs)} ONNX models (batch {_BATCH.value}, NHWC float32 '
        f'images -> logits) in {os.path.abspath(directory)}.\nTime each on '
        f'your device, write its milliseconds into the latency_ms column of '
        f'{csv_path}, then:\n  python -m experiments.measure '
        f'--from_timings={csv_path} --name=MY_DEVICE --out=MY_DEVICE.npz')


# Flags that timing here uses and the two steps of measuring elsewhere do
# not: given with them, an error rather than silently ignored.
_NOT_FOR = {
    '--export_onnx': ('runtime', 'dtype', 'cpu_cores', 'onnx_threads',
                      'statistic',
                      'time_budget_s', 'spread_bound', 'max_rounds', 'out',
                      'name'),
    '--from_timings': ('space', 'macro', 'archs', 'seed', 'batch_size',
                       'runtime', 'dtype', 'cpu_cores', 'onnx_threads',
                       'statistic',
                       'time_budget_s', 'spread_bound', 'max_rounds',
                       'export_onnx'),
}


def _refuse_unused_flags(mode: str) -> None:
  given = [f'--{n}' for n in _NOT_FOR[mode] if flags.FLAGS[n].present]
  if given:
    raise errors.InputError(
        f'{mode}: {", ".join(given)} not used with it (the plan fixes the '
        'architectures and settings; the device\'s own tool times them); '
        'expected them left out.')


def main(argv):
  del argv
  if _FROM_TIMINGS.value:
    _refuse_unused_flags('--from_timings')
    from_timings(_FROM_TIMINGS.value, _OUT.value, _NAME.value)
    return
  if _EXPORT.value:
    _refuse_unused_flags('--export_onnx')
  settings = dict(
      space=_SPACE.value, macro=_MACRO.value, batch_size=_BATCH.value,
      dtype=_DTYPE.value, time_budget_s=_BUDGET.value,
      spread_bound=_SPREAD.value, max_rounds=_MAX_ROUNDS.value,
      seed=_SEED.value, runtime=_RUNTIME.value,
      statistic=_STATISTIC.value, cpu_cores=_CORES.value,
      onnx_threads=_ONNX_THREADS.value)
  errors.check_bounds(settings, measure.BOUNDS, '--')  # the flags' names
  space = spaces.space_for(_SPACE.value, _MACRO.value)
  if _EXPORT.value:
    export_onnx(_EXPORT.value, space,
                *arch_lists.select_archs(space, _ARCHS.value, _SEED.value))
    return
  compilation_cache.enable()
  latency_data.check_device_file_path(_OUT.value, '--out')
  workdirs.check_writable(_OUT.value, '--out')  # before compiling and timing
  config = measure.make_config('--', **settings)
  archs, query, refs = arch_lists.select_archs(space, _ARCHS.value,
                                               _SEED.value)
  # Nothing above starts JAX's backend, so that cpu_cores can size its pools.
  # A killed measurement rerun with the same flags goes on from its last
  # round (kept beside --out until the file is written).
  partial = measure.resume_file_for(_OUT.value)
  if os.path.exists(_OUT.value):
    logging.warning('--out: %s exists; this measurement replaces it when it '
                    'ends.', _OUT.value)
  device = measure.measure_archs(archs, config, reference_rows=refs,
                                 name=_NAME.value or 'local', is_query=query,
                                 pin_client=True, resume_file=partial)
  if not _NAME.value:
    device = dataclasses.replace(device, name=(
        f'{platform.node()}_{measure.backend_name(_RUNTIME.value)}'))
  latency_data.save_device_file(_OUT.value, device)
  measure.discard_resume_file(partial)
  m = device.meta
  print(f'{len(archs)} architectures -> {os.path.abspath(_OUT.value)}\n'
        f'latency {device.latency_ms.min():.3f}..{device.latency_ms.max():.3f}'
        f' ms; spread (IQR/median) median {float(m["median_relative_spread"]):.3f}'
        f' max {float(m["max_relative_spread"]):.3f}; reference drift '
        + (f'{100 * float(m["reference_drift"]):+.1f}%' if refs else
           'not measured (no reference architectures)')
        + f'; {int(m["rounds"])} rounds;'
        f' compile {float(m["compile_seconds"]):.0f}s, timing '
        f'{float(m["measure_seconds"]):.0f}s'
        + (f'; resumed after round(s) {list(m["resumed_at_rounds"])}'
           if len(m['resumed_at_rounds']) else ''))


if __name__ == '__main__':
  cli.run(main)
