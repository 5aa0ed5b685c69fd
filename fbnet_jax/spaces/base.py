"""A search space as one piece of data.

Every space in this project is described the same way: a list of searchable
*units* (a layer of FBNet, a block slot or the input resolution of OFA, an
edge of a NAS-Bench-201 cell), each with its own tuple of candidate choices.
A discrete architecture is an int array ``[num_units]`` of choice indices.
A *soft* architecture is a float array ``[num_units, max_choices]`` of
probabilities (rows sum to one over each unit's valid choices), which is what
the supernet's Gumbel-softmax produces and what the latency sources
(lookup tables, predictors) accept.

Space-specific knowledge (macro network, FLOPs, validity rules, native
formats of the bundled latency data) lives in one file per space, which
subclasses :class:`SearchSpace`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Sequence

import numpy as np

from fbnet_jax import errors


class ArchitectureError(errors.InputError):
  """An architecture that does not belong to its search space."""


def check_whole(values, where: str) -> None:
  """Choice indices (or OFA's native values) must be whole numbers: a float
  array of whole values passes (8.0); a fractional value (8.9, which a cast
  would truncate to another choice), a non-finite one or a non-numeric
  array is an ArchitectureError naming the first."""
  values = np.asarray(values)
  if np.issubdtype(values.dtype, np.integer):
    return
  if not np.issubdtype(values.dtype, np.floating):
    raise ArchitectureError(f'{where}: expected whole numbers, got an '
                            f'array of {values.dtype}.')
  bad = np.argwhere(~np.isfinite(values) | (np.mod(values, 1) != 0))
  if len(bad):
    first = tuple(int(i) for i in bad[0])
    raise ArchitectureError(
        f'{where}: expected whole numbers, got {values[first]} at '
        f'[{", ".join(map(str, first))}].')


@dataclasses.dataclass(frozen=True)
class Unit:
  """One searchable position of a space.

  Attributes:
    name: short identifier, e.g. ``"layer3"`` or ``"resolution"``.
    choices: names of the candidate choices, e.g. ``("k3_e1", ..., "skip")``.
  """
  name: str
  choices: tuple[str, ...]

  @property
  def num_choices(self) -> int:
    return len(self.choices)


class SearchSpace(abc.ABC):
  """Base class: the units, and everything derived from them generically."""

  #: Registry name (``fbnet``, ``ofa``, ``nasbench201``).
  name: str = ''
  #: Names of the macro networks the space's units sit in (``config.macro``;
  #: FBNet's 'cifar' and 'imagenet'), for a space whose constructor takes
  #: ``macro``; empty for a space with one network.
  MACROS: tuple[str, ...] = ()

  @property
  def macro_name(self) -> str:
    """This instance's macro network (one of ``MACROS``); '' if none."""
    return ''

  def __init__(self, units: Sequence[Unit]):
    self.units = tuple(units)
    self.num_units = len(self.units)
    self.max_choices = max(u.num_choices for u in self.units)
    self.num_choices = np.array([u.num_choices for u in self.units], np.int32)
    # choice_mask[u, c] is True where choice c exists for unit u.
    self.choice_mask = (
        np.arange(self.max_choices)[None, :] < self.num_choices[:, None])

  # ------------------------------------------------------------------ checks
  def validate(self, arch, *, where: str = 'architecture') -> np.ndarray:
    """Returns ``arch`` as int32 ``[num_units]``, or raises ArchitectureError.

    Args:
      arch: a sequence of choice indices, or of choice names.
      where: what to call the architecture in the error message (a file and
        row, say), so that the user can find it.
    """
    arch = self._as_indices(arch, where)
    if arch.shape != (self.num_units,):
      raise ArchitectureError(
          f'{where}: a {self.name} architecture has {self.num_units} units, '
          f'got shape {arch.shape}.')
    bad = np.nonzero((arch < 0) | (arch >= self.num_choices))[0]
    if bad.size:
      u = int(bad[0])
      raise ArchitectureError(
          f'{where}: unit {u} ({self.units[u].name}) has choice index '
          f'{int(arch[u])}; expected 0..{self.num_choices[u] - 1} '
          f'({", ".join(self.units[u].choices)}).')
    arch = arch.astype(np.int32)
    self._check_constraints(arch, where)
    return arch

  def validate_batch(self, archs, *, where: str = 'architectures') -> np.ndarray:
    """Validates ``[N, num_units]`` rows; the error names a bad row: the
    first with a choice index out of range if any row has one, else the
    first that breaks the space's own rules (OFA's depth, for one)."""
    archs = np.asarray(archs)
    if archs.ndim != 2 or archs.shape[1] != self.num_units:
      raise ArchitectureError(
          f'{where}: expected an array [N, {self.num_units}] of {self.name} '
          f'choice indices, got shape {archs.shape}.')
    check_whole(archs, where)
    # Range-checked before the int32 cast, which wraps 2**32 + k to k.
    bad = (archs < 0) | (archs >= self.num_choices[None])
    if bad.any():
      row = int(np.nonzero(bad.any(1))[0][0])
      self.validate(archs[row], where=f'{where}, row {row}')
    archs = archs.astype(np.int32)
    for row in self._constraint_violations(archs):
      self.validate(archs[row], where=f'{where}, row {row}')
    return archs

  def _as_indices(self, arch, where: str) -> np.ndarray:
    arch = list(arch) if not isinstance(arch, np.ndarray) else arch
    if len(arch) and isinstance(arch[0], str):
      if len(arch) != self.num_units:
        raise ArchitectureError(
            f'{where}: a {self.name} architecture has {self.num_units} units, '
            f'got {len(arch)} names.')
      out = []
      for u, (unit, op) in enumerate(zip(self.units, arch)):
        if op not in unit.choices:
          raise ArchitectureError(
              f'{where}: unit {u} ({unit.name}) has no choice {op!r}; '
              f'expected one of {", ".join(unit.choices)}.')
        out.append(unit.choices.index(op))
      return np.asarray(out, np.int32)
    arch = np.asarray(arch)
    check_whole(arch, where)
    if np.issubdtype(arch.dtype, np.unsignedinteger):
      return arch  # int64 would wrap values >= 2**63 to negative ones
    return arch.astype(np.int64)  # int32 once range-checked

  def _check_constraints(self, arch: np.ndarray, where: str) -> None:
    """Space-specific validity rules beyond index ranges (OFA depth)."""

  def _constraint_violations(self, archs: np.ndarray) -> np.ndarray:
    """Rows of ``archs`` that break the space-specific rules."""
    return np.zeros((0,), np.int64)

  def valid_rows(self, archs) -> np.ndarray:
    """bool ``[N]``: which rows of in-range ``archs`` keep the
    space-specific rules (all of them, except in OFA)."""
    archs = np.atleast_2d(np.asarray(archs))
    ok = np.ones(len(archs), bool)
    ok[self._constraint_violations(archs)] = False
    return ok

  def allowed_choices(self, mask, fixed=None) -> np.ndarray:
    """``[U, C]`` bool: the choices of ``mask`` that are valid in this
    space, with fixed units (``fixed [U, C]``, e.g. OFA's resolution)
    pinned to their one choice."""
    allowed = np.asarray(mask, bool) & self.choice_mask
    if fixed is not None:
      rows = fixed.sum(-1) > 0
      allowed[rows] = fixed[rows] > 0
    return allowed

  def make_valid(self, archs) -> np.ndarray:
    """The space's repair of in-range rows (OFA: every block after a
    stage's first skipped one is skipped too); valid rows are unchanged."""
    return self._repair(np.atleast_2d(np.asarray(archs, np.int32)), None)

  def most_probable(self, log_probs) -> np.ndarray:
    """The most probable valid architecture ``[U]`` under independent
    per-unit ``log_probs [U, C]`` (disallowed choices ``-inf``): the
    argmax, where every argmax is valid."""
    return np.argmax(np.asarray(log_probs), -1).astype(np.int32)

  # ---------------------------------------------------------------- helpers
  def names(self, arch) -> list[str]:
    """Choice names of a (valid) architecture."""
    arch = self.validate(arch)
    return [unit.choices[c] for unit, c in zip(self.units, arch)]

  def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` architectures drawn uniformly per unit (then made valid)."""
    u = rng.random((n, self.num_units))
    archs = np.floor(u * self.num_choices[None]).astype(np.int32)
    return self._repair(archs, rng)

  def sample_allowed(self, rng: np.random.Generator, n: int,
                     allowed: np.ndarray) -> np.ndarray:
    """``n`` architectures from the space's own sampler, each unit's choice
    redrawn uniformly among ``allowed [U, C]`` (bool, a non-empty row per
    unit) where it is not allowed.

    For a space that samples uniformly per unit (FBNet, NAS-Bench-201) that
    is each allowed choice uniform per unit, drawn directly (the random
    stream of every stored evolve result); for OFA it is OFA's sampler
    (kernel, expansion and depth uniform per stage). Uniform per-unit
    variables would skip a stage's optional blocks with probability 1/10
    each, giving depth 4 in 81% of stages.
    """
    allowed = np.asarray(allowed, bool)
    units = np.arange(self.num_units)
    counts = allowed.sum(-1)
    if allowed.shape != (self.num_units, self.max_choices) or not counts.all():
      raise errors.InputError(
          f'{self.name}: allowed choices must be a [{self.num_units}, '
          f'{self.max_choices}] mask with at least one choice per unit; got '
          f'shape {allowed.shape}, units without a choice '
          f'{np.nonzero(counts == 0)[0].tolist()}.')
    # table[u, k]: the k-th allowed choice of unit u.
    table = np.argsort(~allowed, axis=-1, kind='stable')
    if type(self).sample is SearchSpace.sample:
      k = np.floor(rng.random((n, self.num_units)) * counts).astype(np.int64)
      return self._repair(table[units[None], k].astype(np.int32), None)
    archs = self.sample(rng, n).astype(np.int64)
    bad = ~allowed[units[None], archs]
    if bad.any():
      k = np.floor(rng.random(archs.shape) * counts).astype(np.int64)
      archs = np.where(bad, table[units[None], k], archs)
    return self._repair(archs.astype(np.int32), None)

  def sample_spread(self, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` architectures spanning the space's range of cost.

    Architecture ``i`` takes each unit's cheapest choice (fewest MACs, see
    :meth:`cheapest_choices`) with probability ``i / n`` and a uniform one
    otherwise (then made valid): from uniform architectures to nearly the
    cheapest. A few-shot support set drawn this way covers the fast end
    of the space, where uniform samples never go (FBNet: few skips).
    """
    archs = self.sample(rng, n)
    cheap = rng.random(archs.shape) < (np.arange(n) / n)[:, None]
    archs = np.where(cheap, self.cheapest_choices()[None], archs)
    return self._repair(archs.astype(np.int32), rng)

  def cheapest_choices(self) -> np.ndarray:
    """Per unit, the choice with the fewest MACs, every other unit at its
    first choice (made valid)."""
    base = self._repair(np.zeros((1, self.num_units), np.int32), None)[0]
    out = np.zeros(self.num_units, np.int32)
    for u, unit in enumerate(self.units):
      costs = []
      for c in range(unit.num_choices):
        arch = base.copy()
        arch[u] = c
        costs.append(self.flops(self._repair(arch[None], None)[0]))
      out[u] = int(np.argmin(costs))
    return out

  def _repair(self, archs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Maps uniformly drawn rows onto valid architectures (identity here)."""
    del rng
    return archs

  def one_hot(self, archs) -> np.ndarray:
    """``[..., num_units]`` ints -> ``[..., num_units, max_choices]`` floats."""
    archs = np.asarray(archs)
    return np.eye(self.max_choices, dtype=np.float32)[archs]

  def uniform_probs(self) -> np.ndarray:
    """The soft architecture that weights every valid choice equally."""
    return (self.choice_mask / self.num_choices[:, None]).astype(np.float32)

  # ------------------------------------------------------- cost accounting
  @abc.abstractmethod
  def flops(self, arch) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (NAS convention)."""

  @abc.abstractmethod
  def params(self, arch) -> float:
    """Number of trainable parameters (convolutions, linear layers, BN)."""

  @abc.abstractmethod
  def unit_features(self) -> tuple[np.ndarray, tuple[str, ...]]:
    """Analytic per-(unit, choice) features for the latency predictor.

    Returns:
      features: float32 ``[num_units, max_choices, F]``: what executing that
        choice at that position costs (MACs, memory traffic, parameters, op
        kind...), scaled to order one; zero where the choice does not exist.
      names: the F feature names.
    """

  @functools.cached_property
  def _unit_costs(self) -> np.ndarray:
    return self.unit_features()[0]

  def cost_features(self, archs) -> np.ndarray:
    """Whole architectures' analytic costs: :meth:`unit_features` summed
    over the units, float32 ``[N, F]`` (additive in the choices, and shared
    by every unit: a choice's cost at a position no measurement has seen
    follows from its MACs, parameters and activations)."""
    archs = np.atleast_2d(np.asarray(archs, np.int64))
    return self._unit_costs[np.arange(self.num_units), archs].sum(axis=1)

  def path_features(self, archs) -> np.ndarray:
    """Features of how the choices combine, beyond one choice per unit,
    for accuracy predictors: float32 ``[N, P]`` (none by default, P = 0).
    """
    return np.zeros((len(np.atleast_2d(archs)), 0), np.float32)

  # --------------------------------------------------------- data interface
  def from_data(self, npz) -> np.ndarray:
    """Architectures ``[N, num_units]`` from a bundled file or device file."""
    return np.asarray(npz['arch'])  # validate_batch range-checks, casts

  def data_keys(self) -> tuple[str, ...]:
    """Keys that hold the architectures in a device file of this space."""
    return tuple(self.data_shapes())

  def data_shapes(self) -> dict[str, tuple[int, ...]]:
    """Each data key's shape per architecture (integer arrays)."""
    return {'arch': (self.num_units,)}

  def to_data(self, archs: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :meth:`from_data`: arrays to store in a device file."""
    return {'arch': np.asarray(archs, np.int8)}
