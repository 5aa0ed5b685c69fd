"""DNAS search (FBNet): alternating weight and architecture steps.

``train_and_evaluate(config, workdir)`` trains a supernet on the weights
split (80% of the training data) and the architecture parameters on the
arch split (the other 20%), after warm-up epochs of weights only; the
Gumbel-softmax temperature anneals per epoch (FBNet: 5.0, x0.956). It
derives the argmax and sampled architectures, scores them with every
available latency source, and writes ``workdir/result.json`` and plots
(:mod:`fbnet_jax.search_report`). The state, optimisers and jitted steps
are :class:`fbnet_jax.searcher.Searcher`'s (its module says how they are
designed).

Orbax checkpoints every ``config.checkpoint_every`` steps; the data streams
and random keys are functions of the step counters, so a restarted run
reproduces the uninterrupted one, its history too: the loop's running
metrics at each checkpoint (the last steps' losses, the epoch's sums so
far) are kept beside it in ``running.json``. It resumes only under the
settings that the trained state depends on (:func:`resume_settings`, kept in
``settings.json``); others are a clear error.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm

from fbnet_jax import data as data_lib
from fbnet_jax import dnas
from fbnet_jax import reporting
from fbnet_jax import search_report
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import workdirs

RESULT_FILE = 'result.json'
SETTINGS_FILE = 'settings.json'
# The loop's running metrics at each checkpoint, by step.
RUNNING_FILE = 'running.json'
# Config keys that the trained state of a search does not depend on.
_NOT_TRAINING = ('evolve', 'retrain', 'measure', 'checkpoint_every',
                 'data.data_dir', 'data.eval_limit', 'search.calib_batches',
                 'search.derive', 'search.derive_tolerance',
                 'search.num_derived_samples')


# Training settings added after runs were recorded without them, and the
# behaviour those runs had (resume_settings).
_ADDED_LATER = {'search.weight_paths': 'gumbel'}


def checkpoint_manager(workdir: str, config) -> ocp.CheckpointManager:
  """The manager of a search's checkpoints (``workdir/checkpoints``)."""
  return workdirs.checkpoint_manager(workdir, max_to_keep=2,
                                     every=config.checkpoint_every)


