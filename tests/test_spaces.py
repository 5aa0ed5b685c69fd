"""Search spaces: shapes, hand-checked costs, validation errors, formats."""

import numpy as np
import pytest

from fbnet_jax import spaces
from fbnet_jax.spaces import fbnet, nasbench201, ofa
from meta import latency_data


def test_fbnet_cifar_layer_shapes():
  sp = spaces.get_space('fbnet')
  assert sp.num_units == 22 and sp.max_choices == 9
  first, second, third = sp.layers[:3]
  assert first == fbnet.LayerShape(16, 16, 1, 32)
  assert second == fbnet.LayerShape(16, 24, 1, 32)
  assert third == fbnet.LayerShape(24, 24, 1, 32)
  assert [l.out_size for l in sp.layers][-1] == 4
  assert sp.layers[-1] == fbnet.LayerShape(184, 352, 1, 4)


def test_fbnet_imagenet_macro():
  sp = spaces.get_space('fbnet', macro='imagenet')
  assert sp.layers[0].in_size == 112
  assert sp.layers[-1].out_size == 7


def test_fbnet_flops_hand_checked():
  sp = spaces.get_space('fbnet')
  _, table = sp.flops_table()
  # Layer 0: 16->16 ch at 32x32, k3_e1: pw1 + dw + pw2.
  assert table[0, 0] == 32 * 32 * 16 * 16 + 32 * 32 * 16 * 9 + 32 * 32 * 16 * 16
  # Group-2 variant halves both pointwise convolutions.
  assert table[0, 1] == 32 * 32 * 16 * 8 * 2 + 32 * 32 * 16 * 9
  # skip where shapes agree is free; where they change, a 1x1 conv.
  assert table[2, 8] == 0
  assert table[1, 8] == 32 * 32 * 16 * 24
  fixed, _ = sp.flops_table()
  arch = np.zeros(22, int)
  assert sp.flops(arch) == fixed + table[np.arange(22), 0].sum()


def test_fbnet_validation_errors_name_unit_and_range():
  sp = spaces.get_space('fbnet')
  with pytest.raises(spaces.ArchitectureError, match=r'unit 3 \(layer3\).*0\.\.8'):
    sp.validate([0, 0, 0, 9] + [0] * 18)
  with pytest.raises(spaces.ArchitectureError, match='22 units'):
    sp.validate([0] * 5)
  with pytest.raises(spaces.ArchitectureError, match="no choice 'k7_e1'"):
    sp.validate(['k7_e1'] + ['skip'] * 21)
  names = ['k3_e1'] * 21 + ['skip']
  assert sp.names(sp.validate(names)) == names
  # Fractional indices are refused, not truncated to another choice; whole
  # floats pass.
  arch = np.full(22, 8.0)
  np.testing.assert_array_equal(sp.validate(arch), np.full(22, 8))
  arch[4] = 7.9
  with pytest.raises(spaces.ArchitectureError,
                     match=r'expected whole numbers, got 7\.9 at \[4\]'):
    sp.validate(arch)
  with pytest.raises(spaces.ArchitectureError,
                     match=r'rows: expected whole numbers, got 7\.9 at '
                     r'\[1, 4\]'):
    sp.validate_batch(np.stack([np.full(22, 8.0), arch]), where='rows')
  with pytest.raises(spaces.ArchitectureError, match='array of bool'):
    sp.validate_batch(np.ones((1, 22), bool))


def test_sampling_is_valid_for_every_space():
  rng = np.random.default_rng(0)
  for name in spaces.SPACES:
    sp = spaces.get_space(name)
    archs = sp.sample(rng, 64)
    assert archs.shape == (64, sp.num_units)
    sp.validate_batch(archs)


def test_sampling_among_allowed_choices_keeps_to_them():
  rng = np.random.default_rng(0)
  for name in spaces.SPACES:
    sp = spaces.get_space(name)
    allowed = sp.choice_mask.copy()
    allowed[:, 1:] &= rng.random(allowed[:, 1:].shape) < 0.5
    archs = sp.sample_allowed(rng, 64, allowed)
    sp.validate_batch(archs)
    if name != 'ofa':  # OFA's repair (its depth rule) may change choices
      assert allowed[np.arange(sp.num_units), archs].all(), name
    allowed[0] = False
    with pytest.raises(ValueError, match='at least one choice per unit; '
                       r'got shape .*, units without a choice \[0\]'):
      sp.sample_allowed(rng, 1, allowed)


