"""What the DNAS search writes: its history and the derived architecture,
described.

Files in the workdir of :func:`fbnet_jax.search.train_and_evaluate`:

- ``history.json`` (:func:`write_history`, atomically, at checkpoints and
  epoch ends; read back when a run resumes): one record per epoch (and the
  last step), with the temperature, losses, accuracy, expected and argmax
  latency and the architecture probabilities.
- ``result.json``: what :func:`report` returns. It derives the architecture
  from the trained architecture parameters (the argmax, or the most
  probable one within the latency target) and describes it, the plain
  argmax and the sampled architectures (:func:`describe`: ops, FLOPs,
  params, the latency from every available source, and the supernet's
  accuracy with inherited weights).

:func:`summary` is the console's view of the result.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from fbnet_jax import dnas
from fbnet_jax import errors
from fbnet_jax import latency as latency_lib
from fbnet_jax import workdirs


HISTORY_FILE = 'history.json'


def write_history(workdir, history):
  workdirs.write_json(os.path.join(workdir, HISTORY_FILE), history,
                      indent=None)


def describe(space, arch, sources: dict) -> dict:
  """Ops, FLOPs, params and latency from every source of one architecture."""
  return {'arch': space.names(arch), 'arch_index': [int(a) for a in arch],
          'flops': space.flops(arch), 'params': space.params(arch),
          'latency_ms': {name: float(src.arch_ms(arch))
                         for name, src in sources.items()}}


def derivation_band(config) -> tuple[float, float]:
  """(centre ms, relative half-width) of the latency band that the 'target'
  derivation aims at: ``target_ms`` +- ``search.derive_tolerance``; for the
  budget loss form ("at most T") the band below T, ``[T (1 - 2 tol), T]``."""
  target = float(config.latency.target_ms)
  tol = float(config.search.get('derive_tolerance', 0.02))
  if config.loss.form == 'budget':
    return target * (1 - tol), tol / (1 - tol)
  return target, tol


def report(searcher, state, config) -> dict:
  """The result: the derived architecture and sampled ones, each fully
  described.

  Derivation (``config.search.derive``): 'argmax' takes the most probable
  op per unit (FBNet); 'target' (the default for the target and budget loss
  forms) repairs the argmax greedily, one unit at a time, towards a latency
  within ``config.search.derive_tolerance`` of the target by the search's
  own latency source (``dnas.derive_for_target``; for the budget form that
  much below it, :func:`derivation_band`): a greedy approximation of the
  most probable architecture in the band, which may stop outside it
  (``derivation.within_band`` is False then, with a warning). The plain
  argmax is always reported too, under ``argmax``.
  """
  rng = jax.random.PRNGKey(config.seed + 7)
  argmax, samples = dnas.derive(state.params['arch'], searcher.mask, rng,
                                config.search.num_derived_samples,
                                searcher.fixed, searcher.space)
  sources = latency_lib.all_sources(config)
  limit = config.data.get('eval_limit')
  mode = config.search.get('derive') or (
      'target' if config.loss.form in ('target', 'budget') else 'argmax')
  changes = []
  arch = argmax
  if mode == 'target':
    log_probs = np.log(np.maximum(searcher.probs(state), 1e-30))
    log_probs = np.where(searcher.allowed(), log_probs, -np.inf)
    arch, changes = dnas.derive_for_target(
        log_probs, searcher.latency.arch_ms, *derivation_band(config),
        space=searcher.space)
  elif mode != 'argmax':
    raise errors.InputError(
        f"config.search.derive: expected 'argmax' or 'target', "
        f'got {mode!r}.')
  best = describe(searcher.space, arch, sources)
  best['supernet_accuracy'] = searcher.accuracy(state, arch, limit)
  best['derivation'] = {'mode': mode, 'changes_from_argmax': changes}
  if mode == 'target':
    centre, tol = derivation_band(config)
    error = float(searcher.latency.arch_ms(arch[None])[0]) / centre - 1
    best['derivation'].update(band_ms=[centre * (1 - tol), centre * (1 + tol)],
                              relative_error=error,
                              within_band=bool(abs(error) <= tol))
    if abs(error) > tol:
      logging.warning(
          'derivation: the greedy repair stopped %+.1f%% from the centre of '
          'the latency band (%.2f ms +- %.0f%%); the search did not reach '
          'the target closely enough for it.', 100 * error, centre,
          100 * tol)
  plain = describe(searcher.space, argmax, sources)
  plain['supernet_accuracy'] = (best['supernet_accuracy'] if not changes else
                                searcher.accuracy(state, argmax, limit))
  sampled = []
  for arch in samples:
    d = describe(searcher.space, arch, sources)
    d['supernet_accuracy'] = searcher.accuracy(state, arch, limit)
    sampled.append(d)
  return {'space': config.space, 'macro': searcher.space.macro_name,
          'dataset': config.data.name,
          'device': (latency_lib.user_device(config) or
                     config.latency.device),
          'latency_source': searcher.latency.name,
          'target_ms': config.latency.get('target_ms'),
          **best,
          # Under this run's latency source (a weights-only supernet may be
          # searched again under another; its history keeps the first's).
          'expected_latency_ms': float(searcher.latency(
              jnp.asarray(searcher.probs(state)))),
          'mixture_accuracy': searcher.mixture_accuracy(state, limit),
          # How far off the adapted predictor is on networks it was not
          # adapted on, estimated from its support (None for a table).
          'predictor_leave_one_out': (
              None if searcher.latency.support is None else
              searcher.latency.support.leave_one_out()),
          'argmax': plain,
          'samples': sampled,
          # The same settings and seed give the same architecture only in
          # the same environment (XLA's CPU code differs by CPU model).
          'environment': workdirs.environment()}


def summary(result: dict) -> str:
  """A few lines for the console."""
  lat = ', '.join(f'{k} {v:.2f} ms' for k, v in result['latency_ms'].items())
  mixture = result.get('mixture_accuracy')
  mixture = 'n/a' if mixture is None else f'{mixture:.3f}'
  loo = (result.get('predictor_leave_one_out') or {}).get(
      'median_abs_relative_error')
  if loo is not None:
    lat += (f'; the predictor\'s error estimated on its own support '
            f'(leave-one-out): {100 * loo:.1f}%')
  return (f'space {result["space"]}  device {result["device"]}  target '
          f'{result["target_ms"]} ms\n'
          f'arch {" ".join(result["arch"])}\n'
          f'latency: {lat}\n'
          f'MACs {result["flops"] / 1e6:.1f}M  params '
          f'{result["params"] / 1e6:.2f}M  supernet accuracy '
          f'{result["supernet_accuracy"]:.3f} (this architecture, inherited '
          f'weights; the supernet\'s mixture {mixture})')
