"""DNAS over the MobileNetV3 / OFA space on ImageNet.

    python -m experiments.search --config=configs/ofa_imagenet.py --workdir=runs/ofa_in \
        --config.latency.device=titan_rtx_64 --config.latency.target_ms=20

Kernel {3,5,7} x expansion {3,4,6} per block slot, depth {2,3,4} per stage
as skippable slots; the input resolution is a config choice
(``data.image_size``, one of OFA's 128..224). Latency from the OFA
predictor adapted to the device (10 samples + references).
"""

from configs import search_common


def get_config():
  c = search_common.base_config()
  c.space = 'ofa'
  c.macro = ''
  c.data.name = 'imagenet2012'
  c.data.image_size = 224
  c.batch_size = 256
  c.epochs = 90
  c.latency.source = 'predictor'
  c.latency.device = 'titan_rtx_64'
  c.latency.target_ms = 20.0
  c.retrain.batch_size = 256
  c.retrain.epochs = 360
  c.retrain.weight_decay = 4e-5
  return c
