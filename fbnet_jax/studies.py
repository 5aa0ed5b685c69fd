"""Studies built from searches: latency control, found vs. random.

- :func:`latency_control`: for each device and targets at quantiles of
  random architectures' latency (15/50/85%: the middle sixth or so of the
  space's whole range, not its ends), run a search and score the derived
  architecture with the exact lookup table.
- :func:`found_vs_random`: retrain the found architecture and random
  architectures of the same latency (+-3%), each with several seeds, and
  compare their accuracy (Welch's t-test).
"""

from __future__ import annotations

import collections
import copy
import json
import os
from typing import Optional, Sequence

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections
import numpy as np
from scipy import stats

from fbnet_jax import errors
from fbnet_jax import latency as latency_lib
from fbnet_jax import nsga
from fbnet_jax import retrain
from fbnet_jax import search
from fbnet_jax import spaces
from fbnet_jax import workdirs


def _sample_fbnet(rng: np.random.Generator, n: int,
                  ops: Sequence[str] = ()) -> np.ndarray:
  """``n`` uniformly random FBNet architectures, each layer's op drawn
  among ``ops`` (``config.search.ops``; empty: all nine)."""
  space = spaces.get_space('fbnet')
  if not ops:
    return space.sample(rng, n)
  allowed = np.array([c in ops for c in space.units[0].choices])
  return nsga.Encoding(space, np.broadcast_to(
      allowed, space.choice_mask.shape)).sample(rng, n)


def latency_targets(device: str, quantiles: Sequence[float],
                    seed: int = 0, ops: Sequence[str] = ()) -> list[float]:
  """Targets at quantiles of the lookup-table latency of random archs
  (of the ops searched, ``config.search.ops``)."""
  lut = latency_lib.lookup_table_latency(device)
  archs = _sample_fbnet(np.random.default_rng(seed), 4000, ops)
  return [float(np.quantile(lut.arch_ms(archs), q)) for q in quantiles]


def latency_control(config: ml_collections.ConfigDict, root: str,
                    devices: Sequence[str], source: str,
                    quantiles: Sequence[float] = (0.15, 0.5, 0.85)) -> dict:
  """Searches per (device, target); the derived archs' exact LUT latency.

  Returns (and writes ``root/latency_control_<source>.json`` and its plot)
  one row per search: device, target, the derived architecture, its exact
  lookup-table latency and relative error, and the source's own prediction
  for it.
  """
  rows = []
  # Every device's table before the first search: a misspelt name is an
  # error now, not after the other devices' searches.
  luts = {device: latency_lib.lookup_table_latency(device, '--devices')
          for device in devices}
  for device in devices:
    lut = luts[device]
    targets = latency_targets(device, quantiles,
                              ops=tuple(config.search.get('ops') or ()))
    for q, target in zip(quantiles, targets):
      cfg = ml_collections.ConfigDict(config.to_dict())
      cfg.latency.source = source
      cfg.latency.device = device
      cfg.latency.target_ms = round(target, 3)
      workdir = os.path.join(root, source, device, workdirs.quantile_name(q))
      result = search.train_and_evaluate(
          cfg, workdir, desc=f'{source} {device} {cfg.latency.target_ms:.3g} ms')
      exact = float(lut.arch_ms(np.asarray(result['arch_index'])))
      argmax = float(lut.arch_ms(np.asarray(result['argmax']['arch_index'])))
      rows.append(dict(device=device, source=source, quantile=q,
                       target_ms=cfg.latency.target_ms, exact_lut_ms=exact,
                       relative_error=exact / cfg.latency.target_ms - 1,
                       source_ms=result['latency_ms'][result[
                           'latency_source']],
                       argmax_exact_lut_ms=argmax,
                       argmax_relative_error=argmax / cfg.latency.target_ms
                       - 1,
                       supernet_accuracy=result['supernet_accuracy'],
                       arch=result['arch']))
      print(f'{source:9s} {device:8s} target {target:7.2f} ms  exact '
            f'{exact:7.2f} ms ({100 * rows[-1]["relative_error"]:+.1f}%)  '
            f'plain argmax {argmax:7.2f} ms '
            f'({100 * rows[-1]["argmax_relative_error"]:+.1f}%)', flush=True)
  distinct = {q: len({tuple(r['arch']) for r in rows if r['quantile'] == q})
              for q in quantiles}
  out = {'rows': rows,
         'max_abs_relative_error': max(abs(r['relative_error'])
                                       for r in rows),
         'argmax_max_abs_relative_error': max(
             abs(r['argmax_relative_error']) for r in rows),
         'distinct_archs_per_quantile': distinct}
  os.makedirs(root, exist_ok=True)
  workdirs.write_json(os.path.join(root, f'latency_control_{source}.json'),
                      out)
  _plot_control(rows, os.path.join(root, f'latency_control_{source}.png'))
  return out


