"""Latency measurement on the local JAX backend, written as a device file.

:func:`time_fn` times one compiled function: compilation kept out, warm-up
calls, then ``repeats`` timed calls synchronised with ``block_until_ready``
(GPU/TPU dispatch is asynchronous). :func:`measure_archs` measures many
architectures with the hygiene a shared machine needs:

- every architecture is compiled once, up front (on CPU in
  ``compile_workers`` threads: XLA compiles outside the GIL, so a
  many-core host compiles several networks at once; on GPU one at a time,
  because XLA autotunes each convolution on the GPU while compiling, and
  concurrent autotuning was pathological on an H100: 320 s for the first
  of 16 networks compiled in 16 threads, against 4-20 s each serially);
- rounds interleave the architectures in a fresh random order, so slow
  drifts (thermal, other jobs) spread over all of them instead of biasing a
  block;
- the reference architectures are also timed at the start and the end, and
  the relative drift of their medians is reported;
- rounds continue until the relative spread (IQR / median) of every
  architecture is under ``spread_bound``, ``time_budget_s`` runs out or
  ``max_rounds`` are done (``stopped_by`` says which; a warning when the
  bound was not met). The spread describes the timings, and does not
  shrink with more of them: on a noisy machine (this project's 2-core VM:
  0.25-0.39 at the worst network) the bound is not met and ``max_rounds``
  or the budget decide;
- the result says how noisy the measurement was;
- with ``resume_file``, the timings so far are kept there after every
  round, and a killed measurement restarted with the same arguments goes
  on from its last round (``resumed_at_rounds`` in the file; the
  references' drift then spans the pause too).

:func:`measure_archs_in_fresh_process` runs it in a new interpreter: in one
that has just run a search, the same networks timed 8-23% slower than in a
fresh one on the 2-core VM (and compiles slowed down as executables piled
up), so the closed loop times every session that way.

The output is a :class:`meta.latency_data.Device` (``save_device_file``
writes the device-file format of ``meta/data/README.md``) whose
``latency_ms`` is each network's median or minimum over its timings
(``MeasureConfig.statistic``), with extra arrays ``latency_median_ms``,
``latency_min_ms``, ``latency_iqr_ms`` and ``num_timings`` and scalar noise
figures. ``MeasureConfig.cpu_cores`` times on pinned cores
(:func:`pinned_cpus`), a quieter figure on a shared machine.
"""

from __future__ import annotations

from concurrent import futures
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import platform
import time
from typing import Callable, Iterator, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from fbnet_jax import blocks
from fbnet_jax import compilation_cache
from fbnet_jax import errors
from fbnet_jax import initializers
from fbnet_jax import models
from fbnet_jax import spaces as spaces_lib
from fbnet_jax import workdirs
from meta import latency_data


def time_fn(fn: Callable[[], jax.Array], *, warmup: int = 3,
            repeats: int = 10) -> np.ndarray:
  """Seconds of ``repeats`` synchronised calls of ``fn`` after warm-up."""
  if repeats < 1:
    raise ValueError(f'repeats must be >= 1, got {repeats}.')
  for _ in range(warmup):
    jax.block_until_ready(fn())
  out = np.empty(repeats)
  for i in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    out[i] = time.perf_counter() - t0
  return out


# The numeric settings of the harness (the flags of experiments.measure,
# config.measure of a search).
BOUNDS = (
    errors.Bound('batch_size', 1, integer=True),
    errors.Bound('warmup', 0, integer=True),
    errors.Bound('round_warmup', 0, integer=True),
    errors.Bound('repeats_per_round', 1, integer=True),
    errors.Bound('min_rounds', 1, integer=True),
    errors.Bound('max_rounds', 1, integer=True),
    errors.Bound('spread_bound', 0),
    errors.Bound('time_budget_s', 0, open_low=True),
    errors.Bound('compile_workers', 0, integer=True),
    errors.Bound('onnx_threads', 0, integer=True),
)


