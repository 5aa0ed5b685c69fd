"""FBNet DNAS on CIFAR-100: the bundled latency data's own setting.

    python -m experiments.search --config=configs/fbnet_cifar100.py --workdir=runs/fbnet_c100 \
        --config.latency.device=pixel3 --config.latency.target_ms=12

Needs CIFAR-100 prepared for tfds (see fbnet_jax/data.py's error message).
FBNet's schedule: 90 epochs, 10 of warm-up (weights only), temperature 5.0
annealed by 0.956 per epoch; weights on 80% of the training split, the
architecture on the other 20%.
"""

from configs import search_common


def get_config():
  c = search_common.base_config()
  c.data.name = 'cifar100'
  c.data.image_size = 32
  c.batch_size = 128
  c.epochs = 90
  c.retrain.epochs = 200
  return c