def _plot_control(rows, path):
  fig, ax = plt.subplots(figsize=(5.5, 5))
  for device in sorted({r['device'] for r in rows}):
    rs = [r for r in rows if r['device'] == device]
    ax.plot([r['target_ms'] for r in rs], [r['exact_lut_ms'] for r in rs],
            'o', label=device)
  lim = [0, max(max(r['target_ms'], r['exact_lut_ms']) for r in rows) * 1.1]
  ax.plot(lim, lim, 'k-', lw=0.8)
  ax.fill_between(lim, [0.95 * v for v in lim], [1.05 * v for v in lim],
                  color='k', alpha=0.08, label='+-5%')
  ax.set_xlabel('target latency (ms)')
  ax.set_ylabel('derived architecture, exact lookup-table latency (ms)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def random_archs_at_latency(device: str, latency_ms: float, n: int,
                            tolerance: float = 0.03, seed: int = 0,
                            ops: Sequence[str] = ()) -> np.ndarray:
  """``n`` uniformly random FBNet archs (of ``ops``, default all nine) whose
  LUT latency is within ``tolerance`` (relative) of ``latency_ms``
  (rejection sampling)."""
  lut = latency_lib.lookup_table_latency(device)
  rng = np.random.default_rng(seed)
  found = []
  for _ in range(200):
    archs = _sample_fbnet(rng, 4096, ops)
    lat = lut.arch_ms(archs)
    found += list(archs[np.abs(lat / latency_ms - 1) <= tolerance])
    if len(found) >= n:
      return np.stack(found[:n])
  raise RuntimeError(f'fewer than {n} random archs within {tolerance:.0%} of '
                     f'{latency_ms:.2f} ms on {device}.')


