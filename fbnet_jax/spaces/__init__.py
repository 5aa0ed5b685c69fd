"""Search spaces, each one piece of data; ``get_space(name)`` is the registry."""

from __future__ import annotations

import functools

from fbnet_jax import errors
from fbnet_jax.spaces.base import ArchitectureError, SearchSpace, Unit
from fbnet_jax.spaces.fbnet import FBNetSpace
from fbnet_jax.spaces.nasbench201 import NASBench201Space
from fbnet_jax.spaces.ofa import OFASpace

SPACES = {
    'fbnet': FBNetSpace,
    'nasbench201': NASBench201Space,
    'ofa': OFASpace,
}


def get_space_class(name: str) -> type[SearchSpace]:
  """The class registered as ``name`` in :data:`SPACES`."""
  if name not in SPACES:
    raise errors.InputError(
        f'config.space (--space): unknown search space '
        f'{name!r}; expected one of {", ".join(sorted(SPACES))}.')
  return SPACES[name]


@functools.lru_cache(maxsize=None)
def get_space(name: str, **kwargs) -> SearchSpace:
  """``get_space('fbnet', macro='imagenet')`` -> a (cached) space instance."""
  return get_space_class(name)(**kwargs)


def space_for(name: str, macro: str = 'cifar') -> SearchSpace:
  """The space a config or flags name: ``macro`` (``config.macro``, FBNet's
  'cifar' or 'imagenet') applies to a space with macro networks
  (``SearchSpace.MACROS``) and is ignored by the others."""
  cls = get_space_class(name)
  return get_space(name, **({'macro': macro} if cls.MACROS else {}))


__all__ = ['ArchitectureError', 'SearchSpace', 'Unit', 'FBNetSpace',
           'NASBench201Space', 'OFASpace', 'SPACES', 'get_space',
           'get_space_class', 'space_for']