@dataclasses.dataclass(frozen=True)
class MeasureConfig:
  """How to build and time the networks."""
  space: str = 'fbnet'
  macro: str = 'cifar'  # FBNet macro (input 32 for cifar, 224 imagenet)
  batch_size: int = 1
  dtype: str = 'float32'
  warmup: int = 3
  round_warmup: int = 1  # untimed calls of a network before each round's
  repeats_per_round: int = 5  # ... timed ones
  min_rounds: int = 3
  max_rounds: int = 20
  spread_bound: float = 0.05  # stop when every IQR / median is below this
  time_budget_s: float = 600.0
  seed: int = 0
  compile_workers: int = 0  # threads compiling; 0: min(16, CPUs) on CPU, 1 else
  runtime: str = 'jax'  # or 'onnxruntime': exported to ONNX, run on its CPU
  onnx_threads: int = 0  # ONNX Runtime intra-op threads; 0: its default
  # What a device file's ``latency_ms`` holds: each network's 'median' or
  # 'min' over its timings (both are stored; see ``file_setting``).
  statistic: str = 'median'
  # 0: the cores this process may use; k: timing pinned to k of them (and,
  # in a process that only measures, XLA's CPU thread pools sized to k;
  # see ``measure_archs``). Linux, jax runtime.
  cpu_cores: int = 0

  def __post_init__(self):
    if self.dtype not in DTYPES:
      raise errors.InputError(
          f'MeasureConfig.dtype: expected one of {DTYPES}, got '
          f'{self.dtype!r}.')
    if self.runtime not in RUNTIMES:
      raise errors.InputError(
          f'MeasureConfig.runtime: expected one of {RUNTIMES}, '
          f'got {self.runtime!r}.')
    if self.statistic not in STATISTICS:
      raise errors.InputError(f'MeasureConfig.statistic: expected one of '
                              f'{STATISTICS}, got {self.statistic!r}.')
    if self.cpu_cores:
      if not hasattr(os, 'sched_getaffinity'):
        raise errors.InputError('MeasureConfig.cpu_cores: pinning needs Linux '
                                '(os.sched_setaffinity); use 0 here.')
      if self.runtime != 'jax':
        raise errors.InputError(
            'MeasureConfig.cpu_cores: pins the jax runtime; for '
            'onnxruntime use onnx_threads.')
      allowed = len(os.sched_getaffinity(0))
      if not 0 < self.cpu_cores <= allowed:
        raise errors.InputError(
            f'MeasureConfig.cpu_cores: expected 0 (all) to '
            f'{allowed} (the cores this process may use), got '
            f'{self.cpu_cores}.')
    errors.check_bounds(dataclasses.asdict(self), BOUNDS, 'MeasureConfig.')
    if self.runtime == 'onnxruntime' and self.dtype != 'float32':
      raise errors.InputError(
          'MeasureConfig.dtype: the onnxruntime runtime times '
          f'float32 graphs, got {self.dtype!r}.')
    if self.onnx_threads and self.runtime != 'onnxruntime':
      raise errors.InputError(
          'MeasureConfig.onnx_threads: sizes ONNX Runtime\'s pool; expected '
          f'0 with the {self.runtime} runtime (for jax use cpu_cores).')


def make_config(where: str, **settings) -> MeasureConfig:
  """``MeasureConfig(**settings)``, a bad setting named as the user gave it:
  ``where`` replaces the ``MeasureConfig.`` of the message
  ('config.measure.' for a config, '--' for the flags of
  ``experiments.measure``)."""
  try:
    return MeasureConfig(**settings)
  except errors.InputError as e:
    raise errors.InputError(
        str(e).replace('MeasureConfig.', where, 1)) from None


RUNTIMES = ('jax', 'onnxruntime')
DTYPES = ('float32', 'bfloat16')  # of the timed networks' inputs and weights
STATISTICS = ('median', 'min')


@contextlib.contextmanager
def pinned_cpus(num: int) -> Iterator[None]:
  """Runs the block with every thread of this process on ``num`` cores.

  The cores are the last ``num`` this process may use (the first one
  usually takes the host's interrupts); ``num=0`` changes nothing. Threads
  started inside the block inherit it. Afterwards each thread gets its own
  previous affinity back, and threads started inside the block get the
  calling thread's. XLA sizes its CPU thread pools to the cores it may use
  when it creates its client, so a process whose first JAX call runs in
  this block keeps pools of ``num`` threads (:func:`measure_archs` with
  ``pin_client``).
  """
  if not num:
    yield
    return
  before = os.sched_getaffinity(0)
  cores = set(sorted(before)[-num:])

  def threads():
    return [int(t) for t in os.listdir('/proc/self/task')]

  saved = {}
  for tid in threads():
    try:
      saved[tid] = os.sched_getaffinity(tid)
      os.sched_setaffinity(tid, cores)
    except ProcessLookupError:
      pass  # a thread that has just exited
  try:
    yield
  finally:
    for tid in threads():
      try:
        os.sched_setaffinity(tid, saved.get(tid, before))
      except ProcessLookupError:
        pass