def found_vs_random(config: ml_collections.ConfigDict, result_path: str,
                    root: str, num_random: int = 4, seeds: int = 1,
                    found_seeds: Optional[int] = None) -> dict:
  """Retrains the found arch and ``num_random`` random archs of its latency.

  Each random architecture is retrained with ``seeds`` seeds and the found
  one with ``found_seeds`` (default ``seeds``): seed ``s`` is
  ``config.seed + s``, which sets both the initialisation and the data
  order. A run whose ``retrain.json`` exists is read back instead of
  retrained, so a killed study resumes (and a half-finished retrain resumes
  from its checkpoint).

  The comparison is the found architecture's seeds against the random
  architectures' seed means (Welch's t-test, ``scipy.stats``): the random
  side's spread then holds both how much architectures differ and how much
  their seeds do, and the found side's how much its seeds do.
  """
  if (config.space, config.get('macro', 'cifar')) != ('fbnet', 'cifar'):
    raise errors.InputError(
        f'config.space, config.macro: {config.space!r}, '
        f'{config.get("macro", "")!r}; expected \'fbnet\', \'cifar\': the '
        'random architectures are matched by the FBNet CIFAR lookup tables.')
  arch, result = retrain.load_arch(result_path, config)
  device = config.latency.device
  searched_on = result.get('device')
  if searched_on not in (None, device):
    hint = (f'(--config.latency.device={searched_on})'
            if searched_on in latency_lib.LUT_DEVICES else
            '; a search on a device file or a device without a lookup table '
            'cannot be compared this way')
    raise errors.InputError(
        f'{result_path}: field device is {searched_on!r}, '
        f'config.latency.device is {device!r}; the random architectures are '
        "drawn at the found one's latency on the search's device, by its "
        f'lookup table {hint}.')
  found_seeds = seeds if found_seeds is None else found_seeds
  if seeds < 1 or found_seeds < 1 or num_random < 1:
    raise errors.InputError(
        f'--num_random={num_random}, --seeds={seeds}, --found_seeds='
        f'{found_seeds}: expected at least 1 each.')
  lut = latency_lib.lookup_table_latency(device)
  lat = float(lut.arch_ms(np.asarray(arch)))
  space = spaces.get_space('fbnet')
  # Random architectures of the ops the search chose among.
  ops = tuple(config.search.get('ops') or ())
  outside = sorted(set(space.names(arch)) - set(ops))
  if ops and outside:
    raise errors.InputError(
        f'{result_path}: field arch uses {outside}, outside '
        f'config.search.ops {list(ops)}; set the ops the search used.')
  others = random_archs_at_latency(device, lat, num_random,
                                   seed=config.seed + 11, ops=ops)
  runs = [('found', arch, found_seeds)] + [
      (f'random{i}', a, seeds) for i, a in enumerate(others)]
  rows = []
  environments = set()  # of the retrainings (a resumed study may mix)
  for name, a, n in runs:
    ms = float(lut.arch_ms(np.asarray(a)))
    accs = []
    for s in range(n):
      cfg = copy.deepcopy(config)
      cfg.seed = config.seed + s
      run = retrain.train_and_evaluate(
          cfg, a, os.path.join(root, name, f'seed{cfg.seed}'))
      accs.append(float(run['accuracy']))
      environments.add(json.dumps(run.get('environment'), sort_keys=True))
      print(f'{name:8s} seed {cfg.seed}  {ms:6.2f} ms  accuracy '
            f'{accs[-1]:.4f}', flush=True)
    rows.append(dict(name=name, arch=space.names(a), lut_ms=ms,
                     seeds=[config.seed + s for s in range(n)],
                     seed_accuracies=accs, accuracy=float(np.mean(accs)),
                     accuracy_std=_sample_std(accs)))
  found, rand = rows[0], rows[1:]
  means = np.array([r['accuracy'] for r in rand])
  out = {'device': device, 'found': found, 'random': rand,
         'random_mean': float(means.mean()),
         'random_std': _sample_std(means),
         'found_minus_random_mean': found['accuracy'] - float(means.mean()),
         'found_rank': 1 + int(np.sum(means > found['accuracy'] + 1e-9)),
         'num_archs': len(rows),
         # Retrained accuracies reproduce to the bit only within one
         # environment (None: a run from before it was recorded).
         'environments': [json.loads(e) for e in sorted(environments)]}
  if found_seeds > 1 and num_random > 1:
    out['welch'] = welch(found['seed_accuracies'], means)
  workdirs.write_json(os.path.join(root, 'found_vs_random.json'), out)
  _plot_found_vs_random(out, os.path.join(root, 'found_vs_random.png'))
  return out


def _sample_std(values) -> Optional[float]:
  """Standard deviation with Bessel's correction; None for one value."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else None


def welch(found_accuracies: Sequence[float],
          random_means: Sequence[float]) -> dict:
  """Welch's t-test of found-architecture seeds against random
  architectures' seed means: t, two-sided p, 95% CI of the difference."""
  return _summary(stats.ttest_ind(found_accuracies, random_means,
                                  equal_var=False))


