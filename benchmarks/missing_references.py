r"""A device measured without (some of) the reference architectures.

    python -m benchmarks.missing_references [--withheld=10] \
        [--spaces=fbnet,nasbench201,ofa]

The hardware embedding is built from the latencies of 10 reference
architectures; a device file may lack them. This withholds ``--withheld``
of them (all 10 by default; otherwise a fixed random subset) from each
bundled device and adapts the bundled predictor on what is left (the other
references + 10 random non-query rows, 5 draws), with the missing
references masked in the embedding, or imputed
(``MetaPredictor.adapt(impute_references=True)``, the default: adapt
masked, predict them, adapt again with the predictions in their place).
Spearman on the query rows, both protocols, beside the linear mix on the
same rows and the predictor with every reference. The meta-valid devices
are where imputation was chosen (``selection``); the meta-test devices,
and for FBNet the nine GPU devices no split uses, are the report. Writes
``--out``.
"""

import dataclasses
import json

from absl import app
from absl import flags
import numpy as np

from meta import adaptation
from meta import baselines
from meta import latency_data
from meta import tasks as tasks_lib
from meta import train

_SPACES = flags.DEFINE_list('spaces', ['fbnet', 'nasbench201', 'ofa'],
                            'Bundled spaces.')
_WITHHELD = flags.DEFINE_integer('withheld', 10,
                                 'Reference architectures withheld (of 10).')
_OUT = flags.DEFINE_string('out', 'runs/missing_references.json', 'Results.')

# FBNet devices in no split (docs/predictor.md).
UNUSED_FBNET = ('2080ti_1', '2080ti_32', '2080ti_64', 'titan_rtx_1',
                'titan_rtx_32', 'titan_rtx_64', 'titanxp_1', 'titanxp_32',
                'titanxp_64')


def withhold(device: latency_data.Device, k: int) -> latency_data.Device:
  """``device`` without the rows of ``k`` of its reference architectures
  (all of them for k = 10; otherwise a fixed random subset)."""
  refs = device.reference_rows()
  refs = refs[refs >= 0]
  drop = np.random.default_rng(0).permutation(refs)[:k]
  keep = np.ones(len(device.archs), bool)
  keep[drop] = False
  return dataclasses.replace(device, archs=device.archs[keep],
                             latency_ms=device.latency_ms[keep],
                             is_query=device.is_query[keep])


def main(argv):
  del argv
  out = {'withheld': _WITHHELD.value, 'spaces': {}}
  for space in _SPACES.value:
    split = latency_data.SPLITS[space]
    groups = {'selection': split.meta_valid, 'meta_test': split.meta_test}
    if space == 'fbnet':
      groups['unused'] = UNUSED_FBNET
    predictor = adaptation.MetaPredictor.load(f'meta/pretrained/{space}')
    imputed = adaptation.MetaMethod(predictor, 'imputed')
    # (label, method, on the devices with the references withheld?)
    methods = [
        ('all_references', imputed, False),  # imputation inactive
        ('masked', adaptation.MetaMethod(predictor, 'masked',
                                         impute_references=False), True),
        ('imputed', imputed, True),
        ('linear_mix', baselines.LinearMix.selected(
            space, train.validation_tasks(predictor.config)), True)]
    out['spaces'][space] = {}
    for group, names in groups.items():
      full = [latency_data.bundled_device(space, n) for n in names]
      cut = [withhold(d, _WITHHELD.value) for d in full]
      rows = {}
      for label, method, withheld in methods:
        devices = cut if withheld else full
        rows[label] = {
            protocol: tasks_lib.evaluate(method, devices, trim=trim)
            for protocol, trim in (('untrimmed', False), ('trimmed', True))}
        u, t = (rows[label][p]['mean_spearman']
                for p in ('untrimmed', 'trimmed'))
        print(f'{space:12s} {group:10s} {label:15s} u {u:.4f}  t {t:.4f}',
              flush=True)
      out['spaces'][space][group] = rows
  with open(_OUT.value, 'w') as f:
    json.dump(out, f, indent=1)


if __name__ == '__main__':
  app.run(main)