def build_forward(space: str, arch, config: MeasureConfig
                  ) -> Callable[[], jax.Array]:
  """A compiled inference function of one architecture, ready to time."""
  arch = tuple(int(a) for a in arch)
  dtype = jnp.dtype(config.dtype)  # the computation's, not only the input's
  model = models.standalone(space, arch, macro=config.macro, dtype=dtype)
  size = model.input_size
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(config.batch_size, size, size, 3)), dtype)
  variables = initializers.fast_init(model, 0, x[:1].astype(jnp.float32),
                                     train=False)
  if config.runtime == 'onnxruntime':
    from fbnet_jax import export  # optional dependencies
    # The network's computation as exported (XLA's convolutions, see
    # export.to_onnx), not only its name: a change to the model code makes
    # a new graph instead of timing a stale one.
    with blocks.conv_implementation('xla'):
      program = str(jax.make_jaxpr(
          lambda v, x: model.apply(v, x, train=False))(variables, x))
    key = (f'{space}_{config.macro}_b{config.batch_size}_' +
           '-'.join(map(str, arch)) + '_' +
           hashlib.sha256(program.encode()).hexdigest()[:10])
    graph = export.cached(compilation_cache.onnx_dir(), key,
                          lambda: export.to_onnx(model, variables, x.shape))
    session = export.onnxruntime_session(graph, threads=config.onnx_threads)
    return export.onnxruntime_forward(session, np.asarray(x))
  variables = jax.tree.map(lambda v: jnp.asarray(v, dtype), variables)
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  compiled = apply.lower(variables, x).compile()
  return lambda: compiled(variables, x)


def measure_archs(archs: np.ndarray, config: MeasureConfig, *,
                  reference_rows: Sequence[int] = (), name: str = 'local',
                  is_query: Optional[np.ndarray] = None, progress: bool = True,
                  pin_client: bool = False, resume_file: Optional[str] = None):
  """Measures ``archs`` [N, U]; returns a device with noise figures.

  With ``config.cpu_cores`` the timing runs on that many pinned cores;
  ``pin_client`` also starts JAX's backend pinned, so that XLA's thread
  pools have that many threads, for good in this process: meant for a
  process that only measures (:func:`measure_archs_in_fresh_process`,
  ``experiments.measure``), before anything else starts JAX.

  Args:
    archs: architectures of ``config.space``.
    config: build and timing settings.
    reference_rows: rows that are the space's reference architectures; they
      are re-timed at the start and the end to report drift.
    name: device name.
    is_query: optional bool [N] stored in the device file.
    progress: show progress bars.
    pin_client: see above.
    resume_file: an ``.npz`` that keeps the rounds timed so far (written
      after each round) and from which a killed measurement of the same
      architectures, rows and settings on the same machine resumes; one of
      other arguments is an error naming it. The caller removes it once
      the device file is written (:func:`resume_file_for`).
  """
  if config.cpu_cores and pin_client:
    # XLA sizes its CPU thread pools to the cores it may use when it creates
    # its client: pin while it does (compiling is not pinned).
    if _backend_started():
      logging.warning('measure: JAX was started before measure_archs, so '
                      "XLA's thread pools use every core; only the timing "
                      'is pinned to %d.', config.cpu_cores)
    with pinned_cpus(config.cpu_cores):
      jax.devices()

  space = spaces_lib.space_for(config.space, config.macro)
  archs = space.validate_batch(archs, where='measure: archs')
  t_start = time.time()
  fns = _build_all(archs, config, progress)
  compile_s = time.time() - t_start
  refs = list(reference_rows)
  key = _resume_key(archs, config, refs, is_query)
  partial = _read_partial(resume_file, key) if resume_file else None
  with pinned_cpus(config.cpu_cores):  # no-op for 0
    rounds = _Rounds.start(fns, refs, config, partial, resume_file)
    rounds.run(fns, config, key, resume_file, progress)
    rounds.ref_end = rounds.ref_medians(fns, refs, config)
  rounds.seconds = time.time() - rounds.t_measure
  return _measured_device(archs, rounds, config, name, is_query, compile_s)


