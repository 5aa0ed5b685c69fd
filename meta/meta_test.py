"""Meta-test: few-shot Spearman per device, next to baselines and HELP.

``run(config, workdir, device_files)`` evaluates the meta-trained predictor
of ``workdir`` on the space's meta-test devices (or on device files), with
both protocols (untrimmed and HELP's trimmed one), beside the linear-mix,
Bayesian linear, op-count and FLOPs baselines, prints a table and writes
``workdir/meta_test.json`` (and ``meta_test.png``: predicted against
measured latency on each device, one support draw)::

  {"devices": {NAME: {"spearman", "spearman_std", "num_query", ...}},
   "mean_spearman": float,
   "protocol": "untrimmed" | "trimmed",
   "trimmed" | "untrimmed": {the same for the other protocol},
   "valid_spearman": float (on the tasks that selected the checkpoint),
   "baselines": {LABEL: {"untrimmed": ..., "trimmed": ...,
                         "selected": {settings, "valid_spearman"}
                                     (a baseline chosen on those tasks),
                         "workdir": (a --compare predictor's)}}}

LABEL is a baseline's name, or a compared predictor's meta.algorithm, made
unique with its workdir's name where two share one (see ``_unique_labels``).
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import logging
import numpy as np

from fbnet_jax import errors
from fbnet_jax import workdirs
import meta
from meta import adaptation
from meta import baselines
from meta import latency_data
from meta import plots
from meta import tasks as tasks_lib
from meta import train

RESULT_FILE = 'meta_test.json'


def load_devices(space: str, device_files: Sequence[str],
                 device_names: Sequence[str] = ()
                 ) -> list[latency_data.Device]:
  """The devices to evaluate: ``device_names`` (bundled), or
  ``device_files``, or else the space's meta-test devices.

  Raises:
    ValueError: both ``device_names`` and ``device_files`` given.
    DeviceFileError: a bad device file, one of another space, or two device
      files with the same device name (their columns would overwrite each
      other).
  """
  if device_names and device_files:
    raise errors.InputError(
        f'--devices={",".join(device_names)} and --device_file='
        f'{",".join(device_files)}: each names the devices to evaluate '
        'instead of the meta-test ones; expected one of the two (run '
        'meta_test once per set, with a different --out).')
  if device_names:
    try:
      return latency_data.devices_of(space, device_names)
    except latency_data.DeviceFileError as e:
      raise latency_data.DeviceFileError(f'--devices: {e}') from e
  if not device_files:
    return latency_data.devices_of(space,
                                   latency_data.SPLITS[space].meta_test)
  repeated = sorted({p for p in device_files if device_files.count(p) > 1})
  if repeated:
    raise errors.InputError(
        f'--device_file: {", ".join(repeated)} given more than once; '
        'expected each device file once.')
  devices = []
  for path in device_files:
    dev = latency_data.load_device_file(path)
    if dev.space != space:
      raise latency_data.DeviceFileError(
          f'{path}: field \'space\' is {dev.space!r}, but the predictor was '
          f'meta-trained on {space!r}; expected a {space} device file, or a '
          f'{dev.space} predictor (--config=configs/help_{dev.space}.py, '
          f'--predictor_dir=meta/pretrained/{dev.space} or a {dev.space} '
          'meta_train workdir).')
    missing = int((dev.reference_rows() < 0).sum())
    if missing:
      logging.warning(
          '%s: %d of %d reference architectures are missing among the '
          'non-query rows; the predictor adapts with them masked in the '
          'hardware embedding (as in meta-training with reference dropout), '
          'predicts them, and adapts again with the predictions in their '
          'place; every support row is used.', path, missing,
          len(dev.reference_rows()))
    devices.append(dev)
  first = {}
  for path, dev in zip(device_files, devices):
    if dev.name in first:
      raise latency_data.DeviceFileError(
          f'{path}: field \'name\' is {dev.name!r}, as in {first[dev.name]}; '
          'results are per device name, so one would hide the other. '
          'Expected distinct names: rename one device (its file\'s name '
          'field, e.g. meta.latency_data.save_device_file with another '
          'Device.name).')
    first[dev.name] = path
  return devices


def run(config, workdir: str, device_files: Sequence[str] = (),
        with_baselines: bool = True, compare: Sequence[str] = (),
        device_names: Sequence[str] = (), out_path: str = '',
        predictor_dir: str = '') -> dict:
  """Evaluates ``workdir/predictor`` (or ``predictor_dir``); returns and
  writes the result dict.

  Args:
    config: evaluation settings (``config.eval``).
    workdir: a ``meta_train`` workdir.
    device_files: evaluate these device files instead of the meta-test
      devices.
    with_baselines: add the linear-mix, Bayesian linear, op-count and
      FLOPs baselines.
    compare: other ``meta_train`` workdirs (MAML, Meta-SGD, ... variants) to
      evaluate in the same table.
    device_names: bundled devices to evaluate instead of the meta-test ones
      (e.g. devices in no split). Never meta-train or meta-valid devices.
    out_path: result path (default ``workdir/meta_test.json``).
    predictor_dir: the predictor to evaluate instead of ``workdir``'s, e.g.
      a bundled one (``meta/pretrained/<space>``).
  """
  errors.check_bounds(config, train.EVAL_BOUNDS)
  path = predictor_dir or os.path.join(workdir, train.PREDICTOR_DIR)
  if predictor_dir and not os.path.exists(path):
    raise FileNotFoundError(
        f'--predictor_dir={predictor_dir}: no such folder; expected a '
        'meta-trained predictor (a meta_train workdir\'s predictor/, or a '
        f'bundled one: {meta.PRETRAINED_DIR}/<space>).')
  if not os.path.exists(path):
    bundled = os.path.join(meta.PRETRAINED_DIR, config.get('space', '<space>'))
    raise FileNotFoundError(
        f'{path}: no meta-trained predictor; run python -m '
        f'experiments.meta_train --config=... --workdir={workdir} first, '
        f'or evaluate the bundled one: --predictor_dir={bundled}.')
  predictor = adaptation.MetaPredictor.load(path)
  space = predictor.config.space
  if config.get('space', space) != space:  # the predictor decides the space
    raise errors.InputError(
        f'config.space: {config.space!r}, but {path} is a {space} predictor; '
        f'expected --config=configs/help_{config.space}.py with a '
        f'{config.space} predictor, or --config=configs/help_{space}.py.')
  split = latency_data.SPLITS[space]
  seen = sorted(n for n in set(device_names) if split.seen_as(n))
  if seen:
    raise errors.InputError(
        f'--devices: {seen} were '
        'used in meta-training or model selection; evaluating '
        'on them would not be a few-shot test.')
  devices = load_devices(space, device_files, device_names)
  result_path = out_path or os.path.join(workdir, RESULT_FILE)
  workdirs.check_writable(result_path, '--out' if out_path else '--workdir')
  for device in devices:
    if (not device.source.startswith('bundled') and
        split.seen_as(device.name)):
      logging.warning(
          '%s: named %r, a device that meta-training or model selection '
          'used; if its rows are that device\'s, the score is not a '
          'few-shot test.', device.source, device.name)
  ev = config.eval
  seeds = list(range(ev.seeds))
  main = adaptation.MetaMethod(predictor, predictor.config.meta.algorithm)
  others = []  # (name, method, compared workdir or None for a baseline)
  for other in compare:
    pred = adaptation.MetaPredictor.load(os.path.join(other,
                                                      train.PREDICTOR_DIR))
    if pred.config.space != space:
      raise errors.InputError(f'{other}: a {pred.config.space} predictor, not '
                              f'{space}.')
    others.append((pred.config.meta.algorithm,
                   adaptation.MetaMethod(pred, pred.config.meta.algorithm),
                   other))
  # The tasks that selected the predictor's checkpoint (its own
  # config.eval: samples, seeds, trim). The baselines' settings are chosen
  # on them, so every method is selected alike, whatever this run evaluates
  # with; each method's score there is recorded beside its result.
  valid_tasks = train.validation_tasks(predictor.config)
  if with_baselines:
    for method in (baselines.LinearMix.selected(space, valid_tasks),
                   baselines.BayesLinear.selected(space, valid_tasks),
                   baselines.OpCounts.selected(space, valid_tasks),
                   baselines.FlopsProxy()):
      others.append((method.name, method, None))
  labels = _unique_labels(main.name, others)

  def evaluate(method):
    return {protocol: tasks_lib.evaluate(method, devices,
                                         num_samples=ev.num_samples,
                                         seeds=seeds,
                                         trim=protocol == 'trimmed')
            for protocol in ('untrimmed', 'trimmed')}

  ours = evaluate(main)
  results = {}
  for label, (_, method, other_dir) in zip(labels, others):
    results[label] = evaluate(method)
    if hasattr(method, 'selection'):  # a baseline chosen on meta-valid
      results[label]['selected'] = method.selection
    if other_dir is not None:
      results[label]['workdir'] = other_dir
  primary = 'trimmed' if ev.trim else 'untrimmed'
  other = 'untrimmed' if ev.trim else 'trimmed'
  out = dict(ours[primary], protocol=primary, method=main.name,
             num_samples=ev.num_samples, seeds=len(seeds),
             valid_spearman=float(np.mean(
                 tasks_lib.task_scores(main, valid_tasks))))
  out[other] = ours[other]
  out['baselines'] = results
  print(format_table(space, devices, ours, results, device_files))
  workdirs.write_json(result_path, out)
  plot_path = os.path.splitext(result_path)[0] + '.png'
  plots.plot_meta_test(
      device_panels(main, devices, ours['untrimmed'], ev.num_samples,
                    seeds[0], len(seeds)), plot_path,
      f'{main.name} ({space}), adapted on the reference architectures + '
      f'{ev.num_samples} samples (draw 0); all query rows')
  print(f'-> {result_path}, {plot_path} (predicted against measured)')
  return out


def device_panels(method: tasks_lib.Method,
                  devices: Sequence[latency_data.Device], result: dict,
                  num_samples: int, seed: int,
                  num_draws: int) -> list[plots.DevicePanel]:
  """What ``method`` predicts for each device's support and (untrimmed)
  query rows, adapted on the support draw of ``seed``; ``result``:
  :func:`tasks.evaluate`'s untrimmed output, for the mean over draws."""
  panels = []
  for device in devices:
    task, = tasks_lib.make_tasks(device, num_samples=num_samples,
                                 seeds=[seed], trim=False)
    predict = method.adapt(task)
    query_pred = np.asarray(predict(task.query_archs), np.float64)
    panels.append(plots.DevicePanel(
        label=device.name, query_ms=np.asarray(task.query_ms, np.float64),
        query_pred_ms=query_pred,
        support_ms=np.asarray(task.support_ms, np.float64),
        support_pred_ms=np.asarray(predict(task.support_archs), np.float64),
        spearman=tasks_lib.spearman(query_pred, task.query_ms),
        mean_spearman=result['devices'][device.name]['spearman'],
        num_draws=num_draws))
  return panels


