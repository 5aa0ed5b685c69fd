"""MAML / Meta-SGD / ridge head against hand-derived gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meta import maml


def _linear_head(params, x, probs, modulation):
  del probs, modulation
  return x * params['w'], jnp.stack([x, jnp.ones_like(x)], -1)


_linear_net = maml.NetFns(embed=lambda params, probs, hardware: probs,
                          head=_linear_head)


def _no_modulator(params, hardware, rng):
  raise AssertionError('modulation is off in these tests')


X_S = jnp.array([1.0, 2.0, -1.0])
Y_S = jnp.array([2.0, 3.0, -1.0])
X_Q = jnp.array([0.5, -2.0])
Y_Q = jnp.array([1.0, -3.0])


def _task():
  return dict(support_probs=X_S, support_y=Y_S, support_w=jnp.ones(3),
              query_probs=X_Q, query_y=Y_Q, hardware=jnp.zeros(2))


def _outer(w, lr, first_order, steps=1):
  cfg = maml.InnerConfig(num_steps=steps, first_order=first_order,
                         modulation=False, head='gradient')
  params = {'net': {'w': w}, 'inner_lr': {'w': lr}, 'modulator': {},
            'ridge_log_precision': jnp.zeros(2)}
  loss, _ = maml.task_loss(params, _linear_net, _no_modulator, cfg, _task(),
                           jax.random.PRNGKey(0), 0.0)
  return loss


@pytest.mark.parametrize('first_order', [False, True])
def test_one_maml_step_matches_hand_derived_gradient(first_order):
  w, lr = 0.3, 0.05
  # Inner step: w' = w - lr * dLs/dw, with Ls = mean((w x - y)^2).
  d_support = 2 * np.mean(X_S * (w * X_S - Y_S))
  w_adapted = w - lr * d_support
  d_query = 2 * np.mean(X_Q * (w_adapted * X_Q - Y_Q))
  dw_adapted_dw = 1 - lr * 2 * np.mean(X_S ** 2)
  expected = d_query * (1.0 if first_order else dw_adapted_dw)
  got = jax.grad(_outer)(w, lr, first_order)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # Meta-SGD: the gradient with respect to the step size itself.
  expected_lr = d_query * -d_support
  got_lr = jax.grad(_outer, argnums=1)(w, lr, False)
  np.testing.assert_allclose(got_lr, expected_lr, rtol=1e-5)


def test_two_steps_against_finite_differences():
  w, lr, eps = 0.3, 0.05, 1e-3
  numeric = (_outer(w + eps, lr, False, 2) - _outer(w - eps, lr, False, 2)) / (
      2 * eps)
  np.testing.assert_allclose(jax.grad(_outer)(w, lr, False, 2), numeric,
                             rtol=1e-3)


def test_ridge_solve_matches_numpy():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(7, 3))
  r = rng.normal(size=7)
  weights = np.array([1, 1, 0, 1, 1, 1, 1.])
  log_prec = np.log(np.array([0.5, 2.0, 1.0]))
  got = maml.ridge_solve(jnp.asarray(f), jnp.asarray(r), jnp.asarray(weights),
                         jnp.asarray(log_prec))
  keep = weights > 0
  expected = np.linalg.solve(
      f[keep].T @ f[keep] + np.diag(np.exp(log_prec)), f[keep].T @ r[keep])
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_support_stats_ignore_padding():
  t = jnp.array([1., 2., 3., 100.])
  mean, std = maml.support_stats(t, jnp.array([1., 1., 1., 0.]))
  np.testing.assert_allclose(mean, 2.0, rtol=1e-6)
  np.testing.assert_allclose(std, np.std([1., 2., 3.]), rtol=1e-6)


def test_hardware_embedding_masks_missing_references():
  hw = maml.hardware_embedding(jnp.array([2., 4., 6.]),
                               jnp.array([1., 0., 1.]), 4.0, 2.0)
  np.testing.assert_allclose(hw, [-1., 0., 1., 1., 0., 1.])


def test_adapt_mask_head_only():
  params = {'unit_fc1': {'kernel': jnp.ones(2)}, 'fc3': {'kernel': jnp.ones(2)}}
  mask = maml.adapt_mask(params, 'head')
  assert float(mask['unit_fc1']['kernel']) == 0.0
  assert float(mask['fc3']['kernel']) == 1.0
  with pytest.raises(ValueError, match='meta.adapt'):
    maml.adapt_mask(params, 'some')


@pytest.mark.parametrize('field, value, allowed', [
    ('head', 'Ridge', "'gradient', 'ridge'"),
    ('head', 'closed_form', "'gradient', 'ridge'"),
    ('adapt', 'trunk', "'all', 'head'"),
    ('target', 'ms', "'linear', 'log'"),
])
def test_inner_config_refuses_unknown_choices(field, value, allowed):
  # Any head but exactly 'ridge' used to give the gradient head silently.
  with pytest.raises(ValueError) as e:
    maml.InnerConfig(**{field: value})
  assert str(e.value) == (f'config.meta.{field}: expected one of {allowed}, '
                          f'got {value!r}.')


def test_inner_config_from_the_config_checks_the_head():
  from configs import help_fbnet
  from meta import adaptation
  config = help_fbnet.get_config('smoke')
  assert adaptation.inner_config(config).head == 'ridge'
  config.meta.head = 'Ridge'
  with pytest.raises(ValueError, match="config.meta.head: .*got 'Ridge'"):
    adaptation.inner_config(config)


def test_inner_clipping_norm_has_a_finite_gradient_at_zero():
  # Second-order MAML differentiates through the inner step's clipping;
  # sqrt's infinite slope at 0 (or at a square that underflows) gave NaN.
  def clipped(g):
    return (g * jnp.minimum(1.0, 1.0 / (maml._tree_norm({'g': g}) + 1e-12))
           ).sum()
  for g in (jnp.zeros(3), jnp.array([1e-30, 0.0, 0.0])):
    assert np.all(np.isfinite(jax.grad(clipped)(g)))
  g = jnp.array([3.0, 4.0])
  assert float(maml._tree_norm({'a': g, 'b': jnp.zeros(2)})) == 5.0
  np.testing.assert_allclose(jax.grad(lambda g: maml._tree_norm({'g': g}))(g),
                             [0.6, 0.8], rtol=1e-6)


def test_frozen_step_sizes_do_not_shrink_the_clipped_update():
  # MAML (step sizes not learned): huge step-size gradients must not enter
  # the global norm that clips the real update.
  from configs import help_fbnet
  from meta import train
  config = help_fbnet.get_config('maml')
  assert not config.meta.learn_inner_lr
  params = {'net': {'w': jnp.ones(2)}, 'modulator': {},
            'ridge_log_precision': jnp.zeros(1),
            'inner_lr': {'w': jnp.ones(2)}}
  opt = train.make_optimizer(config)
  updates = []
  for lr_grad in (0.0, 1e6):
    grads = {'net': {'w': jnp.array([0.3, -0.4])}, 'modulator': {},
             'ridge_log_precision': jnp.zeros(1),
             'inner_lr': {'w': jnp.full(2, lr_grad)}}
    u, _ = opt.update(grads, opt.init(params), params)
    assert np.all(np.asarray(u['inner_lr']['w']) == 0)
    updates.append(np.asarray(u['net']['w']))
  np.testing.assert_allclose(updates[0], updates[1])
