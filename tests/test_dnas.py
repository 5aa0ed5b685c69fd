"""Golden tests for DNAS: loss formulas, Gumbel noise, LUT expectation."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fbnet_jax import dnas
from fbnet_jax import latency
from fbnet_jax import spaces

MASK = np.ones((3, 4), bool)


def test_fbnet_loss_is_ce_times_alpha_times_log_power():
  ce, lat = jnp.array([2.0]), jnp.array([20.0])
  got = dnas.fbnet_loss(ce, lat, alpha=0.2, beta=0.6)
  expected = 2.0 * 0.2 * np.log(20.0) ** 0.6
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # Not log(LAT ** beta) and not additive.
  assert not np.isclose(got, 2.0 * 0.2 * np.log(20.0 ** 0.6))
  assert not np.isclose(got, 2.0 + 0.2 * np.log(20.0) ** 0.6)
  # Units: latency in units of unit_ms.
  np.testing.assert_allclose(
      dnas.fbnet_loss(ce, lat, 0.2, 0.6, unit_ms=0.5),
      2.0 * 0.2 * np.log(40.0) ** 0.6, rtol=1e-6)


def test_latency_range_check_refuses_log_below_one_unit():
  cfg = ml_collections.ConfigDict(dict(form='fbnet', unit_ms=1.0))
  with pytest.raises(ValueError, match='config.loss.unit_ms'):
    dnas.check_latency_range(0.8, cfg)
  dnas.check_latency_range(1.5, cfg)
  cfg.form = 'target'
  dnas.check_latency_range(0.8, cfg)


def test_target_and_budget_penalties():
  lat = jnp.array([10.0, 12.0, 8.0])
  two = dnas.target_penalty(lat, 10.0, margin=0.05, two_sided=True)
  one = dnas.target_penalty(lat, 10.0, margin=0.05, two_sided=False)
  np.testing.assert_allclose(two, [0.0, np.log(1.2) - 0.05,
                                   np.log(1.25) - 0.05], rtol=1e-5)
  np.testing.assert_allclose(one, [0.0, np.log(1.2) - 0.05, 0.0], rtol=1e-5)
  cfg = ml_collections.ConfigDict(dict(form='target', lam=2.0, margin=0.05))
  ce = jnp.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(dnas.architecture_loss(ce, lat, cfg, 10.0),
                             2.0 + 2.0 * np.mean(two), rtol=1e-5)
  # A table's sum that cancels to 0 ms (fpga's all-skip network) is taken
  # at the floor: a finite loss and a finite (zero) gradient, not inf / NaN.
  zero = jnp.array([0.0, -1e-7])
  np.testing.assert_allclose(
      dnas.target_penalty(zero, 10.0, margin=0.05, two_sided=True),
      np.log(10.0 / dnas.MIN_LOSS_LATENCY_MS) - 0.05, rtol=1e-5)
  grad = jax.grad(lambda l: dnas.target_penalty(l, 10.0, 0.05, True).sum())(
      zero)
  np.testing.assert_array_equal(grad, [0.0, 0.0])


def test_gumbel_noise_sign_and_per_example_noise():
  theta = jnp.zeros((3, 4)).at[0, 2].set(3.0)
  rng = jax.random.PRNGKey(0)
  w = dnas.gumbel_softmax(rng, theta, MASK, jnp.asarray(1.0), 4096)
  chex.assert_shape(w, (4096, 3, 4))
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  # theta + g (not theta - g): the favoured choice wins most argmaxes, as
  # often as softmax(theta) says (Gumbel-max trick).
  wins = np.mean(np.argmax(w[:, 0], -1) == 2)
  expected = np.exp(3.0) / (np.exp(3.0) + 3)
  assert abs(wins - expected) < 0.03
  # Every example has its own noise.
  assert np.unique(np.asarray(w[:, 1, 0]).round(6)).size > 4000


def test_gumbel_softmax_uses_jax_random_gumbel():
  theta = jnp.zeros((3, 4))
  rng = jax.random.PRNGKey(3)
  w = dnas.gumbel_softmax(rng, theta, MASK, jnp.asarray(0.5), 2)
  g = jax.random.gumbel(rng, (2, 3, 4))
  np.testing.assert_allclose(w, jax.nn.softmax(g / 0.5, -1), rtol=1e-5)


def test_hard_samples_are_one_hot_with_soft_gradient():
  theta = jnp.zeros((3, 4))
  rng = jax.random.PRNGKey(1)
  w = dnas.gumbel_softmax(rng, theta, MASK, jnp.asarray(1.0), 8, hard=True)
  np.testing.assert_allclose(np.sort(np.asarray(w), -1)[..., -1], 1.0, atol=1e-6)
  np.testing.assert_allclose(np.sort(np.asarray(w), -1)[..., :-1], 0.0, atol=1e-6)
  # The one-hot sits on the soft sample's argmax, and the gradient is the
  # soft sample's (straight-through).
  soft = dnas.gumbel_softmax(rng, theta, MASK, jnp.asarray(1.0), 8)
  np.testing.assert_array_equal(np.argmax(w, -1), np.argmax(soft, -1))
  grad = lambda hard: jax.grad(lambda t: (dnas.gumbel_softmax(
      rng, t, MASK, jnp.asarray(1.0), 8, hard=hard) * jnp.arange(4.)).sum())(
          theta)
  assert np.abs(np.asarray(grad(True))).sum() > 0
  np.testing.assert_allclose(grad(True), grad(False), rtol=1e-5, atol=1e-6)


def test_masked_choices_get_no_probability():
  mask = np.array([[True, True, False], [True, True, True]])
  p = dnas.probabilities(jnp.zeros((2, 3)), mask)
  np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [1 / 3] * 3], atol=1e-6)


def test_fixed_units_override_the_distribution():
  fixed = np.zeros((3, 4), np.float32)
  fixed[2, 1] = 1.0
  w = dnas.gumbel_softmax(jax.random.PRNGKey(0), jnp.zeros((3, 4)), MASK,
                          jnp.asarray(1.0), 5, fixed=fixed)
  np.testing.assert_array_equal(w[:, 2], np.tile([0., 1., 0., 0.], (5, 1)))


def test_expected_latency_under_the_lookup_table():
  lut = latency.lookup_table_latency('raspi4')
  with np.load(latency.LUT_FILE) as npz:
    rel, const = npz['raspi4_rel'], float(npz['raspi4_const'])
  space = spaces.get_space('fbnet')
  rng = np.random.default_rng(0)
  archs = space.sample(rng, 3)
  np.testing.assert_allclose(
      lut.arch_ms(archs), const + rel[np.arange(22), archs].sum(-1),
      rtol=1e-5)
  # Expectation under independent layer distributions = sum of expectations.
  probs = rng.dirichlet(np.ones(9), size=22).astype(np.float32)
  np.testing.assert_allclose(lut(jnp.asarray(probs)),
                             const + (probs * rel).sum(), rtol=1e-5)
  # ... and equals the mean over many sampled architectures.
  samples = np.stack([[rng.choice(9, p=p / p.sum()) for p in probs]
                      for _ in range(4000)])
  assert abs(lut.arch_ms(samples).mean() - float(lut(jnp.asarray(probs)))) < (
      0.01 * float(lut(jnp.asarray(probs))))


def test_fastest_architecture_is_the_exact_minimum_of_a_table():
  """The fbnet-form loss's range check needs the true minimum: for an
  additive table, each layer's cheapest allowed block (random sampling
  finds 19 ms on raspi4 where 7.8 ms exists)."""
  with np.load(latency.LUT_FILE) as npz:
    tables = {d: (npz[f'{d}_rel'], float(npz[f'{d}_const']))
              for d in ('raspi4', 'fpga')}
  mask = np.ones((22, 9), bool)
  mask[:, 8] = False  # no skip: the minimum moves
  mask[3] = False
  mask[3, 2] = True  # one layer fixed
  for device, (rel, const) in tables.items():
    lut = latency.lookup_table_latency(device)
    for m in (np.ones((22, 9), bool), mask):
      arch, ms = lut.fastest(m)
      want = const + np.where(m, rel, np.inf).min(1).sum()
      assert ms == pytest.approx(want, rel=1e-5, abs=1e-5)
      assert m[np.arange(22), arch].all()
      assert float(lut.arch_ms(arch)) == pytest.approx(ms)


def test_lookup_table_reproduces_bundled_measurements():
  from meta import latency_data
  data = latency_data.load_space_data('fbnet')
  for device in latency.LUT_DEVICES:
    lut = latency.lookup_table_latency(device)
    np.testing.assert_allclose(lut.arch_ms(data.archs[:500]),
                               data.device_latency(device)[:500], rtol=1e-5)


def test_unknown_lut_device_is_a_clear_error():
  with pytest.raises(latency.LatencyConfigError, match='no lookup table'):
    latency.lookup_table_latency('titanx_1')


@pytest.mark.parametrize('change, message', [
    ({'loss.latency_of': 'samples'},
     r"config.loss.latency_of: expected one of \('distribution', 'sample'\)"),
    ({'loss.form': 'hinge'}, 'config.loss.form: expected one of'),
    ({'latency.target_ms': 0.0}, "target_ms: the 'target' loss needs a "
     r'target latency in ms > 0, got 0.0'),
    ({'latency.target_ms': -25.0}, 'got -25.0'),
    ({'latency.target_ms': float('inf')}, 'needs a target latency in ms > 0, '
     'got inf'),
    ({'loss.form': 'fbnet', 'latency.target_ms': float('inf')},
     'target_ms: expected a finite latency in ms > 0'),
    ({'loss.form': 'budget', 'latency.target_ms': None}, "'budget' loss"),
    ({'search.derive': 'targt'}, "config.search.derive: expected 'argmax'"),
])
def test_search_config_errors_before_anything_is_built(change, message):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  searcher_lib.Searcher(config)  # the smoke config itself is fine
  for key, value in change.items():
    group, field = key.split('.')
    config[group][field] = value
  with pytest.raises(ValueError, match=message):
    searcher_lib.Searcher(config)


def test_a_bad_search_config_leaves_the_workdir_untouched(tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.search.derive = 'targt'
  workdir = tmp_path / 'w'
  with pytest.raises(ValueError, match='config.search.derive'):
    search.train_and_evaluate(config, str(workdir), progress=False)
  assert not workdir.exists()  # no settings.json for a run that never began


def test_weights_only_search_needs_no_target():
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config('smoke')
  config.latency.target_ms = None
  config.search.warmup_epochs = config.epochs
  dnas.check_loss_config(config, arch_steps=False)
  with pytest.raises(ValueError, match='target_ms'):
    dnas.check_loss_config(config, arch_steps=True)


def test_samples_sharpen_as_the_traced_temperature_falls():
  """One trace serves every temperature, and the temperature reaches the
  samples: the same noise gives sharper samples at lower tau. (The search's
  compiled step is checked the same way in tests/test_search.py.)"""
  theta = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)),
                      jnp.float32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def sample(rng, tau):
    return dnas.gumbel_softmax(rng, theta, MASK, tau, 4)

  largest = [float(sample(jax.random.PRNGKey(0),
                          jnp.asarray(tau, jnp.float32)).max(-1).mean())
             for tau in (5.0, 5.0 * 0.956, 1.0, 0.3)]
  assert largest == sorted(largest) and largest[-1] > largest[0] + 0.2


def test_random_archs_at_latency_are_within_tolerance():
  from fbnet_jax import studies
  archs = studies.random_archs_at_latency('eyeriss', 5.0, 5, tolerance=0.03)
  lat = latency.lookup_table_latency('eyeriss').arch_ms(archs)
  assert archs.shape == (5, 22) and np.all(np.abs(lat / 5.0 - 1) <= 0.03)
  targets = studies.latency_targets('raspi4', (0.15, 0.5, 0.85))
  assert targets[0] < targets[1] < targets[2]


def test_random_archs_of_a_search_are_drawn_from_its_ops():
  """A search over a subset of the ops (config.search.ops) is compared
  with random architectures of those ops, at targets they can reach."""
  from fbnet_jax import studies
  ops = ('k3_e1', 'k5_e6', 'skip')
  fbnet = spaces.get_space('fbnet')
  targets = studies.latency_targets('raspi4', (0.15, 0.85), ops=ops)
  for target in targets:
    archs = studies.random_archs_at_latency('raspi4', target, 4, ops=ops)
    assert {op for a in archs for op in fbnet.names(a)} <= set(ops)
  # Every op appears: the draw is uniform over the three, not one of them.
  many = studies._sample_fbnet(np.random.default_rng(0), 200, ops)
  assert {op for a in many for op in fbnet.names(a)} == set(ops)
  # Without ops, the stream of every stored study is unchanged.
  np.testing.assert_array_equal(
      studies._sample_fbnet(np.random.default_rng(3), 5),
      fbnet.sample(np.random.default_rng(3), 5))


def test_derive_for_target_reaches_band_at_least_cost():
  # Additive table: unit u, choice c costs table[u, c] ms.
  table = np.array([[1.0, 2.0, 4.0], [1.0, 3.0, 5.0], [2.0, 2.5, 6.0]])
  arch_ms = lambda archs: table[np.arange(3), np.asarray(archs)].sum(-1)
  log_probs = np.log(np.array([[0.1, 0.2, 0.7], [0.05, 0.15, 0.8],
                               [0.3, 0.6, 0.1]]))
  argmax_ms = arch_ms(np.array([[2, 2, 1]]))[0]  # 11.5 ms
  assert argmax_ms == 11.5
  arch, changes = dnas.derive_for_target(log_probs, arch_ms, 8.5,
                                         tolerance=0.02)
  assert abs(arch_ms(arch[None])[0] - 8.5) <= 0.02 * 8.5
  # Hand-checked: unit 0 4 -> 2 ms (cost log(.7/.2) = 0.63 per ms) beats
  # unit 1 5 -> 3 ms (log(.8/.15) = 0.84 per ms); at 9.5 ms, unit 0 2 -> 1 ms
  # (log(.2/.1) per ms) lands on 8.5 ms: [0, 2, 1], the cheapest
  # architecture inside the band (log-prob cost log(.7/.1); one change off
  # the path from the start, 4 -> 1 ms, costs as much).
  assert [c['unit'] for c in changes] == [0, 0]
  assert changes[-1]['latency_ms'] == arch_ms(arch[None])[0]
  np.testing.assert_array_equal(arch, [0, 2, 1])
  # No single change lands in [6.86, 7.14]: several steps, the last one
  # into the band ([1, 1, 0] is the only architecture at 7.0 ms).
  arch, changes = dnas.derive_for_target(log_probs, arch_ms, 7.0,
                                         tolerance=0.02)
  np.testing.assert_array_equal(arch, [1, 1, 0])
  assert len(changes) > 1
  # Already inside the band: the argmax itself, no changes.
  arch, changes = dnas.derive_for_target(log_probs, arch_ms, 11.5)
  np.testing.assert_array_equal(arch, [2, 2, 1])
  assert changes == []
  # Disallowed (-inf) choices are never taken, even when they would help.
  masked = log_probs.copy()
  masked[:, 0] = -np.inf
  arch, _ = dnas.derive_for_target(masked, arch_ms, 3.0)
  assert (arch != 0).all()


def test_derive_for_target_does_not_jump_past_the_band():
  """The repair jumps past the band (unit 1: the cheapest per ms moved)
  and stops at 99.1 ms, outside [99.5, 100.5]; the in-band change it passed
  over (unit 0, to 100 ms) is returned instead (review finding: the repair's
  end was returned, outside the band)."""
  table = np.array([[0.0, -1.0], [0.0, -1.9]])
  arch_ms = lambda a: 101.0 + table[np.arange(2), np.asarray(a)].sum(-1)
  log_p = np.log(np.array([[0.70, 0.30], [0.78, 0.22]]))
  arch, changes = dnas.derive_for_target(log_p, arch_ms, 100.0,
                                         tolerance=0.005)
  np.testing.assert_array_equal(arch, [1, 0])
  assert arch_ms(arch[None])[0] == pytest.approx(100.0)
  assert [(c['unit'], c['to']) for c in changes] == [(0, 1)]


def test_derive_for_target_keeps_the_cheaper_of_path_and_shortcut():
  """An in-band change off the path is taken only when it is more probable
  than where the repair ends: one expensive jump into the band (unit 2,
  cost log(.99/.01) = 4.6) loses to two cheap steps (units 0 and 1, 0.81
  together)."""
  table = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
  arch_ms = lambda a: 10.0 + table[np.arange(3), np.asarray(a)].sum(-1)
  log_p = np.log(np.array([[0.6, 0.4], [0.6, 0.4], [0.99, 0.01]]))
  arch, changes = dnas.derive_for_target(log_p, arch_ms, 12.0,
                                         tolerance=0.01)
  np.testing.assert_array_equal(arch, [1, 1, 0])
  assert [c['unit'] for c in changes] == [0, 1]


def test_budget_derivation_stays_at_or_below_the_budget():
  from fbnet_jax import search_report
  config = ml_collections.ConfigDict(dict(
      latency=dict(target_ms=10.0), search=dict(derive_tolerance=0.05),
      loss=dict(form='target')))
  assert search_report.derivation_band(config) == (10.0, 0.05)
  config.loss.form = 'budget'  # at most 10 ms: the band [9, 10]
  centre, tol = search_report.derivation_band(config)
  assert centre * (1 - tol) == pytest.approx(9.0)
  assert centre * (1 + tol) == pytest.approx(10.0)
  # The table above: its argmax is 11.5 ms. "About 10.6 ms" stops at 11.0,
  # "at most 10.6 ms" must go below.
  table = np.array([[1.0, 2.0, 4.0], [1.0, 3.0, 5.0], [2.0, 2.5, 6.0]])
  arch_ms = lambda archs: table[np.arange(3), np.asarray(archs)].sum(-1)
  log_probs = np.log(np.array([[0.1, 0.2, 0.7], [0.05, 0.15, 0.8],
                               [0.3, 0.6, 0.1]]))
  config.latency.target_ms = 10.6
  derived = {}
  for form in ('target', 'budget'):
    config.loss.form = form
    arch, _ = dnas.derive_for_target(log_probs, arch_ms,
                                     *search_report.derivation_band(config))
    derived[form] = arch_ms(arch[None])[0]
  assert derived['target'] == 11.0
  assert derived['budget'] <= 10.6  # 9.5: greedy repair, below the band


def test_ofa_derivation_is_the_most_probable_valid_architecture():
  # OFA's stages are prefixes of blocks. A distribution whose per-slot
  # argmax skips slot 3 of stage 1 but keeps slot 4 is invalid; the most
  # probable valid one is found per stage by enumerating depth 2/3/4.
  space = spaces.get_space('ofa')
  skip = space.skip_index
  rng = np.random.default_rng(0)
  log_probs = np.full(space.choice_mask.shape, -np.inf)
  for u, unit in enumerate(space.units):
    log_probs[u, :unit.num_choices] = np.log(rng.dirichlet(
        np.ones(unit.num_choices)))
  # Stage 1 (slots 0-3): slot 2 prefers skip (0.6), slot 3 a block (0.7).
  log_probs[2, :10] = np.log(np.r_[[0.4 / 9] * 9, 0.6])
  log_probs[3, :10] = np.log(np.r_[0.7, [0.3 / 9] * 9])
  argmax = np.argmax(log_probs, -1)
  assert not space.valid_rows(argmax)[0]
  best = space.most_probable(log_probs)
  assert space.valid_rows(best)[0]
  # Depth 4 (0.4/9 * 0.7) beats depth 2 (0.6 * 0.3/9) and depth 3.
  np.testing.assert_array_equal(best[2:4], [0, 0])
  # Brute force over every valid depth combination of all five stages.
  score = lambda a: log_probs[np.arange(space.num_units), a].sum()
  import itertools  # pylint: disable=g-import-not-at-top
  for depths in itertools.product((2, 3, 4), repeat=5):
    cand = best.copy()
    for stage, d in enumerate(depths):
      for slot in range(4):
        u = stage * 4 + slot
        cand[u] = (skip if slot >= d else
                   int(np.argmax(log_probs[u, :skip])))
    assert score(cand) <= score(best) + 1e-9
  # Target derivation only ever takes valid changes.
  cost = rng.uniform(1, 3, log_probs.shape)
  cost[:20, skip] = 0.0
  arch_ms = lambda a: cost[np.arange(space.num_units),
                           np.asarray(a)].sum(-1)
  start = arch_ms(best[None])[0]
  arch, changes = dnas.derive_for_target(log_probs, arch_ms, 0.6 * start,
                                         tolerance=0.05, space=space)
  assert changes and space.valid_rows(arch)[0]
  assert abs(arch_ms(arch[None])[0] / (0.6 * start) - 1) <= 0.05


@pytest.mark.parametrize('change, message', [
    (dict(support='grid'), r"config\.latency\.support: expected 'random' or "
     r"'spread', got 'grid'"),
    (dict(support='spread', device_file='runs/x.npz'),
     r"support='spread' times the chosen architectures"),
    (dict(support='spread', num_samples=0),
     r'num_samples: .*expected >= 1, got 0'),
])
def test_spread_support_config_errors(change, message, tmp_path):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  config.latency.source = 'predictor'
  for key, value in change.items():
    config.latency[key] = value
  if config.latency.device_file:  # a valid file: the error is the support's
    from meta import latency_data  # pylint: disable=g-import-not-at-top
    path = str(tmp_path / 'dev.npz')
    latency_data.save_device_file(
        path, latency_data.bundled_device('fbnet', 'raspi4'))
    config.latency.device_file = path
  with pytest.raises(latency.LatencyConfigError, match=message):
    latency.latency_source(config)


def test_latency_control_checks_every_device_before_searching(
    tmp_path, monkeypatch):
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top
  from fbnet_jax import studies  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(search, 'train_and_evaluate',
                      lambda *a, **k: pytest.fail('searched first'))
  with pytest.raises(latency.LatencyConfigError,
                     match="^--devices: .*'pixle3'"):
    studies.latency_control(quickstart.get_config('smoke'), str(tmp_path),
                            ['raspi4', 'pixle3'], 'lut')


def test_latency_control_scores_each_found_network_by_the_table(
    tmp_path, monkeypatch):
  """Stand-in searches return fixed architectures: each row's exact
  latency is the table's for the architecture the search returned, its
  error is against the target the search was given."""
  import json  # pylint: disable=g-import-not-at-top
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top
  from fbnet_jax import studies  # pylint: disable=g-import-not-at-top
  space = spaces.get_space('fbnet')
  found = space.sample(np.random.default_rng(0), 2)  # derived, argmax
  given = []

  def stand_in(cfg, workdir, desc):
    del workdir, desc
    given.append((cfg.latency.device, cfg.latency.source,
                   cfg.latency.target_ms))
    return {'arch_index': found[0].tolist(), 'arch': space.names(found[0]),
            'argmax': {'arch_index': found[1].tolist()},
            'latency_source': 'predictor:raspi4',
            'latency_ms': {'predictor:raspi4': 7.0},
            'supernet_accuracy': 0.5}

  monkeypatch.setattr(search, 'train_and_evaluate', stand_in)
  out = studies.latency_control(quickstart.get_config('smoke'),
                                str(tmp_path), ['raspi4'], 'predictor',
                                quantiles=(0.2, 0.8))
  lut = latency.lookup_table_latency('raspi4')
  # At quantiles of random architectures of the searched ops (the smoke
  # config's two), not of all nine.
  targets = studies.latency_targets('raspi4', (0.2, 0.8),
                                    ops=('k3_e1', 'skip'))
  assert targets[1] < studies.latency_targets('raspi4', (0.2,))[0]
  assert given == [('raspi4', 'predictor', round(t, 3)) for t in targets]
  exact = float(lut.arch_ms(found[:1])[0])
  argmax = float(lut.arch_ms(found[1:])[0])
  for row, target in zip(out['rows'], targets):
    assert row['exact_lut_ms'] == pytest.approx(exact)
    assert row['relative_error'] == pytest.approx(exact / round(target, 3)
                                                  - 1)
    assert row['argmax_exact_lut_ms'] == pytest.approx(argmax)
    assert row['source_ms'] == 7.0
  assert out['max_abs_relative_error'] == pytest.approx(max(
      abs(exact / round(t, 3) - 1) for t in targets))
  assert out['distinct_archs_per_quantile'] == {0.2: 1, 0.8: 1}
  with open(tmp_path / 'latency_control_predictor.json') as f:
    assert json.load(f) == json.loads(json.dumps(out))


def test_spread_support_is_the_references_and_spread_archs_by_the_table():
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from meta import latency_data  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  config.latency.source = 'predictor'
  config.latency.support = 'spread'
  config.latency.num_samples = 6
  device = latency_data.bundled_device('fbnet', 'raspi4')
  support = latency.spread_support(config, device)
  refs = latency_data.load_space_data('fbnet').reference_archs
  assert len(support.archs) == len(refs) + 6
  np.testing.assert_array_equal(support.archs[:len(refs)], refs)
  table = latency.lookup_table_latency('raspi4')
  np.testing.assert_allclose(support.ms, table.arch_ms(support.archs),
                             rtol=1e-6)
  # Spread from uniform towards the cheapest: the last is the fastest.
  spread_ms = np.asarray(support.ms[len(refs):])
  assert spread_ms[-1] == spread_ms.min() < spread_ms[0]


def test_reported_sources_are_the_searched_devices(tmp_path):
  """A search on a bundled device reports its table beside the predictor; on
  a saved adapted predictor (experiments.adapt) or a device file, the
  bundled table of config.latency.device is another device's: left out."""
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  from meta import latency_data  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config()
  assert set(latency.all_sources(config)) == {'lut:raspi4',
                                              'predictor:raspi4'}
  dev = latency_data.bundled_device('fbnet', 'eyeriss')
  adapted = latency.adapt_predictor('fbnet', dev)
  adapted.save(str(tmp_path / 'adapted'))
  config.latency.update(source='predictor',
                        adapted_dir=str(tmp_path / 'adapted'))
  assert set(latency.all_sources(config)) == {'predictor:eyeriss'}


