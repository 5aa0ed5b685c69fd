r"""The closed loop on this machine: measure, adapt, search, verify.

    python -m experiments.closed_loop --workdir=runs/closed_loop

Measures the reference architectures + ``latency.num_samples`` (10) random
FBNet architectures on the local JAX backend (and 200 others, used only to
check the adapted predictor), adapts the meta-trained predictor, searches
for three targets with it as the latency source, measures each found
architecture and reports predicted vs. measured latency, the number of
measurements and the seconds the loop took (``WORKDIR/closed_loop.json``,
plotted in ``closed_loop.png``).
An existing device file (``--config.latency.device_file``) is reused if it
holds at least ``latency.num_samples`` support rows drawn with the same
``measure.seed`` (where the file records it); otherwise it is an error. Its
own query rows check the predictor (a warning if not ``--num_query``).
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import closed_loop
from fbnet_jax import compilation_cache

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/closed_loop.py',
                                          'Search config of the loop.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/closed_loop', 'Output.')
_QUERY = flags.DEFINE_integer('num_query', 200, 'Architectures measured only '
                              'to check the adapted predictor.')


def main(argv):
  del argv
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.closed_loop')
  out = closed_loop.run(config, _WORKDIR.value,
                        num_query=_QUERY.value)
  check = out['predictor_check']
  loo = check['support_leave_one_out']['median_abs_relative_error']
  print(f'adapted from {out["support_measurements"]} measurements; Spearman '
        f'on {check.get("num_query", 0)} other measured archs '
        f'{check.get("spearman", float("nan")):.4f}, median |relative error| '
        f'{100 * check.get("median_abs_relative_error", float("nan")):.1f}% '
        '(estimated from the support alone, leave-one-out: '
        f'{100 * (float("nan") if loo is None else loo):.1f}%); found archs: max '
        f'|measured/target - 1| {100 * out["max_abs_relative_error"]:.1f}%, '
        f'max |predicted/measured - 1| '
        f'{100 * out["max_abs_prediction_error"]:.1f}%; '
        f'{out["total_measurements"]} measurements, '
        f'{out["total_seconds"]:.0f} s in all')


if __name__ == '__main__':
  cli.run(main)
