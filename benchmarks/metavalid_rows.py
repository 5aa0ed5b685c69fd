r"""Are meta-valid scores optimistic? Selection rows against unseen rows.

    python -m benchmarks.metavalid_rows [--spaces=fbnet,nasbench201] \
        [--out=runs/metavalid_rows.json]

Model selection scores the meta-valid devices on held-out *pool* rows
(``meta.train.validation_tasks``: the pool's last ``valid_fraction``),
which are architectures that meta-training's episodes draw on other
devices. The meta-test query rows are architectures no episode saw. This
scores the bundled predictor on the meta-valid devices both ways with the
same support draws (references + ``num_samples`` rows of the pool's first
part, ``valid_seeds`` draws, as selection does): query = the selection
rows, or the devices' own query rows (never trained on). Both protocols.
Writes ``--out``.
"""

import importlib

from absl import app
from absl import flags
import numpy as np

from benchmarks import write_json
from meta import adaptation
from meta import latency_data
from meta import tasks as tasks_lib

_SPACES = flags.DEFINE_list('spaces', ['fbnet', 'nasbench201'],
                            'Bundled spaces.')
_OUT = flags.DEFINE_string('out', 'runs/metavalid_rows.json', 'Results.')


def device_with_query(dev: latency_data.Device, keep: np.ndarray,
                      query: np.ndarray) -> latency_data.Device:
  """``dev``'s rows ``keep`` (bool), the ``query`` (bool) ones as query."""
  return latency_data.Device(name=dev.name, space=dev.space,
                             archs=dev.archs[keep],
                             latency_ms=dev.latency_ms[keep],
                             is_query=query[keep], source=dev.source)


def main(argv):
  del argv
  out = {'command': 'python -m benchmarks.metavalid_rows', 'spaces': {}}
  for space in _SPACES.value:
    config = importlib.import_module(f'configs.help_{space}').get_config()
    data = latency_data.load_space_data(space)
    cut = int(data.split.pool_rows * (1 - config.eval.valid_fraction))
    method = adaptation.MetaMethod(
        adaptation.MetaPredictor.load(f'meta/pretrained/{space}'), 'imputed')
    variants = {'selection_rows': [], 'unseen_query_rows': []}
    for name in data.split.meta_valid:
      dev = latency_data.bundled_device(space, name)
      rows = dev.meta['benchmark_rows']
      ref = np.isin(rows, data.reference_rows)
      support = (rows < cut) | ref
      selection = (rows >= cut) & (rows < data.split.pool_rows) & ~ref
      unseen = dev.is_query & ~ref
      variants['selection_rows'].append(
          device_with_query(dev, support | selection, selection))
      variants['unseen_query_rows'].append(
          device_with_query(dev, support | unseen, unseen))
    result = {'valid_rows': [cut, data.split.pool_rows],
              'seeds': config.eval.valid_seeds,
              'num_samples': config.eval.num_samples}
    for variant, devices in variants.items():
      result[variant] = {
          protocol: tasks_lib.evaluate(
              method, devices, num_samples=config.eval.num_samples,
              seeds=range(config.eval.valid_seeds), trim=trim)
          for protocol, trim in (('untrimmed', False), ('trimmed', True))}
      print(space, variant, {p: round(r['mean_spearman'], 4)
                             for p, r in result[variant].items()}, flush=True)
    out['spaces'][space] = result
  write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