def _build_all(archs: np.ndarray, config: MeasureConfig,
               progress: bool) -> list:
  """Every architecture's compiled forward pass (or ONNX Runtime session),
  built up front, in ``compile_workers`` threads on CPU."""
  workers = config.compile_workers or (
      min(16, os.cpu_count() or 1) if jax.default_backend() == 'cpu' else 1)
  if config.runtime == 'onnxruntime':
    workers = 1  # jax2onnx's conversion is not documented as thread-safe
  with futures.ThreadPoolExecutor(workers) as pool:
    return list(tqdm.tqdm(
        pool.map(lambda a: build_forward(config.space, a, config), archs),
        total=len(archs), desc='compile' if config.runtime == 'jax' else
        'export', disable=not progress, unit='net'))


@dataclasses.dataclass
class _Rounds:
  """The interleaved timing rounds of one measurement, resumable.

  ``timings[i]``: network i's timings (s); ``resumed_at``: the rounds after
  which a killed measurement was resumed; ``t_measure``: when timing
  started (earlier by the resumed rounds' seconds).
  """
  timings: list
  rounds: int
  resumed_at: list
  ref_start: np.ndarray
  rng: np.random.Generator
  t_measure: float
  stopped_by: str = ''
  ref_end: Optional[np.ndarray] = None  # timed after the rounds
  seconds: float = 0.0

  @staticmethod
  def ref_medians(fns, refs, config: MeasureConfig) -> np.ndarray:
    """Each reference architecture's median timing now (s)."""
    return np.array([np.median(time_fn(fns[r], warmup=config.warmup,
                                       repeats=config.repeats_per_round))
                     for r in refs]) if refs else np.zeros(0)

  @classmethod
  def start(cls, fns, refs, config: MeasureConfig, partial: Optional[dict],
            resume_file: Optional[str]) -> '_Rounds':
    """New rounds (the references timed first), or those kept in
    ``partial`` (:func:`_read_partial`)."""
    rng = np.random.default_rng(config.seed)
    if partial is None:
      return cls([[] for _ in fns], 0, [], cls.ref_medians(fns, refs, config),
                 rng, time.time())
    rounds = int(partial['rounds'])
    rng.bit_generator.state = json.loads(str(partial['rng_state']))
    logging.info('measure: resumed from %s after %d rounds.', resume_file,
                 rounds)
    return cls([list(t) for t in partial['timings']], rounds,
               list(partial['resumed_at_rounds']) + [rounds],
               partial['ref_start'], rng,
               time.time() - float(partial['seconds']))

  def run(self, fns, config: MeasureConfig, key: str,
          resume_file: Optional[str], progress: bool) -> None:
    """Rounds, each network once in a fresh random order, until every
    spread is under the bound, the time budget is spent or ``max_rounds``
    are done; each round kept in ``resume_file``."""
    bar = tqdm.tqdm(total=config.max_rounds, initial=self.rounds,
                    desc='rounds', disable=not progress)
    self.stopped_by = 'max_rounds'
    while self.rounds < config.max_rounds:
      for i in self.rng.permutation(len(fns)):
        self.timings[i].extend(time_fn(fns[i], warmup=config.round_warmup,
                                       repeats=config.repeats_per_round))
      self.rounds += 1
      bar.update(1)
      if resume_file:
        self._keep(resume_file, key)
      spread = _spread(self.timings)
      bar.set_postfix(max_spread=f'{spread.max():.3f}')
      # (max_rounds below min_rounds: the last round still checks.)
      if self.rounds >= min(config.min_rounds, config.max_rounds):
        if spread.max() < config.spread_bound:
          self.stopped_by = 'spread_bound'
          break
        if time.time() - self.t_measure > config.time_budget_s:
          self.stopped_by = 'time_budget_s'
          break
    bar.close()

  def _keep(self, path: str, key: str) -> None:
    with workdirs.atomic_open(path, 'wb') as f:
      np.savez(f, key=key, timings=np.asarray(self.timings, np.float64),
               rounds=self.rounds, seconds=time.time() - self.t_measure,
               ref_start=self.ref_start,
               resumed_at_rounds=np.asarray(self.resumed_at, np.int32),
               rng_state=json.dumps(self.rng.bit_generator.state))