def _unique_labels(main: str, others) -> list[str]:
  """One column label per ``(name, method, workdir)`` of ``others``: a
  baseline (workdir None) keeps its name; a compared predictor takes its
  meta.algorithm, or where that is taken (two ``--compare`` workdirs of one
  algorithm, or one of the main predictor's) ``algorithm@workdir-basename``,
  numbered (``#2``...) if still taken."""
  taken = {main, 'ours'} | {name for name, _, workdir in others
                            if workdir is None}
  labels = []
  for name, _, workdir in others:
    if workdir is None:
      labels.append(name)
      continue
    label = name
    if label in taken:
      label = f'{name}@{os.path.basename(os.path.normpath(workdir))}'
    base, i = label, 2
    while label in taken:
      label, i = f'{base}#{i}', i + 1
    taken.add(label)
    labels.append(label)
  return labels


def format_table(space, devices, ours, others, device_files) -> str:
  published = {k: v for k, v in latency_data.PUBLISHED_HELP.get(
      space, {}).items() if not device_files and k in {d.name for d in devices}}
  cols = [('ours', ours)] + list(others.items())
  # Wide enough for '0.1234+-0.567' and for a long label (name@workdir).
  widths = [max(17, len(name) + 4) for name, _ in cols]
  lines = [f'Spearman on the query rows ({space}; mean +- std over support '
           'draws). u = untrimmed, t = HELP\'s trimmed protocol.']
  header = f'{"device":<16}' + ''.join(
      f'{name + " u":>{w}}{name + " t":>{w}}'
      for (name, _), w in zip(cols, widths)) + (
          f'{"HELP (paper) t":>16}' if published else '')
  lines.append(header)
  for dev in devices:
    row = f'{dev.name:<16}'
    for (_, res), w in zip(cols, widths):
      for protocol in ('untrimmed', 'trimmed'):
        d = res[protocol]['devices'][dev.name]
        row += f'{d["spearman"]:.4f}+-{d["spearman_std"]:.3f}'.rjust(w)
    if published:
      row += f'{published.get(dev.name, float("nan")):>16.3f}'
    lines.append(row)
  row = f'{"mean":<16}'
  for (_, res), w in zip(cols, widths):
    for protocol in ('untrimmed', 'trimmed'):
      row += f'{res[protocol]["mean_spearman"]:>{w}.4f}'
  if published:
    row += f'{np.mean(list(published.values())):>16.3f}'
  lines.append(row)
  return '\n'.join(lines)
