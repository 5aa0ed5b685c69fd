"""The closed loop on this machine (``experiments.closed_loop``).

The latency-control search (digits, FBNet CIFAR macro) with the adapted
predictor of this machine as its latency source; the device file is
measured at batch 1, float32, on the local backend if it does not exist
(``config.measure``, in ``configs/search_common.py``).
Variant ``smoke``: a tiny loop for tests.
"""

from configs import latency_control


def get_config(variant: str = ''):
  c = latency_control.get_config()
  c.latency.source = 'predictor'
  c.latency.device_file = 'runs/closed_loop/local_device.npz'
  c.latency.num_samples = 10
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
    c.measure.verify_sessions = 2
  elif variant:
    raise ValueError(f'Unknown variant {variant!r}; expected smoke.')
  return c