def test_nasbench201_strings_match_bundled_rows():
  sp = spaces.get_space('nasbench201')
  with np.load(latency_data.os.path.join(latency_data.DATA_DIR,
                                         'nasbench201_latency.npz')) as npz:
    strings, archs = npz['arch_str'][:50], npz['arch'][:50]
  for s, a in zip(strings, archs):
    np.testing.assert_array_equal(sp.from_string(str(s)), a)
    assert sp.to_string(a) == s
  with pytest.raises(spaces.ArchitectureError, match='not a NAS-Bench-201'):
    sp.from_string('|conv~0|')


def test_nasbench201_live_edges():
  # Node 1 unreachable (edge 0->1 is none): edges out of node 1 are dead.
  arch = [0, 3, 3, 3, 3, 3]
  np.testing.assert_array_equal(nasbench201.live_edges(arch),
                                [False, True, False, True, False, True])
  # Only 0->3 present.
  np.testing.assert_array_equal(nasbench201.live_edges([3, 3, 3, 1, 0, 0]),
                                [False, False, False, True, False, False])


def test_nasbench201_path_features_hand_checked():
  sp = spaces.get_space('nasbench201')
  # Blocks: path 0->3 at 0 (4 ops), 0->1->3 at 4 (16), 0->2->3 at 20 (16),
  # 0->1->2->3 at 36 (64); ops skip, 1x1, 3x3, pool = digits 0..3.
  x = sp.path_features(np.array([[1] * 6,  # every path: skips
                                 [3, 3, 3, 0, 3, 3],  # 0->3 cut; 3x3 convs
                                 [0, 2, 1, 4, 3, 0]]))  # only 0->3 alive
  assert x.shape == (3, 100)
  np.testing.assert_array_equal(np.nonzero(x[0])[0], [0, 4, 20, 36])
  np.testing.assert_array_equal(np.nonzero(x[1])[0],
                                [4 + 10, 20 + 10, 36 + 42])
  np.testing.assert_array_equal(np.nonzero(x[2])[0], [3])  # pool on 0->3
  fbnet = spaces.get_space('fbnet', macro='cifar')
  assert fbnet.path_features(fbnet.sample(np.random.default_rng(0), 2)
                             ).shape == (2, 0)


def test_nasbench201_flops():
  sp = spaces.get_space('nasbench201')
  none = sp.flops([0] * 6)
  conv = sp.flops([0, 0, 0, 3, 0, 0])  # one 3x3 conv edge in all 15 cells
  assert conv - none == 5 * 9 * (16 * 16 * 32 * 32 + 32 * 32 * 16 * 16 +
                                 64 * 64 * 8 * 8)
  # NAS-Bench-201's parameter range (CIFAR-10): 0.073306 M with every edge
  # none, 1.531546 M with every edge a 3x3 convolution.
  assert sp.params([0] * 6) == 73306
  assert sp.params([3] * 6) == 1531546


def test_ofa_native_round_trip_and_depth_rule():
  sp = spaces.get_space('ofa')
  data = latency_data.load_space_data('ofa')
  with np.load(latency_data.os.path.join(latency_data.DATA_DIR,
                                         'ofa_latency.npz')) as npz:
    native = sp.to_native(data.archs[:100])
    np.testing.assert_array_equal(native['d'], npz['d'][:100])
    np.testing.assert_array_equal(native['r'], npz['r'][:100])
    active = np.arange(4)[None, None] < npz['d'][:100, :, None]
    np.testing.assert_array_equal(native['ks'][active.reshape(100, -1)],
                                  npz['ks'][:100][active.reshape(100, -1)])
  arch = sp.sample(np.random.default_rng(0), 1)[0]
  arch[2], arch[3] = sp.skip_index, 0  # slot 4 present after a skipped slot 3
  with pytest.raises(spaces.ArchitectureError, match='prefix'):
    sp.validate(arch)
  # OFA's native values: d is checked first (it decides which ks and e
  # slots count), and none is truncated.
  ks, e = np.full((1, 20), 3), np.full((1, 20), 3)
  ks[0, 3] = 4  # junk in a slot beyond any valid depth of 2
  with pytest.raises(spaces.ArchitectureError,
                     match=r"field 'd', row 0: values must be in \(2, 3, 4\)"):
    sp.from_native(ks, e, np.full((1, 5), 5), np.array([160]))
  with pytest.raises(spaces.ArchitectureError,
                     match=r"field 'r': expected whole numbers, got 128\.7"):
    sp.from_native(ks, e, np.full((1, 5), 2), np.array([128.7]))