def _summary(test) -> dict:
  """t, two-sided p and 95% CI (of found - random) of a scipy t-test."""
  ci = test.confidence_interval(0.95)
  return {'t': float(test.statistic), 'p_two_sided': float(test.pvalue),
          'ci95_found_minus_random': [float(ci.low), float(ci.high)]}


def pool_found_vs_random(studies: Sequence[dict]) -> dict:
  """Several searches' ``found_vs_random.json`` as one comparison.

  Each search compares its found architecture with random ones of its own
  latency, so the pooled effect is the mean of the per-search differences
  (found mean - that study's random mean), tested by a paired (one-sample)
  t-test over searches (``paired``), and by the signs alone (``sign``:
  how many searches are ahead, two-sided binomial test). ``welch_seeds`` is
  a looser view: every found seed against every random architecture's
  mean, unpaired; the seeds of one found architecture share it, so its p
  is optimistic.

  Both tests take the searches as independent. ``shared_random_archs``
  counts random architectures retrained in more than one of the studies
  (e.g. two studies of one search seed: the random draw is seeded by
  ``config.seed``); where it is not 0 they are not.
  """
  per = [float(np.mean(s['found']['seed_accuracies'])) -
         float(np.mean([r['accuracy'] for r in s['random']]))
         for s in studies]
  found = [a for s in studies for a in s['found']['seed_accuracies']]
  means = [r['accuracy'] for s in studies for r in s['random']]
  out = {'num_searches': len(studies), 'found_mean': float(np.mean(found)),
         'num_found_runs': len(found), 'random_mean': float(np.mean(means)),
         'num_random_archs': len(means),
         'per_search_found_minus_random': per,
         'mean_found_minus_random': float(np.mean(per))}
  if len(found) > 1 and len(means) > 1:
    out['welch_seeds'] = welch(found, means)
  if len(studies) > 1:
    out['paired'] = _summary(stats.ttest_1samp(per, 0.0))
    # The sign test leaves ties out (a 359-image evaluation set makes them
    # plausible; a tie is a difference of float means that is zero up to
    # rounding); p is None when every search tied.
    tied = np.isclose(per, 0.0, rtol=0.0, atol=1e-9)
    ahead = int(np.sum((np.asarray(per) > 0) & ~tied))
    untied = int(np.sum(~tied))
    out['sign'] = {'ahead': ahead, 'untied': untied, 'p_two_sided': float(
        stats.binomtest(ahead, untied).pvalue) if untied else None}
  counts = collections.Counter(
      tuple(r['arch']) for s in studies for r in s['random'] if 'arch' in r)
  out['shared_random_archs'] = sum(c > 1 for c in counts.values())
  return out


def _plot_found_vs_random(out: dict, path: str):
  rows = [out['found']] + out['random']
  fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(rows), 4.2))
  for i, r in enumerate(rows):
    color = 'C3' if i == 0 else 'C0'
    n = len(r['seed_accuracies'])  # seeds side by side: ties stay visible
    ax.plot(i + np.linspace(-0.15, 0.15, n) * (n > 1), r['seed_accuracies'],
            'o', color=color, alpha=0.45, ms=5)
    ax.plot([i - 0.3, i + 0.3], [r['accuracy']] * 2, '-', color=color, lw=2)
  ax.axhline(out['random_mean'], color='C0', ls=':', lw=1,
             label=f'random mean {out["random_mean"]:.4f}')
  ax.set_xticks(range(len(rows)))
  ax.set_xticklabels([f'{r["name"]}\n{r["lut_ms"]:.1f} ms' for r in rows],
                     fontsize=7)
  ax.set_ylabel('retrained accuracy (dots: seeds, bars: mean)')
  title = (f'found vs random at {out["found"]["lut_ms"]:.1f} ms '
           f'({out["device"]})')
  if 'welch' in out:
    title += f'\nWelch p = {out["welch"]["p_two_sided"]:.3f}'
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
