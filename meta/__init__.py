"""Meta-learned latency prediction (HELP) in pure functional JAX."""

import os

# The bundled meta-trained predictors, one folder per search space.
PRETRAINED_DIR = os.path.join(os.path.dirname(__file__), 'pretrained')
