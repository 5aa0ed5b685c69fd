"""Metrics writers and plots of a search and of the closed loop.

Scalars go to TensorBoard (tensorboardX, no TensorFlow needed) and to
``metrics.jsonl``; plots are written with matplotlib's Agg backend.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from absl import logging

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from fbnet_jax import workdirs


class MetricWriter:
  """TensorBoard (if tensorboardX is installed) + a JSON-lines file; a
  disabled writer (``enabled=False``: every process but the first of a
  multi-host run) writes nothing."""

  def __init__(self, workdir: str, enabled: bool = True,
               resumed_at: Optional[int] = None):
    """``resumed_at``: the step a resumed run restored; records after it
    (written before the run was stopped, and about to be written again)
    are dropped from ``metrics.jsonl``."""
    self._jsonl = self._tb = None
    if not enabled:
      return
    path = os.path.join(workdir, 'metrics.jsonl')
    if resumed_at is not None and os.path.exists(path):
      kept = []
      with open(path) as f:
        for line in f:
          try:
            if json.loads(line)['step'] <= resumed_at:
              kept.append(line)
          except (ValueError, KeyError, TypeError):  # a killed run's last
            logging.warning('%s: dropped a line that is not a complete '
                            'record: %r', path, line[:80])
      with workdirs.atomic_open(path) as f:
        f.writelines(kept)
    self._jsonl = open(path, 'a')
    try:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, 'tb'))
    except ImportError:
      self._tb = None

  def scalars(self, step: int, values: dict) -> None:
    if self._jsonl is None:
      return
    values = {k: float(v) for k, v in values.items()
              if isinstance(v, (int, float, np.floating, np.integer))}
    self._jsonl.write(json.dumps({'step': int(step), **values}) + '\n')
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in values.items():
        self._tb.add_scalar(k, v, step)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def choice_columns(space) -> tuple[list[str], bool]:
  """The columns of a soft architecture's plot and whether they are
  names: every unit's choices when all units share them (FBNet,
  NAS-Bench-201), else indices (OFA's kernel/expansion, depth and
  resolution units each have their own)."""
  first = tuple(space.units[0].choices)
  if all(tuple(u.choices) == first for u in space.units):
    return list(first), True
  return [str(i) for i in range(space.max_choices)], False


def derived_labels(space, arch) -> list[str]:
  """``unit: choice`` for each unit of a discrete architecture, each from
  its own unit's choices."""
  return [f'{u.name}: {u.choices[c]}' for u, c in zip(space.units, arch)]


def plot_search(history: list[dict], space, config, workdir: str,
                derived=None) -> None:
  """``arch_distribution.png`` and ``latency.png`` of a search; ``derived``:
  the reported architecture (default: the final distribution's argmax; a
  derivation for a target may change some of its units)."""
  if not history:
    return
  probs = np.array([h['probs'] for h in history])  # [E, U, C]
  epochs = [h['epoch'] for h in history]
  units = [u.name for u in space.units]
  choices, shared = choice_columns(space)

  fig, axes = plt.subplots(1, 2, figsize=(14, 0.28 * len(units) + 2),
                           gridspec_kw={'width_ratios': [1.2, 1]})
  im = axes[0].imshow(probs[-1], aspect='auto', cmap='viridis', vmin=0,
                      vmax=1)
  axes[0].set_yticks(range(len(units)), units, fontsize=7)
  axes[0].set_xticks(range(len(choices)), choices, rotation=60, fontsize=7)
  if not shared:
    axes[0].set_xlabel("choice index (each unit's own choices)")
  axes[0].set_title('final architecture distribution p(choice | unit)')
  fig.colorbar(im, ax=axes[0])
  # How the distribution sharpened: probability of each unit's reported
  # choice.
  final = (probs[-1].argmax(-1) if derived is None else
           np.asarray(derived, np.int64))
  top = probs[:, np.arange(len(units)), final]  # [E, U]
  # A column an epoch, centred on it (one epoch is a column, not a line).
  im2 = axes[1].imshow(top.T, aspect='auto', cmap='magma', vmin=0, vmax=1,
                       extent=[epochs[0] - 0.5, epochs[-1] + 0.5,
                               len(units) - 0.5, -0.5])
  axes[1].set_yticks(range(len(units)), derived_labels(space, final),
                     fontsize=7)
  axes[1].set_xlabel('epoch')
  axes[1].set_title('probability of the derived choice over training')
  fig.colorbar(im2, ax=axes[1])
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'arch_distribution.png'), dpi=110)
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(epochs, [h['expected_latency_ms'] for h in history],
          label='expected (architecture distribution)')
  ax.plot(epochs, [h['argmax_latency_ms'] for h in history], '--',
          label='argmax architecture')
  target = config.latency.get('target_ms')
  if target:
    ax.axhline(target, color='k', lw=0.8, ls=':', label=f'target {target} ms')
  ax.set_xlabel('epoch')
  ax.set_ylabel('latency (ms)')
  ax.set_title(f'latency source: {config.latency.source} '
               f'({config.latency.get("device_file") or config.latency.device})')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'latency.png'), dpi=110)
  plt.close(fig)