def _measured_device(archs: np.ndarray, run: _Rounds, config: MeasureConfig,
                     name: str, is_query: Optional[np.ndarray],
                     compile_s: float) -> latency_data.Device:
  """The device file's rows (each network's median or minimum) and the
  measurement's noise figures."""
  timings, rounds = run.timings, run.rounds
  median = np.array([np.median(t) for t in timings]) * 1e3
  minimum = np.array([np.min(t) for t in timings]) * 1e3
  q75, q25 = (np.array([np.percentile(t, q) for t in timings]) * 1e3
              for q in (75, 25))
  spread = _spread(timings)
  refs = len(run.ref_start) > 0
  drift = (run.ref_end / run.ref_start - 1) if refs else np.zeros(0)
  if run.stopped_by != 'spread_bound':
    logging.warning(
        'measure: stopped by %s after %d rounds with the largest IQR/median '
        '%.3f above spread_bound %.3f (%d of %d networks above it): the '
        'timings are that noisy; each median rests on %d timings.',
        run.stopped_by, rounds, spread.max(), config.spread_bound,
        int((spread >= config.spread_bound).sum()), len(archs),
        rounds * config.repeats_per_round)
  noise = dict(
      rounds=np.int32(rounds), stopped_by=np.array(run.stopped_by),
      resumed_at_rounds=np.asarray(run.resumed_at, np.int32),
      spread_bound=np.float32(config.spread_bound),
      time_budget_s=np.float32(config.time_budget_s),
      max_rounds=np.int32(config.max_rounds),
      median_relative_spread=np.float32(np.median(spread)),
      max_relative_spread=np.float32(spread.max()),
      reference_drift=np.float32(np.median(drift) if refs else 0.0),
      max_reference_drift=np.float32(np.abs(drift).max() if refs else 0.0),
      # Each reference's median at the start and the end (ms), the drift's
      # own data.
      reference_start_ms=(run.ref_start * 1e3).astype(np.float32),
      reference_end_ms=(run.ref_end * 1e3).astype(np.float32),
      compile_seconds=np.float32(compile_s),
      measure_seconds=np.float32(run.seconds),
      backend=np.array(backend_name(config.runtime)),
      device_kind=np.array(device_kind(config.runtime)),
      runtime=np.array(config.runtime),
      batch_size=np.int32(config.batch_size), dtype=np.array(config.dtype),
      macro=np.array(config.macro), statistic=np.array(config.statistic),
      cpu_cores=np.int32(config.cpu_cores),
      onnx_threads=np.int32(config.onnx_threads),
      **{f'env_{k}': np.array(str(v)) for k, v in measure_environment().items()})
  logging.info('measured %d archs in %d rounds: median spread %.3f, max %.3f,'
               ' reference drift %+.3f', len(archs), rounds,
               noise['median_relative_spread'], noise['max_relative_spread'],
               noise['reference_drift'])
  return latency_data.Device(
      name=name, space=config.space, archs=archs,
      latency_ms=(median if config.statistic == 'median' else
                  minimum).astype(np.float32),
      is_query=(np.zeros(len(archs), bool) if is_query is None
                else np.asarray(is_query, bool)),
      source='measured',
      meta=dict(latency_iqr_ms=(q75 - q25).astype(np.float32),
                latency_median_ms=median.astype(np.float32),
                latency_min_ms=minimum.astype(np.float32),
                num_timings=np.array([len(t) for t in timings], np.int32),
                **noise))


def resume_file_for(device_file: str) -> str:
  """Where the measurement of ``device_file`` keeps its rounds until the
  file is written: ``my_cpu.npz`` -> ``my_cpu.partial.npz``."""
  return os.path.splitext(device_file)[0] + '.partial.npz'


def discard_resume_file(path: str) -> None:
  """Removes a measurement's kept rounds once its device file is written
  (absent where no round was kept)."""
  if os.path.exists(path):
    os.remove(path)


def _resume_key(archs, config: MeasureConfig, refs, is_query) -> str:
  """What a resumed measurement must share with the one it continues: the
  architectures and their rows, the settings and the machine."""
  digest = hashlib.sha256(np.ascontiguousarray(archs, np.int64).tobytes())
  digest.update(json.dumps(
      [dataclasses.asdict(config), [int(r) for r in refs],
       None if is_query is None else np.asarray(is_query, bool).tolist(),
       measure_environment(), backend_name(config.runtime),
       device_kind(config.runtime)], sort_keys=True).encode())
  return digest.hexdigest()


