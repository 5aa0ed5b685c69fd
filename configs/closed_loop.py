"""The closed loop on this machine (``experiments.closed_loop``).

The latency-control search (digits, FBNet CIFAR macro) with the adapted
predictor of this machine as its latency source; the device file is
measured at batch 1, float32, on the local backend if it does not exist.
Variant ``smoke``: a tiny loop for tests.
"""

import ml_collections

from configs import latency_control


def get_config(variant: str = ''):
  c = latency_control.get_config()
  c.latency.source = 'predictor'
  c.latency.device_file = 'runs/closed_loop/local_device.npz'
  c.latency.num_samples = 10
  c.measure = ml_collections.ConfigDict()
  c.measure.batch_size = 1
  c.measure.dtype = 'float32'
  c.measure.time_budget_s = 300.0
  c.measure.spread_bound = 0.05
  c.measure.seed = 0
  # 'jax': the local JAX backend; 'onnxruntime': every network exported to
  # ONNX and timed on ONNX Runtime's CPU provider (the onnx extra).
  c.measure.runtime = 'jax'
  # What latency_ms holds: each network's 'median' or 'min' over its timings;
  # and 0 (all cores) or k: every measuring session pinned to k cores. On
  # the 2-core VM, 'min' on 1 core moved 5.2% between sessions, the median
  # on both cores 10.5% (docs/closed_loop.md).
  c.measure.statistic = 'median'
  c.measure.cpu_cores = 0
  # Every measuring session in a new process: after a search, the same
  # networks timed 8-23% slower in the searching process (2-core VM).
  c.measure.fresh_process = True
  if variant == 'smoke':
    c.batch_size = 16
    c.epochs = 2
    c.steps_per_epoch = 4
    c.search.warmup_epochs = 1
    c.search.ops = ('k3_e1', 'skip')
    c.search.calib_batches = 1
    c.data.eval_limit = 16
    c.measure.time_budget_s = 5.0
    c.measure.fresh_process = False  # the test swaps in stand-in networks
  elif variant:
    raise ValueError(f'Unknown variant {variant!r}; expected smoke.')
  return c