def test_ofa_flops_grow_with_resolution():
  sp = spaces.get_space('ofa')
  arch = sp.sample(np.random.default_rng(1), 1)[0]
  small, large = arch.copy(), arch.copy()
  small[-1], large[-1] = 0, len(ofa.RESOLUTIONS) - 1
  assert sp.flops(large) > 2.5 * sp.flops(small)  # (224/128)^2 ~ 3.06


def test_cost_features_sum_the_chosen_units_features():
  space = spaces.get_space('fbnet', macro='cifar')
  feats = space.unit_features()[0]
  arch = space.sample(np.random.default_rng(1), 1)[0]
  expected = sum(feats[u, c] for u, c in enumerate(arch))
  np.testing.assert_allclose(space.cost_features(arch)[0], expected,
                             rtol=1e-5)
  both = space.cost_features(np.stack([arch, arch]))
  assert both.shape == (2, feats.shape[-1])


def test_unit_features_are_finite_and_masked():
  for name in spaces.SPACES:
    sp = spaces.get_space(name)
    feats, names = sp.unit_features()
    assert feats.shape == (sp.num_units, sp.max_choices, len(names))
    assert np.isfinite(feats).all()
    assert np.all(feats[~sp.choice_mask] == 0)


@pytest.mark.parametrize('name, cheapest, floor_unreached', [
    # FBNet: skip, or the grouped k3_e1 where a skip needs a projection
    # that costs more; uniform samples never come near the floor.
    ('fbnet', {'skip', 'k3_e1_g2'}, True),
    # NAS-Bench-201's 15,625 cells: uniform samples reach it too.
    ('nasbench201', {'none'}, False)])
def test_spread_samples_run_from_uniform_to_nearly_the_cheapest(
    name, cheapest, floor_unreached):
  space = spaces.get_space(name)
  names = [space.units[u].choices[c]
           for u, c in enumerate(space.cheapest_choices())]
  assert set(names) == cheapest
  archs = space.sample_spread(np.random.default_rng(0), 40)
  space.validate_batch(archs)
  flops = np.array([space.flops(a) for a in archs])
  assert flops[-10:].mean() < 0.5 * flops[:10].mean()
  uniform = np.array([space.flops(a) for a in
                      space.sample(np.random.default_rng(1), 200)])
  if floor_unreached:
    assert flops.min() < 0.5 * uniform.min()


def test_ofa_spread_samples_keep_stages_prefixes():
  space = spaces.get_space('ofa')
  archs = space.sample_spread(np.random.default_rng(0), 50)
  space.validate_batch(archs)  # raises for a skipped block before a present
  depths = (archs[:, :20] != space.skip_index).reshape(50, 5, 4).sum(-1)
  assert depths[-10:].mean() < depths[:10].mean()


def test_plot_labels_come_from_each_units_own_choices():
  from fbnet_jax import reporting  # pylint: disable=g-import-not-at-top
  columns, named = reporting.choice_columns(spaces.get_space('fbnet'))
  assert named and columns[0] == 'k3_e1' and columns[-1] == 'skip'
  space = spaces.get_space('ofa')
  columns, named = reporting.choice_columns(space)
  assert not named and columns == [str(i) for i in range(25)]
  arch = np.zeros(len(space.units), np.int32)
  arch[-1] = 24
  labels = reporting.derived_labels(space, arch)
  assert labels[0] == 'stage1_block1: k3_e3'
  assert labels[-1] == 'resolution: r224'


def test_an_unknown_space_names_the_setting():
  with pytest.raises(ValueError, match=r"config.space \(--space\): unknown "
                     r"search space 'darts'; expected one of fbnet, "
                     r'nasbench201, ofa'):
    spaces.get_space('darts')
