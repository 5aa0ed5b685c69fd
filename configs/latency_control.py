"""Latency control: searches for 3 targets x the 4 lookup-table devices.

    python -m experiments.latency_control --config=configs/latency_control.py \
        --workdir=runs/latency_control --source=lut
    python -m experiments.latency_control ... --source=predictor --devices=raspi4,eyeriss,fpga

The quickstart's search (digits, FBNet CIFAR macro), shorter, with an
architecture step after every weight step and a stronger latency penalty;
the architecture is derived for the target (``search.derive``: the most
probable one within 2% by the search's own latency source) and scored with
the exact HW-NAS-Bench lookup table. All 12 searches share one compiled step
(the device's table is an argument of the step, not a constant).
"""

from configs import quickstart


def get_config():
  c = quickstart.get_config()
  c.batch_size = 16
  c.epochs = 4
  c.steps_per_epoch = 10
  c.search.warmup_epochs = 1
  c.search.arch_every = 1
  c.search.calib_batches = 5
  c.search.num_derived_samples = 0
  c.loss.lam = 5.0
  c.data.eval_limit = 64
  return c