def plot_closed_loop(out: dict, path: str) -> None:
  """``closed_loop.png`` of :func:`fbnet_jax.closed_loop.run`'s output.

  Left: the adapted predictor against the measured query networks (none
  without query rows). Right: each found network's error against its
  target, per verifying session and for their median, in the 10% band.
  """
  check = out['predictor_check']
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
  ax = axes[0]
  if check.get('measured_ms'):
    measured = np.asarray(check['measured_ms'])
    ax.scatter(measured, check['predicted_ms'], s=9, alpha=0.6,
               label=f'{check["num_query"]} query networks')
    line = np.array([measured.min(), measured.max()])
    ax.plot(line, line, 'k', lw=0.8, label='predicted = measured')
    ax.fill_between(line, 0.9 * line, 1.1 * line, color='k', alpha=0.08,
                    label='within 10%')
    ax.set_title(f'adapted from {out["support_measurements"]} measurements: '
                 f'Spearman {check["spearman"]:.3f}', fontsize=10)
    ax.legend(fontsize=8, loc='upper left')
  ax.set_xlabel('measured latency (ms)')
  ax.set_ylabel('predicted latency (ms)')
  ax = axes[1]
  rows = out['searches']
  x = np.arange(len(rows))
  ax.axhspan(-10, 10, color='tab:green', alpha=0.12, label='within 10%')
  ax.axhline(0, color='k', lw=0.8)
  errors = [100 * r['relative_error'] for r in rows]
  ax.scatter(x, errors, s=60, c='tab:blue', marker='D',
             label='median over the sessions')
  for i, r in enumerate(rows):  # on top of the median they may equal
    sessions = 100 * (np.asarray(r['session_ms']) / r['target_ms'] - 1)
    errors.extend(sessions)
    ax.scatter(np.full(len(sessions), i), sessions, s=14, c='k', zorder=3,
               label='one verifying session' if i == 0 else None)
  vs_references = [100 * r['relative_error_vs_references'] for r in rows]
  predicted = [100 * (r['predicted_ms'] / r['target_ms'] - 1) for r in rows]
  errors.extend(vs_references + predicted)
  ax.scatter(x, vs_references, s=40, facecolors='none',
             edgecolors='tab:orange',
             label='against the references timed beside it')
  ax.scatter(x, predicted, s=40, marker='x', c='tab:purple',
             label='predicted')
  lim = max(15.0, np.max(np.abs(errors)) + 2)
  ax.set_ylim(-lim, lim)
  ax.set_xlim(-0.5, len(rows) - 0.5)
  ax.set_xticks(x, [f'{r["target_ms"]:.2f} ms' for r in rows])
  ax.set_xlabel('target')
  ax.set_ylabel('found network vs. target (%)')
  cores = {0: 'all cores', 1: '1 core'}.get(out.get('cpu_cores', 0),
                                            f'{out.get("cpu_cores")} cores')
  ax.set_title(f'the found networks on {out["device_kind"]} '
               f'({out["runtime"]}, {out.get("statistic", "median")}, '
               f'{cores})', fontsize=10)
  ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.13),
            ncol=3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
