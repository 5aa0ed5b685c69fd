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

from benchmarks import write_json
from meta import adaptation
from meta import latency_data
from meta import tasks as tasks_lib
from meta import train

_SPACES = flags.DEFINE_list('spaces', ['fbnet', 'nasbench201'],
                            'Bundled spaces.')
_OUT = flags.DEFINE_string('out', 'runs/metavalid_rows.json', 'Results.')


def main(argv):
  del argv
  out = {'command': 'python -m benchmarks.metavalid_rows', 'spaces': {}}
  for space in _SPACES.value:
    config = importlib.import_module(f'configs.help_{space}').get_config()
    data = latency_data.load_space_data(space)
    cut = int(data.split.pool_rows * (1 - config.eval.valid_fraction))
    method = adaptation.MetaMethod(
        adaptation.MetaPredictor.load(f'meta/pretrained/{space}'), 'imputed')
    variants = {
        variant: [train.validation_device(space, name,
                                          config.eval.valid_fraction, unseen)
                  for name in data.split.meta_valid]
        for variant, unseen in (('selection_rows', False),
                                ('unseen_query_rows', True))}
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
