"""Evolutionary search beyond FBNet: the encoding over NAS-Bench-201 and OFA,
the OFA resolution pinning, the NAS-Bench-201 predictor latency, and the
NAS-Bench-201 smoke config end to end."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import evolve_nasbench201
from configs import evolve_ofa
from fbnet_jax import evolve
from fbnet_jax import latency
from fbnet_jax import nsga
from fbnet_jax import pareto
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import spaces
from fbnet_jax import supernet
from fbnet_jax.spaces import nasbench201
from fbnet_jax.spaces import ofa
from meta import latency_data


def test_nb201_encoding_covers_every_op_of_every_edge():
  space = spaces.get_space('nasbench201')
  encoding = nsga.Encoding(space, space.allowed_choices(
      space.choice_mask))
  np.testing.assert_array_equal(encoding.upper, np.full(6, 4))
  archs = encoding.sample(np.random.default_rng(0), 500)
  space.validate_batch(archs)
  for e in range(6):
    assert set(archs[:, e]) == set(range(5))
  np.testing.assert_array_equal(encoding.decode(encoding.encode(archs)), archs)
  unique = nsga.unique_random(encoding, np.random.default_rng(1), 100)
  assert len({a.tobytes() for a in unique}) == 100


def test_ofa_encoding_pins_the_resolution_and_keeps_stages_prefixes():
  config = evolve_ofa.get_config('smoke')
  space = spaces.get_space('ofa')
  fixed = searcher_lib.fixed_units(config, space)
  resolution = ofa.RESOLUTIONS.index(config.ofa_resolution)
  assert fixed.sum() == 1 and fixed[-1, resolution] == 1
  encoding = nsga.Encoding(space, space.allowed_choices(
      space.choice_mask, fixed))
  assert encoding.upper[-1] == 0  # the resolution is not a free variable
  rng = np.random.default_rng(0)
  archs = encoding.sample(rng, 300)
  space.validate_batch(archs)  # raises for a skipped block before a present
  assert np.all(archs[:, -1] == resolution)
  assert (archs[:, :20] == space.skip_index).any()  # depths vary
  # Any integer vector decodes to a valid architecture (pymoo's offspring).
  x = rng.integers(0, encoding.upper + 1, (300, encoding.num_vars))
  space.validate_batch(encoding.decode(x))


def test_ofa_elastic_training_samples_valid_pinned_subnetworks():
  config = evolve_ofa.get_config('smoke')
  assert config.search.supernet == 'elastic'
  searcher = searcher_lib.Searcher(config)  # builds, does not compile
  assert isinstance(searcher.model, supernet.OFAElasticSupernet)
  # It trains single paths, never mixtures: no mixture accuracy.
  assert searcher.mixture_accuracy(state=None, limit=None) is None
  space = searcher.space
  paths = np.stack([searcher.sample_path(step) for step in range(200)])
  assert paths.shape == (200, space.num_units, space.max_choices)
  np.testing.assert_array_equal(paths.sum(-1), 1.0)
  archs = paths.argmax(-1)
  space.validate_batch(archs)  # stages stay prefixes
  assert np.all(archs[:, -1] ==
                ofa.RESOLUTIONS.index(config.ofa_resolution))
  depths = (archs[:, :20] != space.skip_index).reshape(200, 5, 4).sum(-1)
  assert set(depths.ravel()) == set(ofa.DEPTHS)  # OFA's uniform depth
  # A function of (seed, step): a resumed run trains the same sub-networks.
  np.testing.assert_array_equal(searcher.sample_path(7), paths[7])
  # DNAS points of an elastic evolve run search the masked supernet (the
  # same elastic weights, a soft choice per example).
  assert evolve.dnas_config(config, 10.0).search.supernet == 'masked'


@pytest.mark.parametrize('change, message', [
    (dict(space='fbnet', macro='cifar', ofa_resolution=None),
     r"config\.search\.supernet: 'elastic' .* not 'fbnet'"),
    (dict(epochs=3), r'config\.search\.supernet: .*warmup_epochs >= '
     r'config\.epochs, got 1 < 3'),
    (dict(supernet='shared'), r"config\.search\.supernet: unknown 'shared'"),
])
def test_elastic_supernet_config_errors(change, message):
  config = evolve_ofa.get_config('smoke')
  for key, value in change.items():
    if key == 'supernet':
      config.search.supernet = value
    else:
      config[key] = value
  with pytest.raises(ValueError, match=message):
    searcher_lib.Searcher(config)


def test_ofa_guided_search_keeps_the_resolution_pinned():
  # NSGA-II's operators on a variable whose range is a single value (the
  # pinned resolution), on a synthetic additive problem.
  config = evolve_ofa.get_config('smoke')
  space = spaces.get_space('ofa')
  encoding = nsga.Encoding(space, space.allowed_choices(
      space.choice_mask, searcher_lib.fixed_units(config, space)))
  rng = np.random.default_rng(0)
  cost = rng.uniform(0.1, 1.0, space.choice_mask.shape)
  rows = np.arange(space.num_units)
  latency_fn = lambda archs: cost[rows, np.asarray(archs)].sum(-1)
  accuracy_fn = lambda arch: float(np.tanh(latency_fn(arch) / 10))
  cfg = config.evolve
  cfg.budget, cfg.initial, cfg.per_iteration = 12, 6, 3
  initial = nsga.unique_random(encoding, rng, cfg.initial)
  history = nsga.guided_search(accuracy_fn, latency_fn, encoding, cfg, 0,
                               initial)
  archs = space.validate_batch(np.stack(history.archs))
  assert len(history.keys()) == 12 and history.iteration_ends == [6, 9, 12]
  assert np.all(archs[:, -1] == ofa.RESOLUTIONS.index(config.ofa_resolution))


def test_ofa_resolution_errors_name_the_field():
  config = evolve_ofa.get_config('smoke')
  space = spaces.get_space('ofa')
  config.ofa_resolution = 130
  with pytest.raises(ValueError, match=r'config\.ofa_resolution: 130'):
    searcher_lib.fixed_units(config, space)
  config.ofa_resolution = None
  with pytest.raises(ValueError, match=r'config\.data\.image_size .*: 32'):
    searcher_lib.fixed_units(config, space)
  assert searcher_lib.fixed_units(evolve_nasbench201.get_config('smoke'),
                            spaces.get_space('nasbench201')) is None


def test_nb201_predictor_latency_takes_soft_cells_and_stays_positive():
  config = evolve_nasbench201.get_config('smoke')
  model = latency.latency_source(config)
  space = spaces.get_space('nasbench201')
  archs = latency_data.load_space_data('nasbench201').archs[::8]
  ms = model.arch_ms(archs)
  # raspi4 measured 0.012 ms for cells cut off by 'none' edges; the linear
  # head extrapolates below zero there and is floored.
  cut_off = space.from_string(
      '|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|'
      'skip_connect~1|none~2|')
  assert model.arch_ms(cut_off) == pytest.approx(latency.MIN_PREDICTED_MS)
  assert np.all(ms >= latency.MIN_PREDICTED_MS) and np.median(ms) > 1.0
  # One-hot rows give the discrete latencies; a soft cell, a differentiable
  # value in between.
  np.testing.assert_allclose(
      model.expected_ms(jnp.asarray(space.one_hot(archs[:64]))), ms[:64],
      rtol=1e-5)
  soft = jnp.asarray(space.uniform_probs())
  grad = jax.grad(model.expected_ms)(soft)
  assert ms.min() < float(model.expected_ms(soft)) < ms.max()
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_exact_rescoring_tables_exist_for_fbnet_cifar_and_nb201_only(
    tmp_path):
  nb201 = latency.device_exact_table(evolve_nasbench201.get_config('smoke'))
  assert nb201.name == 'table:raspi4' and nb201.space.name == 'nasbench201'
  assert latency.device_exact_table(evolve_ofa.get_config('smoke')) is None
  from configs import evolve_quick  # pylint: disable=g-import-not-at-top
  config = evolve_quick.get_config('smoke')
  assert latency.device_exact_table(config).name == 'lut:raspi4'
  config.latency.device = 'titan_rtx_1'  # an FBNet device without a table
  assert latency.device_exact_table(config) is None
  # A user's device: the table of latency.device would be another's.
  config.latency.update(device='raspi4', source='predictor',
                        device_file=str(tmp_path / 'mine.npz'))
  assert latency.device_exact_table(config) is None


def test_nb201_cell_table_is_the_measurement_and_its_exact_expectation():
  data = latency_data.load_space_data('nasbench201')
  table = latency.cell_table_latency('pixel2')
  rows = np.random.default_rng(0).choice(len(data.archs), 300, replace=False)
  np.testing.assert_allclose(table.arch_ms(data.archs[rows]),
                             data.device_latency('pixel2')[rows], rtol=1e-6)
  # A distribution over two ops per edge: the expectation by enumerating
  # its 2^6 cells.
  rng = np.random.default_rng(1)
  ops = np.stack([rng.choice(5, 2, replace=False) for _ in range(6)])
  w = rng.uniform(0.1, 1.0, (6, 2))
  w /= w.sum(1, keepdims=True)
  probs = np.zeros((6, 5), np.float32)
  probs[np.arange(6)[:, None], ops] = w
  cells = np.array(np.meshgrid(*[[0, 1]] * 6, indexing='ij')).reshape(6, -1).T
  archs = ops[np.arange(6), cells]
  weights = np.prod(w[np.arange(6), cells], axis=1)
  expected = float(np.sum(weights * table.arch_ms(archs)))
  assert float(table.expected_ms(jnp.asarray(probs))) == pytest.approx(
      expected, rel=1e-5)
  with pytest.raises(latency.LatencyConfigError, match='nasbench201|NAS-Bench'):
    latency.cell_table_latency('no_such_device')


@pytest.fixture(scope='module')
def nb201_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('evolve_nb201'))
  # A DNAS result.json (the fields evolve reads) as the DNAS point.
  dnas_result = os.path.join(workdir, 'dnas_result.json')
  with open(dnas_result, 'w') as f:
    json.dump({'space': 'nasbench201', 'arch_index': [3, 3, 1, 3, 2, 3],
               'target_ms': 12.5, 'supernet_accuracy': 0.5}, f)
  config = evolve_nasbench201.get_config('smoke')
  config.evolve.dnas_result = dnas_result
  summary = evolve.run(config, workdir, progress=False)
  return workdir, summary


def test_dnas_folders_are_per_target_and_training_setting(monkeypatch):
  dirs = []
  monkeypatch.setattr(evolve.search_lib, 'train_and_evaluate',
                      lambda cfg, out, **_: dirs.append(out))
  config = evolve_nasbench201.get_config()
  evolve.dnas_searches(config, 'w', [10.0, 20.0], progress=False)
  config.evolve.budget = 7  # not a DNAS training setting
  config.search.calib_batches = 3
  evolve.dnas_searches(config, 'w', [10.0], progress=False)
  config.latency.support = 'spread'  # another adapted predictor
  evolve.dnas_searches(config, 'w', [10.0], progress=False)
  assert [os.path.basename(d).split('_')[0] for d in dirs] == [
      '10ms', '20ms', '10ms', '10ms']
  assert dirs[2] == dirs[0] and dirs[3] != dirs[0]


def test_dnas_config_is_a_target_search_on_the_evolve_setup():
  config = evolve_nasbench201.get_config()
  dnas = evolve.dnas_config(config, 12.34567)
  assert dnas.latency.target_ms == 12.346 and dnas.loss.form == 'target'
  assert dnas.search.derive == 'target'
  assert dnas.search.warmup_epochs == config.evolve.dnas_warmup_epochs
  assert 0 < dnas.search.warmup_epochs < dnas.epochs  # architecture steps
  assert dnas.search.tau_decay == config.evolve.dnas_tau_decay
  # A SPOS supernet's uniform paths are not carried into DNAS.
  config.search.weight_paths = 'uniform'
  assert evolve.dnas_config(config, 10.0).search.weight_paths == 'gumbel'
  config.search.weight_paths = 'gumbel'
  for field in ('space', 'nb201_cells', 'epochs', 'batch_size'):
    assert dnas[field] == config[field]
  assert dnas.data.to_dict() == config.data.to_dict()
  assert dnas.latency.device == config.latency.device
  config.evolve.dnas_quantiles = (0.5, 1.5)
  with pytest.raises(ValueError, match='dnas_quantiles'):
    evolve.check_config(config)
  config.evolve.dnas_quantiles = (0.5,)
  config.evolve.dnas_warmup_epochs = config.epochs
  with pytest.raises(ValueError, match='dnas_warmup_epochs'):
    evolve.check_config(config)


def test_nb201_smoke_config_end_to_end(nb201_run):
  workdir, summary = nb201_run
  read = lambda name: json.load(open(os.path.join(workdir, name)))
  space = spaces.get_space('nasbench201')
  front = read('front.json')
  assert front
  for p in front:
    assert len(p['arch']) == 6 and set(p['arch']) <= set(
        nasbench201.OP_NAMES)
    np.testing.assert_array_equal(space.validate(p['arch']), p['arch_index'])
    assert 0.0 <= p['accuracy'] <= 1.0 and p['latency_ms'] > 0
    assert 0.0 <= p['test_accuracy'] <= 1.0
    assert p['flops'] == pytest.approx(space.flops(p['arch_index']))
    # Re-scored with the measured latency of the cell on raspi4.
    assert p['lut_latency_ms'] == pytest.approx(float(
        latency.cell_table_latency('raspi4').arch_ms(p['arch_index'])))
  f = np.array([[p['latency_ms'], -p['accuracy']] for p in front])
  assert len(pareto.non_dominated(f)) == len(front)
  assert np.all(np.diff(f[:, 0]) > 0)
  evaluations = read('evaluations.json')
  for name in ('guided', 'random'):
    archs = np.asarray(evaluations[name]['0']['arch_index'])
    assert archs.shape == (12, 6)
    assert len(np.unique(archs, axis=0)) == 12
    curve = np.array(read('hypervolume.json')[name])
    np.testing.assert_array_equal(curve[:, 0], np.arange(1, 13))
    assert np.all(np.diff(curve[:, 1]) >= 0) and np.all(curve[:, 1] <= 1)
  assert summary == read('summary.json')
  assert summary['space'] == 'nasbench201'
  assert summary['latency_source'] == 'predictor:raspi4'
  agreement = summary['lut_agreement']
  assert agreement['lut'] == 'table:raspi4'
  assert agreement['max_relative_error'] == pytest.approx(max(
      abs(p['latency_ms'] / p['lut_latency_ms'] - 1) for p in front))
  assert summary['ops'] == list(nasbench201.OP_NAMES)
  # The DNAS result's cell, evaluated like the others and compared with the
  # guided front.
  (point,) = read('fronts.json')['dnas']
  assert point['arch_index'] == [3, 3, 1, 3, 2, 3]
  assert 0.0 <= point['accuracy'] <= 1.0
  assert point['result'] == os.path.join(workdir, 'dnas_result.json')
  assert point['dnas_supernet_accuracy'] == 0.5
  assert 0.0 <= point['test_accuracy'] <= 1.0
  (row,) = summary['dnas']['points']
  assert row['latency_ms'] == pytest.approx(point['latency_ms'])
  assert row['target_ms'] == pytest.approx(point['target_ms'])
  faster = [p['accuracy'] for p in front
            if p['latency_ms'] <= point['latency_ms']]
  assert row['front_best_accuracy_at_or_below'] == (max(faster) if faster
                                                     else None)
  with open(os.path.join(workdir, 'supernet', 'result.json')) as f:
    supernet_result = json.load(f)
  assert supernet_result['space'] == 'nasbench201'
  for plot in ('front.png', 'hypervolume.png'):
    assert os.path.getsize(os.path.join(workdir, plot)) > 1000


def test_ofa_random_architectures_draw_depth_uniformly_per_stage():
  # Random search and the initial population use OFA's sampler: each stage
  # depth 2, 3 or 4 alike (uniform per-unit variables would make 81% of
  # stages depth 4), within the allowed choices.
  space = spaces.get_space('ofa')
  archs = nsga.Encoding(space, space.choice_mask).sample(
      np.random.default_rng(0), 3000)
  depth = (archs[:, :20].reshape(-1, 5, 4) != space.skip_index).sum(-1)
  np.testing.assert_allclose([(depth == d).mean() for d in (2, 3, 4)],
                             1 / 3, atol=0.02)
  allowed = space.choice_mask.copy()
  allowed[:, 0] = False  # no k3_e3
  archs = nsga.Encoding(space, allowed).sample(np.random.default_rng(0), 500)
  assert not (archs[:, :20] == 0).any()
  space.validate_batch(archs)
