"""The project's error for bad input, and checks of numeric settings."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence


class InputError(ValueError):
  """A setting, file or workdir given to a run that does not fit it.

  The message starts with what it refuses (the file, ``config.<field>`` or
  ``--flag``) and says what was expected; the commands print it as one
  line, not a traceback (``experiments/cli.py``). The project's specific
  errors (a bad architecture, device file or latency setting) subclass it.
  """


def and_list(names) -> str:
  """``'fbnet, ofa and nasbench201'``: names for a message, in order."""
  names = [str(n) for n in names]
  return (', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1
          else ''.join(names))


class Bound(NamedTuple):
  """The values a numeric ``config.<field>`` may take (:func:`check_bounds`).

  Attributes:
    field: dotted path below the config, e.g. ``'search.tau_decay'``.
    low, high: the interval's ends (None: unbounded).
    open_low, open_high: whether that end itself is excluded.
    integer: whole numbers only.
    none_ok: None is allowed (the setting's default then applies).
  """
  field: str
  low: Optional[float] = None
  high: Optional[float] = None
  open_low: bool = False
  open_high: bool = False
  integer: bool = False
  none_ok: bool = False

  def admits(self, value: Any) -> bool:
    if value is None:
      return self.none_ok
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return False
    if self.integer and not float(value).is_integer():
      return False
    if not math.isfinite(value):
      return False
    if self.low is not None and (value < self.low or
                                 (self.open_low and value == self.low)):
      return False
    return self.high is None or (value < self.high or
                                 (not self.open_high and value == self.high))

  def expected(self) -> str:
    kind = 'a whole number' if self.integer else 'a number'
    if self.low is not None and self.high is not None:
      text = (f'{kind} in {"(" if self.open_low else "["}{self.low:g}, '
              f'{self.high:g}{")" if self.open_high else "]"}')
    elif self.low is not None:
      text = f'{kind} {">" if self.open_low else ">="} {self.low:g}'
    elif self.high is not None:
      text = f'{kind} {"<" if self.open_high else "<="} {self.high:g}'
    else:
      text = f'{kind} (finite)'
    return text + (' or None' if self.none_ok else '')

  def check(self, value: Any, prefix: str = 'config.') -> None:
    """An :class:`InputError` naming ``prefix + field`` unless
    :meth:`admits` ``value``."""
    if not self.admits(value):
      raise InputError(f'{prefix}{self.field}: expected {self.expected()}, '
                       f'got {value!r}.')


def check_bounds(config, bounds: Sequence[Bound],
                 prefix: str = 'config.') -> None:
  """An :class:`InputError` for the first ``config.<field>`` out of its
  bound; a field the config does not have is not checked. ``config``: a
  ConfigDict or a dict; ``prefix``: how the message names its fields."""
  for bound in bounds:
    node, found = config, True
    for key in bound.field.split('.'):
      if key not in node:
        found = False
        break
      node = node[key]
    if found:
      bound.check(node, prefix)
