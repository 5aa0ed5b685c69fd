"""FBNet DNAS on ImageNet (the paper's setting: input 224, stem stride 2).

    python -m experiments.search --config=configs/fbnet_imagenet.py --workdir=runs/fbnet_in \
        --config.latency.device_file=my_phone.npz --config.latency.target_ms=30

The lookup tables are for the CIFAR macro network, so the latency comes from
the meta-learned predictor adapted to a device file measured on the
ImageNet-setting networks (experiments.measure writes one). Needs
imagenet2012 prepared for tfds. Data-parallel over all local devices.
"""

from configs import search_common


def get_config():
  c = search_common.base_config()
  c.macro = 'imagenet'
  c.data.name = 'imagenet2012'
  c.data.image_size = 224
  c.batch_size = 256
  c.epochs = 90
  c.optim.weight_lr = 0.1 * c.batch_size / 256
  c.latency.source = 'predictor'
  c.latency.device = ''
  c.latency.device_file = ''  # required: a device file of this macro setting
  c.latency.target_ms = 30.0
  c.retrain.batch_size = 256
  c.retrain.epochs = 360
  c.retrain.lr = 0.1
  c.retrain.weight_decay = 4e-5
  return c
