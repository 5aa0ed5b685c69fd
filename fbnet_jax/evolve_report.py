"""What the evolutionary search writes: fronts, hypervolume curves, summary
and plots (matplotlib, Agg backend).

Files in the workdir:

- ``front.json``: the guided search's front, non-dominated among its fully
  evaluated architectures (all seeds): ``[{"arch": [op names],
  "latency_ms", "accuracy", ...}]`` sorted by latency; ``accuracy`` is the
  supernet's validation accuracy, ``test_accuracy`` the held-out one.
- ``fronts.json``: both strategies' fronts and the DNAS points, if any.
- ``evaluations.json``: every full evaluation, per strategy and seed, in
  order.
- ``hypervolume.json``: ``{"guided": [[evaluations, hv], ...], "random":
  [...]}`` (mean over seeds) and the per-seed curves.
- ``summary.json``, ``front.png``, ``hypervolume.png``.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from fbnet_jax import pareto

STRATEGIES = ('guided', 'random')


def front_entries(space, archs, latency_ms, accuracy) -> list[dict]:
  """The non-dominated (latency, -accuracy) points, sorted by latency;
  duplicates of one architecture appear once."""
  archs = np.asarray(archs)
  _, first = np.unique(archs, axis=0, return_index=True)
  first = np.sort(first)
  lat = np.asarray(latency_ms, np.float64)[first]
  acc = np.asarray(accuracy, np.float64)[first]
  rows = pareto.non_dominated(np.stack([lat, -acc], 1))
  rows = rows[np.argsort(lat[rows], kind='stable')]
  return [{'arch': space.names(archs[first[r]]),
           'arch_index': [int(a) for a in archs[first[r]]],
           'latency_ms': float(lat[r]), 'accuracy': float(acc[r])}
          for r in rows]


def mean_curve(curves: list[list]) -> list[list]:
  """Mean over seeds of equally long [[n, hv], ...] curves."""
  values = np.mean([[hv for _, hv in c] for c in curves], axis=0)
  return [[int(n), float(v)] for (n, _), v in zip(curves[0], values)]


def budget_comparison(guided: list, random: list, budgets: list,
                      random_budget: int) -> list[dict]:
  """For each guided budget: both hypervolumes, and how many random
  evaluations reach guided's hypervolume (the factor ``n / budget``; a
  lower bound ``random_budget / budget`` when random never reaches it)."""
  at = lambda curve, n: curve[min(n, len(curve)) - 1][1]
  rows = []
  for b in budgets:
    needed = pareto.evaluations_to_reach(random, at(guided, b))
    rows.append({
        'evaluations': int(b), 'guided_hv': at(guided, b),
        'random_hv': at(random, b), 'random_evaluations_to_match': needed,
        'factor': None if needed is None else needed / b,
        'factor_at_least': (random_budget / b if needed is None else
                            needed / b)})
  return rows


def write_json(workdir: str, name: str, value) -> None:
  tmp = os.path.join(workdir, name + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(value, f, indent=1)
  os.replace(tmp, os.path.join(workdir, name))


def plot_front(workdir: str, points: dict, fronts: dict,
               dnas: Optional[list], latency_name: str) -> None:
  """``front.png``: evaluated points and fronts of both strategies."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors = {'guided': 'tab:blue', 'random': 'tab:orange'}
  for name in STRATEGIES:
    lat, acc = points[name]
    ax.scatter(lat, acc, s=12, alpha=0.35, color=colors[name],
               label=f'{name}: evaluated ({len(lat)})')
    front = fronts[name]
    ax.step([p['latency_ms'] for p in front], [p['accuracy'] for p in front],
            where='post', marker='o', ms=4, color=colors[name],
            label=f'{name}: front ({len(front)})')
  if dnas:
    ax.scatter([p['latency_ms'] for p in dnas], [p['accuracy'] for p in dnas],
               marker='*', s=120, color='tab:red', label='DNAS', zorder=5)
  ax.set_xlabel(f'latency (ms, {latency_name})')
  ax.set_ylabel('supernet accuracy (validation)')
  ax.set_title('fully evaluated architectures and their Pareto fronts')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'front.png'), dpi=110)
  plt.close(fig)


def plot_hypervolume(workdir: str, curves: dict, per_seed: dict) -> None:
  """``hypervolume.png``: hypervolume against full evaluations."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors = {'guided': 'tab:blue', 'random': 'tab:orange'}
  for name in STRATEGIES:
    for curve in per_seed[name].values():
      ax.plot(*np.asarray(curve).T, color=colors[name], alpha=0.25, lw=0.8)
    ax.plot(*np.asarray(curves[name]).T, color=colors[name], lw=2,
            label=f'{name} (mean of {len(per_seed[name])} seeds)')
  ax.set_xlabel('full evaluations')
  ax.set_ylabel('hypervolume (normalised)')
  ax.set_title('hypervolume of the evaluated front')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'hypervolume.png'), dpi=110)
  plt.close(fig)
