r"""Exports a found and retrained architecture to ONNX, checked against JAX.

    python -m experiments.train --arch=runs/quickstart/result.json \
        --config=configs/quickstart.py
    python -m experiments.export --arch=runs/quickstart/result.json \
        --config=configs/quickstart.py

Reads the retrained weights (default: ``retrain/`` next to the result),
writes ``model.onnx`` there (NHWC float32 images of any batch size ->
logits), runs the eval split through ONNX Runtime and JAX and writes the
comparison beside it (``model.onnx`` -> ``model.export.json``). Exits with
an error when the two disagree (:data:`fbnet_jax.export.LOGIT_TOLERANCE`).
Needs ``pip install -e '.[onnx]'``.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import export
from fbnet_jax import retrain
from fbnet_jax import workdirs

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/quickstart.py',
                                          'Config the network was retrained '
                                          'with.')
_ARCH = flags.DEFINE_string('arch', None, 'result.json of a search.',
                            required=True)
_RETRAIN_DIR = flags.DEFINE_string('retrain_dir', None, 'experiments.train\'s '
                                   'workdir (default: retrain/ next to the '
                                   'result).')
_OUT = flags.DEFINE_string('out', None, 'ONNX file (default: '
                           'RETRAIN_DIR/model.onnx).')


def main(argv):
  del argv
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.export')
  # Checked before anything is written: its space and macro are config's.
  arch, found = retrain.load_arch(_ARCH.value, config)
  retrain_dir = _RETRAIN_DIR.value or os.path.join(
      os.path.dirname(_ARCH.value), 'retrain')
  out = _OUT.value or os.path.join(retrain_dir, 'model.onnx')
  report = export.export_retrained(config, arch, retrain_dir, out)
  report_path = report_file(out)
  workdirs.write_json(report_path, report)
  unfinished = ('' if report['retrain_finished'] else
                ' (the retraining had not finished)')
  print(f'{report["path"]} ({report["onnx_megabytes"]:.1f} MB, checkpoint '
        f'step {report["checkpoint_step"]}{unfinished}): eval accuracy '
        f'onnxruntime {report["accuracy_onnxruntime"]:.4f} vs jax '
        f'{report["accuracy_jax"]:.4f} on {report["num_eval"]} images; '
        f'largest logit difference {report["max_abs_logit_difference"]:.2e}'
        f'; report {report_path}')
  if not report['agree']:
    sys.exit(f'error: {report["path"]}: ONNX Runtime\'s logits differ from '
             f'JAX\'s by up to {report["max_abs_logit_difference"]:.3g}, '
             f'more than {export.LOGIT_TOLERANCE:g} x the largest logit '
             f'({report["max_abs_logit"]:.3g}); the graph is kept for '
             'inspection, but it is not the retrained network.')


def report_file(out: str) -> str:
  """The check's report beside the graph: ``model.onnx`` ->
  ``model.export.json``."""
  return os.path.splitext(os.path.abspath(out))[0] + '.export.json'


if __name__ == '__main__':
  cli.run(main)
