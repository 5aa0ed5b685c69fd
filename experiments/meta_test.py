r"""Few-shot evaluation of a meta-trained latency predictor.

    python -m experiments.meta_test --config=configs/help_fbnet.py \
        --workdir=runs/help_fbnet [--device_file=my_device.npz ...]
    python -m experiments.meta_test --config=configs/help_fbnet.py \
        --predictor_dir=meta/pretrained/fbnet --workdir=runs/bundled_fbnet

Prints, per meta-test device (or per device file), the Spearman rank
correlation on the query rows after adaptation to the references + N samples
(mean and std over ``config.eval.seeds`` draws), beside the baselines and
HELP's published number, and writes ``WORKDIR/meta_test.json``.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from meta import meta_test

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/help_fbnet.py',
                                          'Evaluation configuration.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/help_fbnet',
                               'Workdir of experiments.meta_train.')
_DEVICE_FILES = flags.DEFINE_multi_string(
    'device_file', [], 'Device file(s) to evaluate instead of the bundled '
    'meta-test devices (format: meta/data/README.md), each with its own '
    'device name; not with --devices.')
_COMPARE = flags.DEFINE_list(
    'compare', [], 'Other meta_train workdirs (e.g. MAML, Meta-SGD variants) '
    'to evaluate in the same table, one column each (labelled by '
    'meta.algorithm, plus the workdir name where two share one).')
_DEVICES = flags.DEFINE_list(
    'devices', [], 'Bundled devices to evaluate instead of the meta-test '
    'ones (e.g. those in no split: fbnet 2080ti_1, titan_rtx_64, ...); not '
    'with --device_file.')
_PREDICTOR = flags.DEFINE_string(
    'predictor_dir', '', 'The predictor to evaluate instead of WORKDIR\'s, '
    'e.g. a bundled one: meta/pretrained/fbnet (nasbench201, ofa).')
_OUT = flags.DEFINE_string('out', '', 'Result file (default '
                           'WORKDIR/meta_test.json).')
_BASELINES = flags.DEFINE_bool('baselines', True,
                               'Also evaluate the linear-mix, Bayesian '
                               'linear, op-count and FLOPs baselines.')


def main(argv):
  del argv
  config = cli.config_of_kind(_CONFIG, 'evaluation', 'experiments.meta_test')
  meta_test.run(config, _WORKDIR.value, _DEVICE_FILES.value,
                _BASELINES.value, _COMPARE.value, _DEVICES.value, _OUT.value,
                _PREDICTOR.value)


if __name__ == '__main__':
  cli.run(main)
