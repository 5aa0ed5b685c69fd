r"""Does the evolve job's accuracy objective rank networks as retraining does?

    python -m benchmarks.oneshot_vs_retrained --config=configs/evolve_quick.py \
        --workdir=runs/oneshot_vs_retrained [--num_archs=12] [--seeds=1] \
        [--out=runs/oneshot_vs_retrained.json]

The evolutionary search (``experiments.evolve``) scores architectures by
the weight-sharing supernet's accuracy (inherited weights, batch-norm
statistics recalibrated; ``evolve.SupernetEvaluator.validation``, the
'arch' split). A front is only as good as that estimate's ranking of what
the networks reach when trained on their own. This trains the config's
supernet (or resumes it, in ``--workdir/supernet``, as the evolve job
does), draws ``--num_archs`` architectures of the config's candidates
spread from uniform to nearly all-skip (architecture ``i`` takes ``skip``
in each layer with probability ``i / n``, else a uniform candidate), scores
each with the supernet, retrains each from scratch (``config.retrain``,
``--seeds`` seeds, test split) and reports Spearman's and Kendall's rank
correlations (``scipy.stats``) of the supernet's accuracy with the
retrained one, beside those of FLOPs and of the lookup-table latency (the
"bigger is better" baselines any estimate must beat to be worth its
evaluations); with two or more seeds, also seed 0's retrained accuracy
against seed 1's (how well retraining ranks the networks against itself)
and, from it, the noise ceiling of a correlation with the seeds' mean
(Spearman-Brown: the mean of k seeds has reliability
k r / (1 + (k - 1) r); a perfect ranker correlates with it at about the
square root of that; a rough bound with ranks of a dozen networks). The
supernet's training cross-entropy and temperature per epoch are kept.
Writes ``--out`` and a scatter plot beside it; a killed run resumes (each
retraining reads back or resumes its folder).
"""

import copy
import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags
import numpy as np
from scipy import stats

from benchmarks import write_json
from fbnet_jax import evolve
from fbnet_jax import retrain
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import workdirs

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/evolve_quick.py',
                                          'An evolve config.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/oneshot_vs_retrained',
                               'Supernet and retrainings.')
_NUM_ARCHS = flags.DEFINE_integer('num_archs', 12, 'Architectures.')
_SEEDS = flags.DEFINE_integer('seeds', 1, 'Retraining seeds per architecture.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the architectures.')
_OUT = flags.DEFINE_string('out', 'runs/oneshot_vs_retrained.json',
                           'Results (and a .png beside them).')


def spread_archs(searcher: searcher_lib.Searcher, skip: int, n: int,
                 rng: np.random.Generator) -> np.ndarray:
  """``n`` architectures of the searched candidates, the ``i``-th with
  each layer ``skip`` (its choice index) with probability ``i / n``, else
  uniform."""
  allowed = searcher.allowed()
  archs = np.zeros((n, len(allowed)), np.int32)
  for i in range(n):
    for unit, row in enumerate(allowed):
      archs[i, unit] = (skip if row[skip] and rng.random() < i / n else
                        rng.choice(np.flatnonzero(row)))
  return archs


def correlations(x, y) -> dict:
  rho, rho_p = stats.spearmanr(x, y)
  tau, tau_p = stats.kendalltau(x, y)
  return {'spearman': float(rho), 'spearman_p': float(rho_p),
          'kendall': float(tau), 'kendall_p': float(tau_p)}


