"""Few-shot tasks and the evaluation protocol shared by every method.

A few-shot task shows a method what a user would measure on a new device
(the reference architectures + N sampled ones) and scores its predictions on
held-out query rows by Spearman rank correlation. Every predictor and
baseline in this project is judged through :func:`evaluate`, so that all of
them see the same support draws.

Two protocols: HELP's (``trim=True``: each device's 10% fastest and slowest
pool and query rows dropped before sampling and scoring) and the untrimmed one.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Protocol, Sequence

from absl import logging
import numpy as np
import scipy.stats

from meta import latency_data


@dataclasses.dataclass(frozen=True)
class FewShotTask:
  """What adaptation may see (support) and what it is judged on (query).

  Attributes:
    space: search-space name.
    device: device name.
    support_archs: int32 [S, U], reference architectures first.
    support_ms: float32 [S].
    reference_ms: float32 [R]: latency of each of the space's reference
      architectures, NaN where the device did not measure it.
    query_archs: int32 [Q, U].
    query_ms: float32 [Q].
  """
  space: str
  device: str
  support_archs: np.ndarray
  support_ms: np.ndarray
  reference_ms: np.ndarray
  query_archs: np.ndarray
  query_ms: np.ndarray

  @property
  def missing_references(self) -> int:
    return int(np.isnan(self.reference_ms).sum())


# Devices whose untrimmed support pool make_tasks has warned of.
_SAID_UNTRIMMED = set()


def make_tasks(device: latency_data.Device, *, num_samples: int,
               seeds: Sequence[int], trim: bool) -> list[FewShotTask]:
  """One task per seed: references + ``num_samples`` random non-query rows.

  With ``trim`` (HELP's protocol), the 10% fastest and slowest query rows
  are dropped, and so are those of the support pool unless that leaves
  fewer than ``num_samples`` rows (a device file measured with exactly
  the references + ``num_samples``: its support is then drawn untrimmed).
  """
  ref_rows = device.reference_rows()
  present = ref_rows[ref_rows >= 0]
  reference_ms = np.full(len(ref_rows), np.nan, np.float32)
  reference_ms[ref_rows >= 0] = device.latency_ms[present]
  pool = device.sample_rows()
  query = np.nonzero(device.is_query)[0]
  if trim:
    trimmed = pool[latency_data.trim_mask(device.latency_ms[pool])]
    if len(trimmed) >= num_samples:
      pool = trimmed
    elif (len(pool) >= num_samples and  # a device file with few support rows
          (device.source, len(pool)) not in _SAID_UNTRIMMED):
      _SAID_UNTRIMMED.add((device.source, len(pool)))  # once, not per method
      logging.warning(
          '%s: trimming the support pool would leave %d rows for %d '
          'samples; under the trimmed protocol its support is drawn from '
          'all %d non-query rows, and only the query rows are trimmed.',
          device.source, len(trimmed), num_samples, len(pool))
    untrimmed = len(query)
    query = query[latency_data.trim_mask(device.latency_ms[query])]
  if len(query) < 2:
    kept = (f' left of {untrimmed} by HELP\'s trimming (10% fastest and '
            'slowest dropped)' if trim else '')
    elsewhere = str(device.meta.get('runtime', '')) == 'elsewhere'
    more = ('time more of its plan\'s query models and fill their rows of '
            'its timings.csv, or export a plan with more: experiments.measure '
            '--export_onnx --archs=...,query:N' if elsewhere else
            'measure more with experiments.measure --archs=...,query:N')
    raise latency_data.DeviceFileError(
        f'{device.source}: field is_query: {len(query)} query rows{kept}; '
        f'at least 2 are needed to compute a Spearman correlation ({more}).')
  if np.ptp(device.latency_ms[query]) == 0:
    raise latency_data.DeviceFileError(
        f'{device.source}: field latency_ms: its {len(query)} query rows'
        f'{" kept by the trimming" if trim else ""} all measured '
        f'{float(device.latency_ms[query[0]]):g} ms; a Spearman correlation '
        'needs latencies that differ (a timer too coarse for these '
        'networks? Time them over more runs, or measure larger ones).')
  if len(pool) < num_samples:
    raise latency_data.DeviceFileError(
        f'{device.source}: field is_query: only {len(pool)} non-query, '
        f'non-reference rows, but {num_samples} samples were asked for '
        '(config.eval.num_samples: lower it, or measure more rows with '
        'experiments.measure --archs=...,random:N).')
  tasks = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    rows = np.concatenate([present, rng.choice(pool, num_samples,
                                                replace=False)])
    tasks.append(FewShotTask(
        space=device.space, device=device.name,
        support_archs=device.archs[rows], support_ms=device.latency_ms[rows],
        reference_ms=reference_ms, query_archs=device.archs[query],
        query_ms=device.latency_ms[query]))
  return tasks


class Method(Protocol):
  """Anything that turns a task's support set into a latency predictor."""
  name: str

  def adapt(self, task: FewShotTask) -> Callable[[np.ndarray], np.ndarray]:
    """Returns ``predict(archs [N, U]) -> milliseconds [N]``."""


def spearman(a, b) -> float:
  return float(scipy.stats.spearmanr(np.asarray(a), np.asarray(b))[0])


def task_scores(method: Method, tasks: Sequence[FewShotTask]) -> list[float]:
  """Spearman on each task's query rows of ``method`` adapted to its
  support."""
  return [spearman(method.adapt(t)(t.query_archs), t.query_ms) for t in tasks]


def evaluate(method: Method, devices: Iterable[latency_data.Device], *,
             num_samples: int = 10, seeds: Sequence[int] = range(5),
             trim: bool = True) -> dict:
  """Spearman on the query rows, mean and std over support draws.

  Returns:
    ``{"devices": {name: {"spearman", "spearman_std", "num_query",
    "missing_references"}}, "mean_spearman": float}``.
  """
  out = {}
  for device in devices:
    tasks = make_tasks(device, num_samples=num_samples, seeds=list(seeds),
                       trim=trim)
    scores = task_scores(method, tasks)
    out[device.name] = dict(spearman=float(np.mean(scores)),
                            spearman_std=float(np.std(scores)),
                            num_query=int(len(tasks[0].query_ms)),
                            missing_references=tasks[0].missing_references)
  return dict(devices=out,
              mean_spearman=float(np.mean([v['spearman']
                                           for v in out.values()])))