def resume_settings(config: ml_collections.ConfigDict) -> dict:
  """The config as far as the trained state depends on it.

  Left out: other jobs' sections (``evolve``, ``retrain``, ``measure``),
  what only derivation and evaluation read (their settings may change on a
  rerun of a finished search), checkpoint spacing and the data's location;
  and, for a weights-only run (warm-up for all epochs: the evolve
  configs' supernet), the latency source and loss, which it never uses.
  """
  keys = _NOT_TRAINING
  if config.search.warmup_epochs >= config.epochs:
    keys += ('latency', 'loss')
  # A setting added later is left out at the value that runs recorded
  # before it existed trained with, so that those runs still resume.
  settings = config.to_dict()
  flat = workdirs.flatten(settings)
  keys += tuple(key for key, old in _ADDED_LATER.items()
                if flat.get(key, old) == old)
  return workdirs.without(settings, keys)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, progress: bool = True, desc: str = 'search',
                       stop_after: Optional[int] = None) -> dict:
  """Runs (or resumes) the search; writes ``result.json``; returns it
  (``{}`` when ``stop_after`` stopped it first).

  Args:
    config: the search config (``configs/quickstart.py`` and siblings).
    workdir: output directory (checkpoints, metrics, result, plots).
    progress: show a progress bar.
    desc: its label (a study running several searches names each).
    stop_after: stop after this many weight steps (tests simulate a killed
      run with it); the checkpoint at that point is written first.
  """
  # A bad config or a dataset not prepared fails before the workdir is
  # touched.
  searcher = searcher_lib.Searcher(config)
  data_lib.check_prepared(config.data.name, config.data.get('data_dir'))
  if (config.loss.form == 'fbnet' and  # config.loss.unit_ms against the range
      config.search.warmup_epochs < config.epochs):  # (unused weights-only)
    dnas.check_latency_range(
        searcher.latency.fastest(searcher.allowed())[1], config.loss)
  os.makedirs(workdir, exist_ok=True)
  # Multi-host: every process computes, the first writes (orbax coordinates
  # the checkpoints itself).
  main = jax.process_index() == 0
  manager = checkpoint_manager(workdir, config)
  resuming = manager.latest_step() is not None
  if main or resuming:  # every process checks a resumed run's settings
    workdirs.record_or_check(os.path.join(workdir, SETTINGS_FILE),
                             resume_settings(config), resuming=resuming)
  if config.loss.form != 'fbnet' and config.latency.get('target_ms'):
    _warn_if_unreachable(searcher, config.latency.target_ms)
  state, history, running = searcher.init_state(), [], _Running()
  if resuming:
    state, history, running = _restore(manager, state, workdir,
                                       searcher.total_steps)
  weights_iter, arch_iter = _data_streams(config, state, searcher.shard)
  writer = reporting.MetricWriter(workdir, enabled=main,
                                  resumed_at=int(state.step))
  target = jnp.asarray(config.latency.get('target_ms') or 1.0, jnp.float32)
  warmup_steps = config.search.warmup_epochs * searcher.steps_per_epoch
  bar = tqdm.tqdm(total=searcher.total_steps, initial=int(state.step),
                  disable=not progress, desc=desc, unit='step')
  t0 = time.time()
  step = int(state.step)
  try:
    while step < searcher.total_steps:
      tau = jnp.asarray(searcher.temperature(step), jnp.float32)
      batch = jax.tree.map(searcher.put_local, next(weights_iter))
      path = (jnp.asarray(searcher.sample_path(step))
              if searcher.uniform_paths else None)
      state, m = searcher.weight_step(state, batch, tau, target, path)
      running.add_weight_step(m)
      step += 1
      if step > warmup_steps and step % config.search.arch_every == 0:
        batch = jax.tree.map(searcher.put_local, next(arch_iter))
        state, m = searcher.arch_step(state, batch, tau, target)
        running.metrics.update({'arch_loss': m['loss'], 'arch_ce': m['ce'],
                                'loss_latency_ms': m['loss_latency_ms']})
      bar.update(1)
      end_of_epoch = step % searcher.steps_per_epoch == 0
      if end_of_epoch or step == searcher.total_steps:
        rec = _epoch_record(searcher, state, step, tau, running)
        running.new_epoch()
        history.append(rec)
        writer.scalars(step, {k: v for k, v in rec.items() if k != 'probs'})
        bar.set_postfix(ce=f'{rec.get("ce", 0):.3f}',
                        lat=f'{rec["expected_latency_ms"]:.2f}ms')
      # The records first, then the (asynchronous) checkpoint: a kill in
      # between loses no record of a checkpoint that completes. A record
      # ahead of the last checkpoint is harmless: a resumed run keeps the
      # history up to its step and reads only its step's running entry.
      will_save = manager.should_save(step)
      if main and will_save:
        _write_running(workdir, step, running)
      if main and (will_save or end_of_epoch):
        search_report.write_history(workdir, history)
      manager.save(step, args=ocp.args.StandardSave(state))
      if stop_after is not None and step >= stop_after:
        _final_save(manager, step, state)
        if main:
          _write_running(workdir, step, running)
          search_report.write_history(workdir, history)
        bar.close()
        return {}
  except BaseException:  # interrupted: the checkpoint begun still completes
    manager.wait_until_finished()
    raise
  _final_save(manager, step, state)
  if main:
    search_report.write_history(workdir, history)
  bar.close()
  writer.close()
  logging.info('Search: %d steps in %.1fs.', step, time.time() - t0)
  result = search_report.report(searcher, state, config)  # every process
  if main:
    workdirs.write_json(os.path.join(workdir, RESULT_FILE), result)
    reporting.plot_search(history, searcher.space, config, workdir,
                          derived=result['arch_index'])
  return result


class _Running:
  """The loop's running metrics: the last steps' values (each epoch's
  record reports the latest), and the epoch's sums of CE and accuracy so
  far (device scalars, summed without a host sync) with their count."""

  def __init__(self, metrics=None, epoch_sums=None, epoch_count: int = 0):
    self.metrics = dict(metrics or {})
    self.epoch_sums = epoch_sums or {'ce': jnp.zeros(()),
                                     'accuracy': jnp.zeros(())}
    self.epoch_count = epoch_count

  def add_weight_step(self, m: dict) -> None:
    self.metrics.update({k: v for k, v in m.items() if k != 'loss'})
    self.epoch_sums = jax.tree.map(lambda a, b: a + b, self.epoch_sums,
                                   {'ce': m['ce'], 'accuracy': m['accuracy']})
    self.epoch_count += 1

  def new_epoch(self) -> None:
    self.epoch_sums = jax.tree.map(jnp.zeros_like, self.epoch_sums)
    self.epoch_count = 0

  def to_json(self) -> dict:
    return {'metrics': {k: float(v) for k, v in self.metrics.items()},
            'epoch_sums': {k: float(v) for k, v in self.epoch_sums.items()},
            'epoch_count': self.epoch_count}

  @classmethod
  def from_json(cls, saved: dict) -> '_Running':
    return cls({k: jnp.float32(v) for k, v in saved['metrics'].items()},
               {k: jnp.float32(v) for k, v in saved['epoch_sums'].items()},
               saved['epoch_count'])


