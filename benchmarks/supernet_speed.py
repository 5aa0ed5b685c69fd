r"""Supernet step speed: images/s and achieved FLOP/s of both DNAS steps.

    python -m benchmarks.supernet_speed                      # CPU-sized sweep
    python -m benchmarks.supernet_speed --macro=imagenet --batch_sizes=32,64,128 --ops=9
    python -m benchmarks.supernet_speed --torch               # + PyTorch eager, same supernet

For each (macro, batch size, number of candidate ops) it times the weight
step and the architecture step of :class:`fbnet_jax.searcher.Searcher`
(compilation excluded, median of ``--repeats``), and reports images/s and
the achieved FLOP/s, counting 3 x 2 x the supernet's multiply-accumulates
per image (forward + backward, every candidate computed). With ``--torch``
the same supernet in eager PyTorch (``benchmarks/torch_supernet.py``) is
timed in the same process on the same device; the ratio is printed.
Results go to ``--out`` as JSON.
"""

import importlib
import json
import os
import platform
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import benchmarks
from configs import search_common
from fbnet_jax import compilation_cache
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import spaces
from fbnet_jax.spaces import fbnet

_MACRO = flags.DEFINE_enum('macro', 'cifar', ['cifar', 'imagenet'], 'Macro.')
_BATCHES = flags.DEFINE_list('batch_sizes', ['16', '32', '64'], 'Batches.')
_OPS = flags.DEFINE_list('ops', ['1', '3', '9'], 'Numbers of candidates '
                         '(the first N of k3_e1, skip, k5_e6, k3_e3, ...).')
_IMAGE = flags.DEFINE_integer('image_size', 0, '0: the macro input size.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed steps per setting.')
_TORCH = flags.DEFINE_bool('torch', False, 'Also time PyTorch eager.')
_OUT = flags.DEFINE_string('out', 'runs/supernet_speed.json', 'Result file.')

# An order that mixes cheap and expensive candidates as N grows.
OP_ORDER = ('k3_e1', 'skip', 'k5_e6', 'k3_e3', 'k5_e1_g2', 'k3_e6', 'k5_e3',
            'k3_e1_g2', 'k5_e1')


def supernet_macs(macro: str, ops, image_size: int) -> float:
  """Multiply-accumulates per image of a supernet with candidates ``ops``."""
  space = spaces.get_space('fbnet', macro=macro)
  fixed, table = space.flops_table()
  cols = [fbnet.OP_NAMES.index(o) for o in ops]
  scale = (image_size / space.macro.input_size) ** 2
  return (fixed + table[:, cols].sum()) * scale


def time_jax(macro, ops, batch, image_size, repeats):
  config = search_common.base_config()
  config.macro = macro
  config.data.name = 'digits'  # only its metadata is used
  config.data.image_size = image_size
  config.batch_size = batch
  config.search.ops = tuple(ops)
  config.latency.source = 'lut' if macro == 'cifar' else 'predictor'
  config.latency.device = 'raspi4'
  searcher = searcher_lib.Searcher(config)
  state = searcher.init_state()
  rng = np.random.default_rng(0)
  batch_data = jax.tree.map(searcher.put_batch, {
      'image': rng.normal(size=(batch, image_size, image_size, 3)).astype(
          np.float32),
      'label': rng.integers(0, 10, batch).astype(np.int32)})
  tau, target = jnp.asarray(1.0), jnp.asarray(20.0)
  out = {}
  for kind in ('weight', 'arch'):
    step = searcher.weight_step if kind == 'weight' else searcher.arch_step
    t0 = time.perf_counter()
    state, m = step(state, batch_data, tau, target)
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      state, m = step(state, batch_data, tau, target)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
    out[kind] = dict(first_call_s=first, step_s=float(np.median(times)))
  return out


def main(argv):
  del argv
  if _TORCH.value:  # before any timing: PyTorch is not a dependency
    try:
      importlib.import_module('torch')
    except ImportError as e:
      raise SystemExit('--torch needs PyTorch, which fbnet-jax does not '
                       'install: pip install torch') from e
  compilation_cache.enable()
  image = _IMAGE.value or fbnet.MACROS[_MACRO.value].input_size
  rows = []
  for n in map(int, _OPS.value):
    ops = OP_ORDER[:n]
    for batch in map(int, _BATCHES.value):
      res = time_jax(_MACRO.value, ops, batch, image, _REPEATS.value)
      flop = 6 * supernet_macs(_MACRO.value, ops, image) * batch
      row = dict(macro=_MACRO.value, image_size=image, num_ops=n,
                 batch_size=batch)
      for kind, r in res.items():
        row[f'{kind}_step_s'] = r['step_s']
        row[f'{kind}_images_per_s'] = batch / r['step_s']
        row[f'{kind}_tflops'] = flop / r['step_s'] / 1e12
        row[f'{kind}_first_call_s'] = r['first_call_s']
      if _TORCH.value:
        from benchmarks import torch_supernet  # pylint: disable=g-import-not-at-top
        t = torch_supernet.time_steps(_MACRO.value, ops, batch, image,
                                      _REPEATS.value)
        for kind in ('weight', 'arch'):
          row[f'torch_{kind}_images_per_s'] = batch / t[kind]
          row[f'{kind}_speedup_vs_torch'] = t[kind] / row[f'{kind}_step_s']
      print(json.dumps(row), flush=True)
      rows.append(row)
      _write(rows)  # after every row: a long sweep cut short keeps its rows


def _write(rows):
  result = {'machine': f'{platform.node()}: {jax.devices()[0].device_kind} '
                       f'x{jax.device_count()} ({jax.default_backend()}), '
                       f'{os.cpu_count()} CPUs',
            'rows': rows}
  benchmarks.write_json(_OUT.value, result)


if __name__ == '__main__':
  app.run(main)
