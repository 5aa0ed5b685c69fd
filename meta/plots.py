"""Plots of the predictor: meta-training curves, predicted vs. measured.

- :func:`plot_meta_train`: ``meta_train.png`` of a meta-training workdir,
  the episodes' query loss and the meta-valid Spearman that selects the
  checkpoint, the selected episode marked.
- :func:`plot_meta_test`: ``meta_test.png``, one panel per evaluated device:
  each query row's predicted against measured latency for one support
  draw, the support rows the predictor was adapted on marked.

matplotlib's Agg backend; nothing here is needed to train or evaluate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

# Above this ratio of slowest to fastest latency a panel is log-log.
LOG_SCALE_RATIO = 20.0


@dataclasses.dataclass(frozen=True)
class DevicePanel:
  """One device of :func:`plot_meta_test`.

  Attributes:
    label: the device (a bundled name, or a device file).
    query_ms, query_pred_ms: measured and predicted latency of the query
      rows (one support draw).
    support_ms, support_pred_ms: the same for the rows adapted on.
    spearman: the draw's Spearman on the query rows.
    mean_spearman: the mean over every evaluated draw (the reported one).
    num_draws: how many draws that mean is over.
  """
  label: str
  query_ms: np.ndarray
  query_pred_ms: np.ndarray
  support_ms: np.ndarray
  support_pred_ms: np.ndarray
  spearman: float
  mean_spearman: float
  num_draws: int


def plot_meta_train(history: Sequence[dict], best_episode: int,
                    path: str) -> None:
  """The training curves of ``history.json`` (``meta.train``'s records)."""
  if not history:
    return
  episodes = [h['episode'] for h in history]
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
  mse = [h['query_mse'] for h in history]
  axes[0].plot(episodes, mse, label='query MSE (standardised labels)')
  loss = [h['loss'] for h in history]
  if not np.allclose(loss, mse):  # a KL term (HELP's) adds to it
    axes[0].plot(episodes, loss, label='meta-objective')
  axes[0].set_yscale('log')
  axes[0].set_xlabel('episode')
  axes[0].set_title('meta-train tasks (mean over the episodes of the\n'
                    'compiled call before each validation)', fontsize=10)
  axes[0].legend()
  valid = [h['valid_spearman'] for h in history]
  axes[1].plot(episodes, valid, marker='.', label='meta-valid Spearman')
  axes[1].axvline(best_episode, color='k', ls=':', lw=0.8,
                  label=f'selected: episode {best_episode}')
  axes[1].set_xlabel('episode')
  axes[1].set_title('model selection (meta-valid devices only)')
  axes[1].legend(loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_meta_test(panels: Sequence[DevicePanel], path: str,
                   title: str) -> None:
  """Predicted against measured latency, one panel per device."""
  if not panels:
    return
  cols = min(3, len(panels))
  rows = math.ceil(len(panels) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows),
                           squeeze=False)
  for ax, p in zip(axes.flat, panels):
    measured = np.concatenate([p.query_ms, p.support_ms])
    predicted = np.concatenate([p.query_pred_ms, p.support_pred_ms])
    both = np.concatenate([measured, predicted])
    lo, hi = float(both.min()), float(both.max())
    if lo > 0 and hi / lo > LOG_SCALE_RATIO:
      ax.set_xscale('log')
      ax.set_yscale('log')
    ax.plot([lo, hi], [lo, hi], color='k', lw=0.8, ls=':', label='y = x')
    ax.scatter(p.query_ms, p.query_pred_ms, s=5, alpha=0.4,
               label=f'{len(p.query_ms)} query rows')
    ax.scatter(p.support_ms, p.support_pred_ms, s=18, marker='x',
               color='C3', label=f'{len(p.support_ms)} adapted on')
    pos = p.query_ms > 0
    error = np.median(np.abs(p.query_pred_ms[pos] / p.query_ms[pos] - 1))
    ax.set_title(f'{p.label}\nSpearman {p.spearman:.3f}' + (
        f' this draw, {p.mean_spearman:.3f} over {p.num_draws}'
        if p.num_draws > 1 else ''), fontsize=9)
    ax.text(0.97, 0.03, f'median |pred/meas - 1| {100 * error:.1f}%',
            transform=ax.transAxes, ha='right', va='bottom', fontsize=8)
    ax.set_xlabel('measured (ms)')
    ax.set_ylabel('predicted (ms)')
    ax.legend(loc='upper left', fontsize=7)
  for ax in axes.flat[len(panels):]:
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
