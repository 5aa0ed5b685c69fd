"""The few-shot baselines: what each model can and cannot learn."""

import numpy as np
import pytest

from meta import baselines
from meta import latency_data
from meta import tasks as tasks_lib


def _task(space, archs, ms, support, query):
  return tasks_lib.FewShotTask(
      space=space, device='synthetic', support_archs=archs[support],
      support_ms=ms[support], reference_ms=ms[support][:0],
      query_archs=archs[query], query_ms=ms[query])


@pytest.mark.parametrize('space', ['fbnet', 'nasbench201'])
def test_bayes_linear_learns_a_device_in_its_prior(space):
  # A target whose costs are a meta-train device's linear model, scaled:
  # inside the prior's span, so 20 measurements pin it down.
  split = latency_data.SPLITS[space]
  model = baselines.BayesLinear(space, split.meta_train)
  raw = latency_data.load_space_data(space)
  archs = raw.archs
  source = latency_data.bundled_device(space, split.meta_train[3])
  rows = ~source.is_query
  coef = baselines._ridge(baselines._design(model.space, source.archs[rows]),
                          source.latency_ms[rows], 1e-3)
  ms = 3. * baselines._design(model.space, archs) @ coef
  query = np.arange(*split.query_rows)
  task = _task(space, archs, ms, np.arange(20), query)
  pred = model.adapt(task)(task.query_archs)
  assert tasks_lib.spearman(pred, task.query_ms) > 0.99
  # In milliseconds, not only ranks: the support's scale is kept.
  np.testing.assert_allclose(np.median(pred / task.query_ms), 1., atol=0.05)


def test_bayes_linear_posterior_fits_its_support_as_noise_vanishes():
  space = 'fbnet'
  split = latency_data.SPLITS[space]
  raw = latency_data.load_space_data(space)
  rng = np.random.default_rng(0)
  ms = rng.uniform(5., 20., len(raw.archs))  # no structure at all
  task = _task(space, raw.archs, ms, np.arange(20), np.arange(20, 40))
  exact = baselines.BayesLinear(space, split.meta_train, noise=1e-9)
  np.testing.assert_allclose(exact.adapt(task)(task.support_archs),
                             task.support_ms, rtol=1e-4)
  # A noisy prior shrinks towards the meta-train devices' mean instead.
  noisy = baselines.BayesLinear(space, split.meta_train, noise=10.)
  assert not np.allclose(noisy.adapt(task)(task.support_archs),
                         task.support_ms, rtol=0.05)


class _Constant:
  """A model whose predictions are all equal (Spearman NaN), or the
  support's truth (a perfect ranker)."""

  def __init__(self, name, constant):
    self.settings, self.constant = dict(name=name), constant

  def adapt(self, task):
    if self.constant:
      return lambda archs: np.ones(len(archs))
    truth = {a.tobytes(): ms for a, ms in zip(task.query_archs, task.query_ms)}
    return lambda archs: np.array([truth[a.tobytes()] for a in archs])


# The constant model's Spearman is NaN on purpose; scipy says so.
@pytest.mark.filterwarnings('ignore:An input array is constant')
def test_selection_never_picks_a_nan_score_even_first():
  space = 'fbnet'
  raw = latency_data.load_space_data(space)
  ms = np.random.default_rng(0).uniform(5., 20., len(raw.archs))
  task = _task(space, raw.archs, ms, np.arange(20), np.arange(20, 60))
  best = baselines._best_on([task], [_Constant('flat', True),
                                     _Constant('ranker', False)])
  assert best.settings == dict(name='ranker')
  assert best.selection['valid_spearman'] == pytest.approx(1.)


@pytest.mark.parametrize('space', ['fbnet', 'nasbench201', 'ofa'])
def test_op_counts_is_exact_where_latency_follows_the_counts(space):
  # A synthetic device whose latency is a cost per choice name, wherever
  # the choice sits: enough measurements recover it in milliseconds.
  model = baselines.OpCounts(space)
  raw = latency_data.load_space_data(space)
  names = sorted({c for u in model.space.units for c in u.choices})
  cost = dict(zip(names, np.random.default_rng(1).uniform(0.5, 3., len(names))))
  ms = np.array([2. + sum(cost[n] for n in model.space.names(a))
                 for a in raw.archs[:600]])
  # Enough support rows that every name is seen (OFA's 25 resolutions).
  task = _task(space, raw.archs[:600], ms, np.arange(200), np.arange(200, 600))
  np.testing.assert_allclose(model.adapt(task)(task.query_archs),
                             task.query_ms, rtol=1e-3)
  # Position is what it cannot see: two NAS-Bench-201 cells with the same
  # ops on other edges get one prediction.
  if space == 'nasbench201':
    a = np.array([[1, 2, 3, 4, 0, 1]], np.int32)
    np.testing.assert_allclose(model.adapt(task)(a),
                               model.adapt(task)(a[:, ::-1]), rtol=1e-6)


def test_op_counts_fits_log_ms_when_asked():
  space = 'nasbench201'
  raw = latency_data.load_space_data(space)
  counts = np.stack([(raw.archs == op).sum(-1) for op in range(5)], -1)
  ms = np.exp(0.1 + counts @ np.array([0.3, -0.2, 0.5, 0.1, 0.05]))
  task = _task(space, raw.archs, ms, np.arange(30), np.arange(30, 300))
  log_model = baselines.OpCounts(space, log_target=True)
  np.testing.assert_allclose(log_model.adapt(task)(task.query_archs),
                             task.query_ms, rtol=1e-3)
  # The ms model cannot be exact on a multiplicative device.
  linear = baselines.OpCounts(space).adapt(task)(task.query_archs)
  assert np.max(np.abs(linear / task.query_ms - 1)) > 0.01
