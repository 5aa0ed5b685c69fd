"""A workdir remembers the settings it was started with.

A killed job resumes, and a finished one is read back, only under those
settings: a workdir of another architecture, seed or configuration is a
clear error naming what differs, never silently continued. Settings are
compared as values: a file named by path (a device file, a predictor) is
compared by its path, not its content.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import tempfile
from typing import IO, Any, Iterable, Iterator, Optional

from fbnet_jax import errors

_MISSING = '<not recorded>'


def as_json(settings: Any) -> Any:
  """``settings`` as they read back from JSON (tuples become lists)."""
  return json.loads(json.dumps(settings))


def without(settings: dict, keys: Iterable[str]) -> dict:
  """A copy of ``settings`` without the dotted ``keys`` (absent ones are
  ignored): what may change when a run resumes."""
  out = copy.deepcopy(settings)
  for key in keys:
    *parents, last = key.split('.')
    section = out
    for parent in parents:
      section = section.get(parent, {})
    section.pop(last, None)
  return out


def flatten(settings: dict, prefix: str = '') -> dict:
  """Nested dicts as one dict with dotted keys."""
  out = {}
  for key, value in settings.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def check(path: str, recorded: dict, settings: dict,
          remedy: str = 'use another workdir, or delete this one to start '
          'over.') -> None:
  """Raises ``InputError`` naming the settings that ``path`` recorded
  otherwise (compared on the keys of ``settings``, nested ones dotted),
  ending with ``remedy``."""
  got, want = flatten(recorded), flatten(as_json(settings))
  differ = [k for k in want if got.get(k, _MISSING) != want[k]]
  if differ:
    raise errors.InputError(
        f'{path}: was started with another {", ".join(differ)} than this '
        f'run ({ {k: got.get(k, _MISSING) for k in differ} } vs '
        f'{ {k: want[k] for k in differ} }); {remedy}')


def fingerprint(settings: dict) -> str:
  """A short hash of ``settings``: names a folder per distinct setting."""
  text = json.dumps(as_json(settings), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:8]


def quantile_name(q: float) -> str:
  """A folder name for a quantile: 'q15' for 0.15 (rounded, so that 0.29,
  whose float times 100 is 28.999..., is 'q29', not 0.28's 'q28')."""
  return f'q{round(q * 100)}'


def read_json(path: str) -> Optional[Any]:
  """The file's JSON, or None if there is no such file."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise errors.InputError(
          f'{path}: not valid JSON ({e}); a run killed while writing it? '
          'Delete it to redo that step.') from e


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w') -> Iterator[IO]:
  """``open(path, mode)`` for writing, atomically: the block writes a
  temporary file (named by this process) that replaces ``path`` when the
  block ends, and is removed if it raises. A job killed while writing
  leaves the old file or none, never half of one for a resume to trip on."""
  tmp = f'{path}.{os.getpid()}.tmp'
  try:
    with open(tmp, mode) as f:
      yield f
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def check_writable(path: str, where: str) -> None:
  """An :class:`errors.InputError` naming ``where`` unless a file can be
  written at ``path`` (its folder is created): said before a long job, not
  when it writes its result."""
  if os.path.isdir(path):
    raise errors.InputError(f'{where}: {path} is a directory; expected the '
                            'path of a file to write.')
  folder = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder):
      pass
  except OSError as e:
    raise errors.InputError(
        f'{where}: {path}: cannot write there ({e.strerror}: '
        f'{e.filename}); expected a path in a folder this user can '
        'write.') from e


def write_json(path: str, value: Any, indent: Optional[int] = 1) -> None:
  """Writes ``value`` to ``path`` atomically (:func:`atomic_open`)."""
  with atomic_open(path) as f:
    json.dump(value, f, indent=indent)


def environment() -> dict:
  """What a result was computed with, beyond its settings: jax and jaxlib
  versions, backend, device kind and CPU model. The same settings and seed
  reproduce a run to the bit only under the same environment (XLA's
  kernels and their reduction orders change between versions and CPUs).
  ``FBNET_JAX_CONV`` (which convolution code the blocks use,
  :func:`fbnet_jax.blocks.fast_conv_enabled`) is recorded when set."""
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  env = {'jax': jax.__version__, 'jaxlib': jaxlib.__version__,
         'backend': jax.default_backend(),
         'device_kind': jax.devices()[0].device_kind, 'cpu': cpu_model()}
  conv = os.environ.get('FBNET_JAX_CONV', 'auto')
  if conv != 'auto':  # the default: the keys recorded before it was
    env['FBNET_JAX_CONV'] = conv
  return env


def cpu_model() -> str:
  """The CPU's model name (``/proc/cpuinfo``), or its architecture."""
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      return next((line.split(':', 1)[1].strip() for line in f
                   if line.startswith('model name')), cpu)
  except OSError:
    return cpu


def record_or_check(path: str, settings: dict, *, resuming: bool) -> None:
  """A resumed run is checked against the settings file ``path`` it was
  started with; a fresh run writes that file.

  Args:
    path: the settings file in the workdir.
    settings: this run's settings (JSON values, nested dicts allowed).
    resuming: the workdir holds a checkpoint to resume from. One without a
      settings file cannot be checked and is an error.
  """
  if resuming:
    recorded = read_json(path)
    if recorded is None:
      raise errors.InputError(
          f'{os.path.dirname(path)}: holds a checkpoint but no '
          f'{os.path.basename(path)}, so its settings cannot be '
          'checked; use another workdir, or delete this one to '
          'start over.')
    check(path, recorded, settings)
    return
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  write_json(path, as_json(settings))


def checkpoint_manager(workdir: str, *, max_to_keep: int,
                       every: int = 1):
  """Orbax's manager of ``workdir/checkpoints``: a save every ``every``
  steps, the last ``max_to_keep`` kept. A checkpoint that a killed job left
  half-written (orbax's ``*.orbax-checkpoint-tmp-*`` folder) is removed by
  the next save, not left to accumulate."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, save_interval_steps=every,
          cleanup_tmp_directories=True))


def restore_checkpoint(manager, target, step: Optional[int] = None):
  """``target``'s tree restored from ``manager``'s ``step`` (default: the
  latest), or an :class:`errors.InputError` naming the checkpoint if it
  holds another tree: one written by an older version of this code, whose
  state had another structure, or by another model. (Orbax raises an
  unrelated ValueError for a missing entry and restores an array of another
  shape as it was saved.)"""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step() if step is None else step
  where = os.path.join(str(manager.directory), str(step))
  advice = ('expected a checkpoint of this run\'s state; start again in a '
            'new workdir (or remove this one\'s checkpoints/)')
  try:
    restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  except ValueError as e:
    raise errors.InputError(f'{where}: does not hold this run\'s state '
                            f'({e}); {advice}.') from e
  def shapes(tree):
    return [tuple(getattr(x, 'shape', ())) for x in jax.tree.leaves(tree)]
  if (jax.tree.structure(restored) != jax.tree.structure(target) or
      shapes(restored) != shapes(target)):
    raise errors.InputError(f'{where}: holds arrays of other shapes than this '
                            f'run\'s state; {advice}.')
  return restored
