"""Fast parameter initialisation for large CPU-compiled supernets.

``model.init`` of a supernet with ~200 candidate blocks spends minutes on
CPU compiling Flax's random initialisers once per parameter shape. The
shapes come for free from ``jax.eval_shape``; this module fills them with
the same distributions as Flax's defaults, drawn with numpy:
kernels ``lecun_normal`` (truncated normal, variance 1 / fan_in), biases and
BN offsets zero, BN scales one (zero for the last BN of a residual branch,
whose module name ends in ``ZERO_INIT_SUFFIX``; see ``blocks.batch_norm``),
running means zero and variances one.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import scipy.stats

# Module-name suffix of BatchNorms whose scale starts at zero.
ZERO_INIT_SUFFIX = '_res'


def is_kernel(path) -> bool:
  """Whether the leaf at ``path`` (a ``tree_map_with_path`` key path) is a
  convolution or dense kernel: Flax's ``kernel``, or a supernet's fused
  ``<op>_pw1_kernel``, ``edge_<i>_<j>_..._kernel``."""
  name = str(getattr(path[-1], 'key', ''))
  return name == 'kernel' or name.endswith('_kernel')


def _lecun_normal(rng: np.random.Generator, shape) -> np.ndarray:
  """Conv kernels are 4-D ``[kh, kw, in, out]`` and dense ones 2-D; one more
  leading axis means layers stacked by ``nn.scan`` (not part of fan-in)."""
  if len(shape) in (4, 5):
    fan_in = int(np.prod(shape[-4:-1]))
  elif len(shape) in (2, 3):
    fan_in = shape[-2]
  else:
    raise ValueError(f'fast_init: kernel of unexpected shape {shape}.')
  # Flax's variance_scaling divides the std by the std of a unit normal
  # truncated to [-2, 2] so that the variance is exactly 1 / fan_in.
  std = np.sqrt(1.0 / fan_in) / .87962566103423978
  return (scipy.stats.truncnorm.rvs(-2, 2, size=shape, random_state=rng) *
          std).astype(np.float32)


def fast_init(model, seed: int, *args, **kwargs) -> dict[str, Any]:
  """Variables of ``model.init(key, *args, **kwargs)``, without compiling.

  Raises:
    ValueError: for a parameter whose default initialiser is unknown here.
  """
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), *args, **kwargs))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = getattr(path[-1], 'key', str(path[-1]))
    collection = getattr(path[0], 'key', '')
    if is_kernel(path):
      return _lecun_normal(rng, leaf.shape)
    if name in ('bias', 'mean'):
      return np.zeros(leaf.shape, leaf.dtype)
    if name == 'scale' and len(path) > 1 and getattr(
        path[-2], 'key', '').endswith(ZERO_INIT_SUFFIX):
      return np.zeros(leaf.shape, leaf.dtype)
    if name in ('scale', 'var'):
      return np.ones(leaf.shape, leaf.dtype)
    raise ValueError(f'fast_init: no default initialiser for {collection}/'
                     f'{jax.tree_util.keystr(path)}; use model.init.')

  return jax.tree_util.tree_map_with_path(fill, shapes)