def _read_partial(path: str, key: str) -> Optional[dict]:
  """The rounds kept in ``path`` (None if there is none), if they are of
  this measurement (``key``); otherwise an error naming the file."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as f:
      partial = dict(f)
  except (OSError, ValueError) as e:
    raise errors.InputError(
        f'{path}: not a partial measurement this harness wrote ({e}); delete '
        'it to start the measurement over.') from e
  if str(partial.get('key')) != key:
    raise errors.InputError(
        f'{path}: the rounds of a measurement of other architectures, rows, '
        'settings or another machine; delete it to start this one over, or '
        'rerun that one to resume it.')
  return partial


def measure_environment() -> dict:
  """What else decides how fast a network runs here: the machine (host
  name, CPU model), jax and jaxlib, the convolution implementation and
  XLA's flags. Stored in device files as ``env_*`` fields."""
  import jaxlib  # pylint: disable=g-import-not-at-top
  # Nothing here starts JAX's backend (see measure_archs's pin_client).
  return {'host': platform.node(), 'cpu': workdirs.cpu_model(),
          'jax': jax.__version__, 'jaxlib': jaxlib.__version__,
          'fbnet_jax_conv': os.environ.get('FBNET_JAX_CONV', ''),
          'xla_flags': os.environ.get('XLA_FLAGS', '')}


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):  # private API: assume started
    return True


def backend_name(runtime: str = 'jax') -> str:
  """What a device file measured here with ``runtime`` records as its
  ``backend`` (and default names carry): JAX's default backend, or
  ``onnxruntime_cpu``."""
  return jax.default_backend() if runtime == 'jax' else 'onnxruntime_cpu'


# What a device file written before a measuring option existed was
# measured with.
_FILE_DEFAULTS = {'runtime': 'jax', 'statistic': 'median', 'cpu_cores': 0,
                  'onnx_threads': 0}


def file_setting(device, field: str):
  """A measuring setting a device file records (``runtime``, ``statistic``,
  ``cpu_cores``, ``batch_size``, ``device_kind``...) as a Python value;
  for a file written before the option existed, its default then; None if
  the file does not record it."""
  if field in device.meta:
    return device.meta[field].item()
  return _FILE_DEFAULTS.get(field)


def device_kind(runtime: str = 'jax') -> str:
  """What a device file measured here with ``runtime`` records as its
  ``device_kind``: JAX's name of the first local device, or the CPU's."""
  if runtime == 'jax':
    return jax.devices()[0].device_kind
  return platform.processor() or platform.machine()


def _spread(timings) -> np.ndarray:
  return np.array([(np.percentile(t, 75) - np.percentile(t, 25)) /
                   np.median(t) for t in timings])


def measure_archs_in_fresh_process(archs: np.ndarray, config: MeasureConfig,
                                   **kwargs):
  """:func:`measure_archs` in a new Python process (``spawn``), same result.

  The child starts with nothing compiled and no memory held by earlier work
  (a search, other measurements) of this process; the environment
  (``JAX_PLATFORMS``, ``XLA_FLAGS``) is inherited, and so is this process's
  persistent compilation cache (:mod:`fbnet_jax.compilation_cache`), if it
  has one: the reference architectures, timed in every session, then
  compile once per machine, and a network measured again loads its
  executable instead of compiling it.
  """
  ctx = multiprocessing.get_context('spawn')
  with futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
    job = pool.submit(_measure_in_child, np.asarray(archs), config,
                      compilation_cache.settings(), kwargs)
    try:
      return job.result()
    except futures.BrokenExecutor as e:
      # A Python error comes back as itself; this is the process dying
      # (a fatal XLA error, out of memory, killed), which a Pool would wait
      # for forever.
      raise RuntimeError(
          f'measure: the measuring process died before it returned ({e}); '
          'its own output above says why (XLA_FLAGS, memory, a signal).'
      ) from e


def _measure_in_child(archs, config, cache, kwargs):
  # Another JAX process (the parent) may hold an accelerator: allocate on
  # demand rather than 75% of its memory up front.
  os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  compilation_cache.restore(cache)
  return measure_archs(archs, config, pin_client=True, **kwargs)
