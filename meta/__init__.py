"""Meta-learned latency prediction (HELP) in pure functional JAX."""

import os

# The bundled meta-trained predictors, one folder per search space.
PRETRAINED_DIR = os.path.join(os.path.dirname(__file__), 'pretrained')
# The smallest latency a predictor reports (ms): a regression can go to or
# below zero for architectures far faster than its support.
MIN_PREDICTED_MS = 1e-3