def test_a_registered_latency_source_is_taken_by_name(monkeypatch):
  """A new source is one function registered under a name; an unknown
  name is an error listing the registered ones."""
  from configs import quickstart  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(latency, 'SOURCES', dict(latency.SOURCES))
  space = spaces.get_space('fbnet')
  consts, table = 1.0, np.arange(22 * 9, dtype=np.float32).reshape(22, 9)

  @latency.register_source('toy')
  def toy(config):
    del config
    return latency.LatencyModel(
        'toy', space, lambda params, probs: params['c'] + jnp.sum(
            probs * params['t'], axis=(-2, -1)),
        {'c': jnp.float32(consts), 't': jnp.asarray(table)})

  with pytest.raises(ValueError, match='already registered'):
    latency.register_source('toy')(toy)
  config = quickstart.get_config()
  config.latency.source = 'toy'
  model = latency.latency_source(config)
  arch = space.sample(np.random.default_rng(0), 1)
  assert float(model.arch_ms(arch)[0]) == pytest.approx(
      consts + table[np.arange(22), arch[0]].sum())
  # The report adds the device's exact table and the bundled predictor.
  assert list(latency.all_sources(config)) == ['toy', 'lut:raspi4',
                                               'predictor:raspi4']
  config.latency.source = 'tyo'
  with pytest.raises(latency.LatencyConfigError,
                     match="config.latency.source: expected one of 'lut', "
                     "'predictor', 'toy', got 'tyo'"):
    latency.latency_source(config)


