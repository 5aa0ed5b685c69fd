r"""Does the search land on the latency it was asked for?

    python -m experiments.latency_control --config=configs/latency_control.py \
        --workdir=runs/latency_control --source=lut

For each device, three targets at the 15/50/85% quantiles of random
architectures' latency; prints and writes the derived architectures' exact
lookup-table latency and relative error
(``WORKDIR/latency_control_<source>.json`` and ``.png``).
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from fbnet_jax import compilation_cache
from fbnet_jax import latency
from fbnet_jax import studies

_CONFIG = config_flags.DEFINE_config_file('config',
                                          'configs/latency_control.py',
                                          'Search config.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/latency_control', 'Root.')
_SOURCE = flags.DEFINE_enum('source', 'lut', sorted(latency.SOURCES),
                            'Latency source of the searches.')
_DEVICES = flags.DEFINE_list('devices', ['raspi4', 'pixel3', 'eyeriss',
                                         'fpga'], 'Lookup-table devices.')


def main(argv):
  del argv
  compilation_cache.enable()
  config = cli.config_of_kind(_CONFIG, 'search', 'experiments.latency_control')
  out = studies.latency_control(config, _WORKDIR.value, _DEVICES.value,
                                _SOURCE.value)
  print(f'max |relative error| {100 * out["max_abs_relative_error"]:.1f}%; '
        f'distinct archs per target quantile '
        f'{out["distinct_archs_per_quantile"]}')


if __name__ == '__main__':
  cli.run(main)
