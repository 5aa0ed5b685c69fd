r"""The same networks on this machine's JAX backend and on ONNX Runtime.

    python -m benchmarks.onnxruntime_vs_jax --num_random=10 --num_query=40 \
        --out=benchmarks/results/cpu_2026-11-28/onnxruntime_vs_jax

Measures the 10 FBNet reference architectures, ``--num_random`` random ones
(adaptation support) and ``--num_query`` random ones (``is_query``: never
seen by adaptation) twice, each in a fresh process: with the JAX backend
(the harness's default) and exported to ONNX and run on ONNX Runtime's CPU
provider (``--runtime=onnxruntime`` of ``experiments.measure``), and writes
both device files. It reports the ratio of the two runtimes' latencies per
network, how well one runtime's ranking predicts the other's, and the
bundled meta-learned predictor adapted to each device file (references +
the support rows) scored on its query rows: a runtime is a device of its
own, and the predictor has to be adapted to it. Plots ONNX Runtime against
JAX latency per network. Exported graphs are cached beside XLA's cache
(:func:`fbnet_jax.compilation_cache.onnx_dir`), so a rerun only times.
"""

import json
import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib import ticker  # pylint: disable=g-import-not-at-top
import numpy as np
import scipy.stats

import benchmarks
from fbnet_jax import compilation_cache
from fbnet_jax import latency as latency_lib
from fbnet_jax import measure
from fbnet_jax import spaces
from meta import latency_data

_RANDOM = flags.DEFINE_integer('num_random', 10, 'Support architectures.')
_QUERY = flags.DEFINE_integer('num_query', 40, 'Query architectures.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the random architectures.')
_BUDGET = flags.DEFINE_float('time_budget_s', 120.0, 'Timing budget per '
                             'runtime (after compilation / export).')
_ROUNDS = flags.DEFINE_integer('max_rounds', 20, 'Most interleaved rounds '
                               'per runtime (5 timed calls each).')
_REPLOT = flags.DEFINE_bool('replot', False, 'Only redraw the plot from '
                            'OUT/summary.json.')
_OUT = flags.DEFINE_string('out', 'runs/onnxruntime_vs_jax', 'Output folder.')


def predictor_check(device) -> dict:
  """The bundled predictor adapted on the device's support rows, scored on
  its query rows."""
  adapted = latency_lib.adapt_predictor('fbnet', device, num_samples=0)
  query = device.is_query
  predicted = adapted.predict_ms(device.archs[query], floor=False)
  measured = device.latency_ms[query]
  return {'num_query': int(query.sum()),
          'spearman': float(scipy.stats.spearmanr(predicted, measured)[0]),
          'median_abs_relative_error': float(np.median(np.abs(
              predicted / measured - 1)))}


def plot(summary: dict, path: str) -> None:
  """ONNX Runtime against JAX latency per network, from ``summary``."""
  rows = summary['archs']
  jax_ms = np.array([r['jax_ms'] for r in rows])
  ort_ms = np.array([r['onnxruntime_ms'] for r in rows])
  query = np.array([r['is_query'] for r in rows])
  reference = np.arange(len(rows)) < 10
  fig, ax = plt.subplots(figsize=(5, 4.5))
  for label, mask, marker in [('reference', reference, 'D'),
                              ('support', ~query & ~reference, 's'),
                              ('query', query, 'o')]:
    ax.scatter(jax_ms[mask], ort_ms[mask], marker=marker, s=18, label=label)
  lo, hi = min(jax_ms.min(), ort_ms.min()), max(jax_ms.max(), ort_ms.max())
  ax.plot([lo, hi], [lo, hi], 'k:', lw=1, label='equal')
  ax.set_xscale('log')
  ax.set_yscale('log')
  for axis in (ax.xaxis, ax.yaxis):
    axis.set_major_formatter(ticker.FormatStrFormatter('%g'))
    axis.set_minor_formatter(ticker.FormatStrFormatter('%g'))
  ax.tick_params(which='minor', labelsize=7)
  ax.set_xlabel('JAX (XLA CPU) latency, ms')
  ax.set_ylabel('ONNX Runtime (CPU) latency, ms')
  ax.set_title(f'{len(rows)} FBNet CIFAR networks, batch 1: Spearman '
               f'{summary["spearman_between_runtimes"]:.3f}', fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  if _REPLOT.value:
    with open(os.path.join(_OUT.value, 'summary.json')) as f:
      plot(json.load(f), os.path.join(_OUT.value, 'onnxruntime_vs_jax.png'))
    return
  compilation_cache.enable()
  space = spaces.space_for('fbnet', 'cifar')
  ref_archs = latency_data.load_space_data('fbnet').reference_archs
  archs = np.concatenate([ref_archs, space.sample(
      np.random.default_rng(_SEED.value), _RANDOM.value + _QUERY.value)])
  refs = list(range(len(ref_archs)))
  query = np.arange(len(archs)) >= len(ref_archs) + _RANDOM.value
  out = {'num_archs': len(archs)}
  devices = {}
  for runtime in measure.RUNTIMES:
    config = measure.MeasureConfig(runtime=runtime,
                                   time_budget_s=_BUDGET.value,
                                   max_rounds=_ROUNDS.value)
    device = measure.measure_archs_in_fresh_process(
        archs, config, reference_rows=refs, name=f'here_{runtime}',
        is_query=query)
    latency_data.save_device_file(
        os.path.join(_OUT.value, f'device_{runtime}.npz'), device)
    devices[runtime] = device
    m = device.meta
    out[runtime] = {
        'prepare_seconds': float(m['compile_seconds']),
        'measure_seconds': float(m['measure_seconds']),
        'rounds': int(m['rounds']),
        'median_relative_spread': float(m['median_relative_spread']),
        'reference_drift': float(m['reference_drift']),
        'median_ms': float(np.median(device.latency_ms)),
        'predictor': predictor_check(device)}
    print(runtime, out[runtime], flush=True)
  jax_ms = devices['jax'].latency_ms
  ort_ms = devices['onnxruntime'].latency_ms
  ratio = ort_ms / jax_ms
  out['onnxruntime_over_jax'] = {
      'median': float(np.median(ratio)), 'min': float(ratio.min()),
      'max': float(ratio.max())}
  out['spearman_between_runtimes'] = float(
      scipy.stats.spearmanr(jax_ms, ort_ms)[0])
  out['archs'] = [{'arch': space.names(a), 'jax_ms': float(j),
                   'onnxruntime_ms': float(o), 'is_query': bool(q)}
                  for a, j, o, q in zip(archs, jax_ms, ort_ms, query)]
  benchmarks.write_json(os.path.join(_OUT.value, 'summary.json'), out)

  plot(out, os.path.join(_OUT.value, 'onnxruntime_vs_jax.png'))
  print(f'ONNX Runtime / JAX latency: median '
        f'{out["onnxruntime_over_jax"]["median"]:.2f} (range '
        f'{ratio.min():.2f}-{ratio.max():.2f}); Spearman between runtimes '
        f'{out["spearman_between_runtimes"]:.3f}; predictor on query rows: '
        f'JAX {out["jax"]["predictor"]["spearman"]:.3f}, ONNX Runtime '
        f'{out["onnxruntime"]["predictor"]["spearman"]:.3f} -> {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
