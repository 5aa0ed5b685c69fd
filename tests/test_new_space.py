"""A new search space plugs in through the registries alone.

docs/dnas.md ("Adding a search space") lists them: ``spaces.SPACES`` (the
space as data), ``supernet.SUPERNETS`` (its supernet), ``latency.EXACT_TABLES``
(exact latencies of bundled devices, if it has any) and ``models.STANDALONE``
(standalone networks, to retrain, export and time). Here a toy space of three
layers, each a 3x3 convolution or a skip, is searched end to end by DNAS
without a line of the framework changed.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from configs import quickstart
from fbnet_jax import errors
from fbnet_jax import latency
from fbnet_jax import models
from fbnet_jax import search
from fbnet_jax import spaces
from fbnet_jax import supernet

WIDTH = 8
CONV_MS, SKIP_MS, CONST_MS = 2.0, 0.1, 1.0


class ToySpace(spaces.SearchSpace):
  """Three layers, each a 3x3 convolution (with ReLU) or a skip."""

  name = 'toy'

  def __init__(self):
    super().__init__([spaces.Unit(f'layer{i}', ('conv', 'skip'))
                      for i in range(3)])

  def flops(self, arch) -> float:  # per 8x8 map
    return float(np.sum(self.validate(arch) == 0) * 64 * 9 * WIDTH * WIDTH)

  def params(self, arch) -> float:
    return float(np.sum(self.validate(arch) == 0) * (9 * WIDTH + 1) * WIDTH)

  def unit_features(self):
    features = np.zeros((self.num_units, 2, 1), np.float32)
    features[:, 0, 0] = 1.0
    return features, ('conv',)


class ToySupernet(nn.Module):
  """``(images, weights [B, 3, 2], train) -> logits``: per layer, the
  weighted sum of the convolution and the skip; batch norm after the stem
  unless ``batch_norm`` is False (a supernet need not have any)."""

  num_classes: int
  batch_norm: bool = True

  @nn.compact
  def __call__(self, x, weights, train: bool):
    x = nn.Conv(WIDTH, (3, 3), use_bias=False, name='stem')(x)
    if self.batch_norm:
      x = nn.BatchNorm(use_running_average=not train, name='stem_bn')(x)
    for i in range(weights.shape[1]):
      w = weights[:, i, :, None, None, None]
      conv = nn.relu(nn.Conv(WIDTH, (3, 3), name=f'layer{i}')(x))
      x = w[:, 0] * conv + w[:, 1] * x
    return nn.Dense(self.num_classes, name='classifier')(x.mean(axis=(1, 2)))


def toy_table(device: str) -> latency.LatencyModel:
  table = jnp.array([[CONV_MS, SKIP_MS]] * 3, jnp.float32)
  return latency.LatencyModel(
      f'lut:{device}', spaces.get_space('toy'), latency.table_ms,
      {'table': table, 'const': jnp.float32(CONST_MS)})


@pytest.fixture
def toy_space(monkeypatch):
  monkeypatch.setitem(spaces.SPACES, 'toy', ToySpace)
  monkeypatch.setitem(supernet.SUPERNETS, 'toy', supernet.SupernetBuilder(
      lambda *, num_classes, **_: ToySupernet(num_classes)))
  monkeypatch.setitem(latency.EXACT_TABLES, 'toy',
                      latency.ExactTable(toy_table, devices=('toy_device',)))
  yield
  spaces.get_space.cache_clear()  # drop the cached ToySpace instance


def _config():
  config = quickstart.get_config('smoke')
  config.space = 'toy'
  config.search.ops = ()
  config.latency.device = 'toy_device'
  # Nearest it: one conv + two skips (3.2 ms; none is within 2% of 3.3).
  config.latency.target_ms = 3.3
  return config


@pytest.mark.parametrize('batch_norm', [True, False])
def test_dnas_searches_a_registered_space_end_to_end(toy_space, tmp_path,
                                                     monkeypatch, batch_norm):
  monkeypatch.setitem(supernet.SUPERNETS, 'toy', supernet.SupernetBuilder(
      lambda *, num_classes, **_: ToySupernet(num_classes, batch_norm)))
  if not batch_norm:  # no statistics to checkpoint: stopped, then resumed
    search.train_and_evaluate(_config(), str(tmp_path), stop_after=12)
  result = search.train_and_evaluate(_config(), str(tmp_path))
  assert (result['space'], result['macro']) == ('toy', '')
  arch = spaces.get_space('toy').validate(result['arch'])
  assert result['latency_source'] == 'lut:toy_device'
  expected = CONST_MS + sum(CONV_MS if a == 0 else SKIP_MS for a in arch)
  assert result['latency_ms']['lut:toy_device'] == pytest.approx(expected)
  assert (arch == 0).sum() == 1  # the derivation got as near as it can
  assert (tmp_path / 'result.json').exists()


def test_each_registry_says_what_a_space_lacks(toy_space):
  config = _config()
  assert latency.device_exact_table(config).name == 'lut:toy_device'
  config.latency.device = 'raspi4'  # no toy table for it
  assert latency.device_exact_table(config) is None
  with pytest.raises(errors.InputError,
                     match=r"'masked' is for the ofa space, not 'toy'"):
    supernet.build_supernet('toy', num_classes=10, kind='masked')
  with pytest.raises(errors.InputError, match=r'config\.search\.ops: op '
                     r"subsets are for the fbnet space, not 'toy'"):
    supernet.build_supernet('toy', num_classes=10, ops=('conv',))
  with pytest.raises(errors.InputError, match=r"standalone 'toy' network.*"
                     r'built for fbnet and ofa'):
    models.standalone('toy', (0, 1, 0))
  # A space without macro networks ignores config.macro.
  assert spaces.space_for('toy', macro='imagenet').macro_name == ''


def test_a_table_serves_only_its_own_devices(toy_space):
  config = _config()
  config.latency.source = 'lut'
  assert latency.latency_source(config).name == 'lut:toy_device'
  config.latency.device = 'raspi4'  # FBNet has a table for it; the toy not
  with pytest.raises(latency.LatencyConfigError,
                     match=r"config\.latency\.device: no exact toy table for "
                     r"'raspi4'; expected one of toy_device"):
    latency.latency_source(config)
  config.latency.device = 'toy_device'
  config.space = 'ofa'
  with pytest.raises(latency.LatencyConfigError,
                     match=r"source='lut' needs a space with exact tables "
                     r"\(fbnet \(macro cifar\), nasbench201, toy\), not 'ofa'"):
    latency.latency_source(config)


def test_a_table_without_a_device_list_serves_any_device(toy_space,
                                                         monkeypatch):
  monkeypatch.setitem(latency.EXACT_TABLES, 'toy',
                      latency.ExactTable(toy_table))  # devices=None
  config = _config()
  config.latency.source = 'lut'
  config.latency.device = 'any_name'
  assert latency.latency_source(config).name == 'lut:any_name'
  assert latency.device_exact_table(config).name == 'lut:any_name'

  def only_toy_device(device):  # a build that says which it has not
    if device != 'toy_device':
      raise latency.LatencyConfigError(f'no toy table for {device!r}')
    return toy_table(device)

  monkeypatch.setitem(latency.EXACT_TABLES, 'toy',
                      latency.ExactTable(only_toy_device))
  with pytest.raises(latency.LatencyConfigError, match="for 'any_name'"):
    latency.latency_source(config)  # asked for: its error
  assert latency.device_exact_table(config) is None  # a report's extra: none
  config.latency.device = 'toy_device'
  assert latency.device_exact_table(config).name == 'lut:toy_device'


def test_a_device_file_of_a_registered_space_may_carry_an_index(toy_space,
                                                                tmp_path):
  from meta import latency_data  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'toy.npz')
  np.savez(path, space='toy', arch=np.array([[0, 1, 0], [1, 1, 1]]),
           latency_ms=np.array([3.0, 1.5]), index=np.array([7, 12]))
  device = latency_data.load_device_file(path)
  assert device.space == 'toy' and list(device.meta['index']) == [7, 12]


def test_predictor_on_a_space_without_bundled_devices_says_so(toy_space):
  config = _config()
  config.latency.source = 'predictor'
  with pytest.raises(latency.LatencyConfigError,
                     match=r"config\.latency\.device: the 'toy' space has no "
                     r'bundled devices .*expected config\.latency\.device_file'):
    latency.latency_source(config)


def test_a_source_of_a_device_without_bundled_data_reports_alone(monkeypatch):
  """A registered source may name a device no bundled source knows: the
  report's other sources (the device's exact table, the bundled predictor)
  are left out, not an error after the search has trained."""
  space = spaces.get_space('fbnet', macro='cifar')
  monkeypatch.setitem(latency.SOURCES, 'flat', lambda config: (
      latency.LatencyModel('flat', space, latency.table_ms, {
          'table': jnp.ones(space.choice_mask.shape, jnp.float32),
          'const': jnp.float32(1.0)})))
  config = quickstart.get_config('smoke')
  config.latency.source = 'flat'
  config.latency.device = 'my_phone'
  assert list(latency.all_sources(config)) == ['flat']
  config.space, config.latency.device = 'nasbench201', 'my_phone'
  assert latency.device_exact_table(config) is None
  config.latency.device = 'pixel2'
  assert latency.device_exact_table(config).name == 'table:pixel2'