def _restore(manager, state, workdir: str, total_steps: int):
  """The latest checkpoint's state, the history up to it and the loop's
  running metrics then (none needed once the run has ended: the last
  checkpoint is taken after the last epoch's means were recorded)."""
  state = workdirs.restore_checkpoint(manager, state)
  # A run killed before its first epoch ended has no history yet.
  history = workdirs.read_json(
      os.path.join(workdir, search_report.HISTORY_FILE)) or []
  history = [h for h in history if h['step'] <= int(state.step)]
  saved = _read_running(workdir).get(str(int(state.step)))
  if saved is not None:
    running = _Running.from_json(saved)
  else:  # a workdir of older code: the epoch's means restart here
    running = _Running()
    if int(state.step) < total_steps:
      logging.warning('%s has no entry for step %d: the resumed epoch\'s '
                      'means cover only its steps from here.',
                      os.path.join(workdir, RUNNING_FILE), int(state.step))
  logging.info('Resumed from step %d.', int(state.step))
  return state, history, running


def _data_streams(config, state, shard=(0, 1)):
  """The weights and arch splits' batch iterators, from the state's step
  counters (a resumed run continues where the checkpoint was); this
  process's rows of each batch (``shard``)."""
  def stream(split, seed, start_step):
    return data_lib.train_batches(
        config.data.name, split=split, batch_size=config.batch_size,
        seed=seed, image_size=config.data.image_size,
        data_dir=config.data.get('data_dir'), start_step=start_step,
        augment=config.data.get('augment', True), shard=shard)
  return (stream('weights', config.seed, int(state.step)),
          stream('arch', config.seed + 1, int(state.arch_step)))


def _epoch_record(searcher, state, step: int, tau, running: _Running) -> dict:
  """One epoch's line of ``history.json``."""
  probs = searcher.probs(state)
  return {
      'step': step, 'epoch': step / searcher.steps_per_epoch,
      'tau': float(tau),
      'expected_latency_ms': float(searcher.latency(jnp.asarray(probs))),
      # The most probable valid architecture (OFA: stages stay prefixes of
      # blocks; elsewhere the argmax).
      'argmax_latency_ms': float(searcher.latency.arch_ms(
          searcher.space.most_probable(np.log(np.maximum(probs, 1e-30))))),
      **{k: float(v) for k, v in running.metrics.items()},
      # CE and accuracy: means over the epoch's weight steps (the last
      # batch's alone is noisy); *_last: that batch's.
      'ce_last': float(running.metrics['ce']),
      'accuracy_last': float(running.metrics['accuracy']),
      **{k: float(v) / max(running.epoch_count, 1)
         for k, v in running.epoch_sums.items()},
      'steps_in_mean': running.epoch_count,
      'probs': probs.round(4).tolist()}


def _read_running(workdir: str) -> dict:
  """``running.json``: {str(step): the loop's running metrics then}."""
  return workdirs.read_json(os.path.join(workdir, RUNNING_FILE)) or {}


def _write_running(workdir: str, step: int, running: _Running,
                   keep: int = 3) -> None:
  """Records the loop's running metrics for the checkpoint of ``step``, so
  that a run resumed from it writes the history of an uninterrupted one.
  Kept for the last ``keep`` checkpoints (the manager keeps 2; an entry
  whose checkpoint never completed is never read)."""
  saved = _read_running(workdir)
  saved[str(step)] = running.to_json()
  latest = sorted(saved, key=int)[-keep:]
  workdirs.write_json(os.path.join(workdir, RUNNING_FILE),
                      {k: saved[k] for k in latest})


def _warn_if_unreachable(searcher, target_ms: float) -> None:
  """Says before training when no allowed architecture is as fast (or as
  slow) as the target (the search then ends at the fastest or slowest one,
  outside the band)."""
  _, fastest_ms = searcher.latency.fastest(searcher.allowed())
  if target_ms < fastest_ms:
    logging.warning(
        'config.latency.target_ms: %.3g ms is below the fastest allowed '
        'architecture under %s (%.3g ms); the search will end at the '
        'fastest one, outside the target band.', target_ms,
        searcher.latency.name, fastest_ms)
    return
  _, slowest_ms = searcher.latency.slowest(searcher.allowed())
  if target_ms > slowest_ms:
    logging.warning(
        'config.latency.target_ms: %.3g ms is above the slowest allowed '
        'architecture under %s (%.3g ms); the search will end near the '
        'slowest one, outside the target band.', target_ms,
        searcher.latency.name, slowest_ms)


def _final_save(manager, step, state):
  if manager.latest_step() != step:
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
  manager.wait_until_finished()