def test_a_nasbench201_predictor_search_reports_the_measured_cell():
  from configs import evolve_nasbench201  # pylint: disable=g-import-not-at-top
  config = evolve_nasbench201.get_config()
  config.latency.update(source='predictor', device='pixel2')
  assert list(latency.all_sources(config)) == ['predictor:pixel2',
                                               'table:pixel2']


def test_a_target_below_the_fastest_architecture_is_said_up_front(caplog):
  from fbnet_jax import search  # pylint: disable=g-import-not-at-top

  class Stub:
    latency = latency.lookup_table_latency('raspi4')

    def allowed(self):
      return np.ones((22, 9), bool)

  search._warn_if_unreachable(Stub(), 10.0)  # pylint: disable=protected-access
  assert 'below the fastest' not in caplog.text
  search._warn_if_unreachable(Stub(), 0.5)  # pylint: disable=protected-access
  assert ('config.latency.target_ms: 0.5 ms is below the fastest allowed '
          'architecture under lut:raspi4 (7.8 ms)') in caplog.text
  search._warn_if_unreachable(Stub(), 1e4)  # pylint: disable=protected-access
  # An additive table's slowest: each layer's slowest block.
  table = Stub.latency
  slowest = float(table.arch_ms(np.asarray(
      table.params['table']).argmax(-1)))
  assert ('config.latency.target_ms: 1e+04 ms is above the slowest allowed '
          f'architecture under lut:raspi4 ({slowest:.3g} ms)') in caplog.text