def main(argv):
  del argv
  config = _CONFIG.value
  if 'fbnet' != config.space:
    raise app.UsageError(f'--config: an FBNet evolve config, got space '
                         f'{config.space!r}.')
  supernet_dir = os.path.join(_WORKDIR.value, 'supernet')
  search.train_and_evaluate(config, supernet_dir, desc='supernet')
  searcher = searcher_lib.Searcher(config)
  state = evolve.restore_supernet(searcher, supernet_dir)
  evaluator = evolve.SupernetEvaluator(searcher, state,
                                       config.evolve.get('eval_limit'))
  skip = searcher.space.units[0].choices.index('skip')
  archs = spread_archs(searcher, skip, _NUM_ARCHS.value,
                       np.random.default_rng(_SEED.value))
  rows = []
  for i, arch in enumerate(archs):
    accs = []
    for s in range(_SEEDS.value):
      cfg = copy.deepcopy(config)
      cfg.seed = config.seed + s
      run = retrain.train_and_evaluate(
          cfg, arch, os.path.join(_WORKDIR.value, f'arch{i}', f'seed{s}'))
      accs.append(float(run['accuracy']))
    rows.append({
        'arch': searcher.space.names(arch),
        'skips': int(np.sum(arch == skip)),
        'lut_ms': float(searcher.latency.arch_ms(arch[None])[0]),
        'flops': float(searcher.space.flops(arch)),
        'supernet_accuracy': evaluator.validation(arch),
        'retrained_accuracies': accs,
        'retrained_accuracy': float(np.mean(accs))})
    print(f'arch {i:2d}  {rows[-1]["lut_ms"]:6.2f} ms  supernet '
          f'{rows[-1]["supernet_accuracy"]:.4f}  retrained '
          f'{rows[-1]["retrained_accuracy"]:.4f}', flush=True)
  retrained = [r['retrained_accuracy'] for r in rows]
  out = {
      'command': 'python -m benchmarks.oneshot_vs_retrained',
      'config_epochs': config.epochs, 'ops': list(config.search.ops),
      'retrain_epochs': config.retrain.epochs, 'seeds': _SEEDS.value,
      'archs': rows,
      'supernet_vs_retrained': correlations(
          [r['supernet_accuracy'] for r in rows], retrained),
      'flops_vs_retrained': correlations([r['flops'] for r in rows],
                                         retrained),
      'latency_vs_retrained': correlations([r['lut_ms'] for r in rows],
                                           retrained),
  }
  history = workdirs.read_json(os.path.join(supernet_dir, 'history.json'))
  out['supernet_ce_by_epoch'] = [h['ce'] for h in history]
  out['supernet_tau_by_epoch'] = [h['tau'] for h in history]
  if _SEEDS.value > 1:
    # How well retraining ranks the networks against itself (one seed
    # against another), and what that bounds: the correlation of a
    # perfect estimate with the mean of the seeds (Spearman-Brown).
    out['retrained_seed0_vs_seed1'] = correlations(
        [r['retrained_accuracies'][0] for r in rows],
        [r['retrained_accuracies'][1] for r in rows])
    r, k = out['retrained_seed0_vs_seed1']['spearman'], _SEEDS.value
    reliability = k * r / (1 + (k - 1) * r) if r > 0 else 0.0
    out['retrained_mean_reliability'] = reliability
    out['noise_ceiling'] = float(np.sqrt(reliability))
  write_json(_OUT.value, out)
  fig, ax = plt.subplots(figsize=(6, 4.5))
  points = ax.scatter([r['supernet_accuracy'] for r in rows], retrained,
                      c=[r['lut_ms'] for r in rows], cmap='viridis')
  fig.colorbar(points, ax=ax, label=f'{config.latency.device} table (ms)')
  c = out['supernet_vs_retrained']
  ax.set_title(f'supernet vs. retrained accuracy: Spearman {c["spearman"]:.2f}'
               f', Kendall {c["kendall"]:.2f}')
  ax.set_xlabel('supernet accuracy (inherited weights, BN recalibrated)')
  ax.set_ylabel(f'retrained accuracy ({_SEEDS.value} seed(s), test split)')
  fig.tight_layout()
  fig.savefig(os.path.splitext(_OUT.value)[0] + '.png', dpi=110)
  for key in ('supernet_vs_retrained', 'flops_vs_retrained',
              'latency_vs_retrained', 'retrained_seed0_vs_seed1',
              'noise_ceiling'):
    if key in out:
      print(key, out[key])


if __name__ == '__main__':
  app.run(main)
