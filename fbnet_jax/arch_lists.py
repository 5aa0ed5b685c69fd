"""Which architectures to measure: the ``--archs`` list of
``experiments.measure``.

A comma-separated list of items: ``reference`` (the space's 10 reference
architectures), ``random:N`` (N uniformly random ones), ``spread:N`` (N from
uniform to nearly the cheapest: a support set that covers the fast end,
``SearchSpace.sample_spread``), ``query:N`` (N random ones flagged
``is_query``: evaluation only), ``result:PATH`` (the derived and sampled
architectures of a search's result.json) and ``file:PATH`` (the
architectures of another device file, with its ``is_query`` flags).
"""

from __future__ import annotations

import os

import numpy as np

from fbnet_jax import errors
from fbnet_jax import measure
from fbnet_jax import retrain
from meta import latency_data


def select_archs(space, specs, seed):
  """(archs [N, U], is_query [N], reference rows) from ``--archs`` (the
  module docstring's items), random ones drawn with ``seed``.

  Raises:
    ValueError: for an item that is not one of the module docstring's, an
      N that is not a whole number >= 1, or a file that is missing, not of
      ``space`` or lacks a field; naming the item, the file and the field.
  """

  if not specs:
    raise errors.InputError('--archs: empty; expected a list such as '
                            'reference,random:10,query:200.')
  if 'reference' in specs and specs.count('reference') > 1:
    raise errors.InputError('--archs: reference listed more than once; '
                            'expected it once (its 10 networks would be '
                            'measured twice).')
  rng = np.random.default_rng(seed)
  archs, query, refs = [], [], []
  for spec in specs:
    kind, colon, arg = spec.partition(':')
    if kind == 'reference':
      if colon:
        raise errors.InputError(f'--archs: item {spec!r}: reference takes no '
                                f'argument (it is the {space.name} space\'s '
                                'reference architectures); expected reference.')
      ref = latency_data.load_space_data(space.name).reference_archs
      refs += list(range(len(archs), len(archs) + len(ref)))
      archs += list(ref)
      query += [False] * len(ref)
    elif kind in ('random', 'query', 'spread'):
      new = (space.sample_spread if kind == 'spread' else space.sample)(
          rng, _count(spec, kind, arg))
      archs += list(new)
      query += [kind == 'query'] * len(new)
    elif kind == 'result':
      found = _result_archs(space, spec, arg)
      archs += found
      query += [False] * len(found)
    elif kind == 'file':
      if not arg:
        raise errors.InputError(
            f'--archs: item {spec!r}: expected file:PATH, the '
            'path of a device file.')
      try:
        dev = latency_data.load_device_file(arg)
      except latency_data.DeviceFileError as e:
        raise latency_data.DeviceFileError(
            f'--archs: item {spec!r}: {e}') from e
      if dev.space != space.name:
        raise errors.InputError(
            f'--archs: item {spec!r}: {arg}: field space is '
            f'{dev.space!r}; expected a {space.name} device file (the space '
            f'that --space={space.name} measures).')
      _check_macro(space, spec, arg, measure.file_setting(dev, 'macro'))
      archs += list(dev.archs)
      query += list(dev.is_query)
    else:
      raise errors.InputError(
          f'--archs: unknown item {spec!r}; expected reference, '
          'random:N, spread:N, query:N, result:PATH or '
          'file:PATH.')
  if all(query):
    raise errors.InputError(
        f'--archs: {",".join(specs)}: every architecture is a '
        'query row (evaluation only); a device file needs rows '
        'to adapt on too: add reference, random:N or spread:N.')
  return np.asarray(archs, np.int32), np.asarray(query, bool), refs


def _count(spec, kind, arg):
  """N of a ``random:N``, ``spread:N`` or ``query:N`` item."""
  try:
    n = int(arg)
  except ValueError:
    n = 0
  if n < 1:
    raise errors.InputError(
        f'--archs: item {spec!r}: expected {kind}:N with N a '
        f'whole number >= 1, got {arg!r}.')
  return n


def _check_macro(space, spec, path, macro):
  """A file's FBNet macro network (if it records one) must be --macro's."""
  if space.MACROS and macro and macro != space.macro_name:
    raise errors.InputError(f'--archs: item {spec!r}: {path}: field macro is '
                            f'{macro!r}; expected --macro={space.macro_name}.')


def _result_archs(space, spec, path):
  """The derived and sampled architectures of a search's result.json."""
  if not path:
    raise errors.InputError(
        f'--archs: item {spec!r}: expected result:PATH, the '
        'path of a result.json written by experiments.search.')
  if not os.path.isfile(path):
    raise errors.InputError(
        f'--archs: item {spec!r}: {path}: no such file; expected'
        ' a result.json written by experiments.search.')
  where = f'--archs: item {spec!r}: {path}'

  def check(result):
    if result['space'] != space.name:
      raise errors.InputError(f'{where}: field space is {result["space"]!r}; '
                              f'expected a {space.name} result (the space '
                              f'that --space={space.name} measures).')
    _check_macro(space, spec, path, result.get('macro'))

  arch, result = retrain.load_arch(path, where=where, check=check)
  samples = result.get('samples', [])
  if not isinstance(samples, list) or not all(
      isinstance(s, dict) and 'arch_index' in s for s in samples):
    raise errors.InputError(
        f'{where}: field samples: expected a list of objects '
        'with field arch_index.')
  return [np.asarray(arch, np.int32)] + [
      np.asarray(retrain.result_arch(
          s['arch_index'], space, f'{where}: field samples[{i}].arch_index'),
                 np.int32) for i, s in enumerate(samples)]
