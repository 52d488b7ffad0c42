"""Search spaces: ``choice``, ``uniform``, ``loguniform``, ``randint``, ``grid`` and fixed values.

A space is a flat dict ``{name: domain or fixed value}``. Every domain is checked when it is
made, so a bad space fails in the notebook before anything runs on the engines.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "Choice",
    "Domain",
    "Grid",
    "LogUniform",
    "RandInt",
    "Space",
    "Uniform",
    "choice",
    "grid",
    "loguniform",
    "randint",
    "uniform",
]

_PLAIN = (type(None), bool, int, float, str)


def _number(value: Any, what: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidTypeError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _plain_values(values: Any, what: str) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise InvalidTypeError(f"{what} takes a list of values, got {values!r}")
    values = tuple(values)
    if not values:
        raise InvalidValueError(f"{what} needs at least one value, got an empty list")
    bad = [v for v in values if not isinstance(v, _PLAIN)]
    if bad:
        raise InvalidTypeError(
            f"{what} values must be None, bool, int, float or str (they are stored as JSON), "
            f"got {bad[0]!r}; pass a name and look the object up inside the objective"
        )
    if len(set(map(repr, values))) != len(values):
        raise InvalidValueError(f"{what} has duplicate values: {list(values)}")
    return values


class Domain:
    """Where one parameter's values come from."""

    discrete: bool = False

    def sample(self, rng: Any) -> Any:
        """One value drawn with the numpy Generator ``rng``."""
        raise NotImplementedError

    def values(self) -> tuple[Any, ...]:
        """Every value (discrete domains only)."""
        raise InvalidTypeError(f"{self!r} is continuous: it has no finite list of values")


@dataclass(frozen=True)
class Choice(Domain):
    """One of ``options``, uniformly."""

    options: tuple[Any, ...]
    discrete = True

    def sample(self, rng: Any) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def values(self) -> tuple[Any, ...]:
        return self.options


@dataclass(frozen=True)
class Grid(Choice):
    """Every one of ``options``: the grid strategy takes the product of all grid dimensions."""


@dataclass(frozen=True)
class Uniform(Domain):
    """A float uniform in ``[low, high)``."""

    low: float
    high: float

    def sample(self, rng: Any) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform(Domain):
    """A float whose logarithm is uniform in ``[log(low), log(high))``."""

    low: float
    high: float

    def sample(self, rng: Any) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class RandInt(Domain):
    """An integer in ``[low, high)`` (``high`` excluded, as in numpy and Ray Tune)."""

    low: int
    high: int
    discrete = True

    def sample(self, rng: Any) -> int:
        return int(rng.integers(self.low, self.high))

    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high))


def choice(options: Sequence[Any]) -> Choice:
    """A parameter taking one of ``options`` (None, bool, int, float or str)."""
    return Choice(_plain_values(options, "choice(...)"))


def grid(options: Sequence[Any]) -> Grid:
    """A parameter the grid strategy sweeps through entirely: every one of ``options`` (None,
    bool, int, float or str); random strategies pick one."""
    return Grid(_plain_values(options, "grid(...)"))


def _bounds(low: Any, high: Any, what: str) -> tuple[float, float]:
    lo, hi = _number(low, f"{what} low"), _number(high, f"{what} high")
    if lo >= hi:
        raise InvalidValueError(f"{what} needs low < high, got low={low!r}, high={high!r}")
    return lo, hi


def uniform(low: float, high: float) -> Uniform:
    """A float drawn uniformly from ``[low, high)``."""
    return Uniform(*_bounds(low, high, "uniform(low, high)"))


def loguniform(low: float, high: float) -> LogUniform:
    """A float drawn log-uniformly from ``[low, high)``; both bounds must be > 0."""
    lo, hi = _bounds(low, high, "loguniform(low, high)")
    if lo <= 0:
        raise InvalidValueError(
            f"loguniform(low, high) needs 0 < low < high (it takes logarithms), got low={low!r}; "
            "use uniform(...) for ranges that include 0 or negative values"
        )
    return LogUniform(lo, hi)


def randint(low: int, high: int) -> RandInt:
    """An integer drawn uniformly from ``[low, high)``."""
    for name, v in (("low", low), ("high", high)):
        if not isinstance(v, Integral) or isinstance(v, bool):
            raise InvalidTypeError(f"randint(low, high) takes integers, got {name}={v!r}")
    if low >= high:
        raise InvalidValueError(
            f"randint(low, high) needs low < high (high is excluded), got low={low}, high={high}"
        )
    return RandInt(int(low), int(high))


class Space:
    """A validated search space: domains to search and fixed values passed through.

    ``space`` is the dict given to ``sweep()``: ``{name: domain or fixed value}``, names
    non-empty strings, fixed values JSON values (numbers, strings, lists of them).
    """

    def __init__(self, space: Mapping[str, Any]) -> None:
        if not isinstance(space, Mapping):
            raise InvalidTypeError(
                f"space must be a dict of name -> wb.choice/uniform/... or a fixed value, "
                f"got {type(space).__name__}"
            )
        if not space:
            raise InvalidValueError("space is empty: give at least one parameter")
        for name, value in space.items():
            if not isinstance(name, str) or not name:
                raise InvalidTypeError(f"space keys must be non-empty strings, got {name!r}")
            if isinstance(value, Domain):
                continue
            if isinstance(value, Mapping):
                raise InvalidTypeError(
                    f"space[{name!r}] is a dict: nested spaces are not supported, flatten the "
                    f"names (e.g. '{name}.x')"
                )
            if not isinstance(value, _PLAIN) and not _is_plain_list(value):
                raise InvalidTypeError(
                    f"space[{name!r}] = {value!r} is neither a domain (wb.choice, wb.uniform, "
                    "wb.loguniform, wb.randint, wb.grid) nor a JSON value (number, str, list)"
                )
        self.items: dict[str, Any] = dict(space)

    @property
    def domains(self) -> dict[str, Domain]:
        """The searched parameters."""
        return {k: v for k, v in self.items.items() if isinstance(v, Domain)}

    @property
    def fixed(self) -> dict[str, Any]:
        """The parameters with one given value."""
        return {k: v for k, v in self.items.items() if not isinstance(v, Domain)}

    def sample(self, rng: Any) -> dict[str, Any]:
        """One configuration drawn with ``rng`` (a numpy Generator), in space order."""
        return {k: v.sample(rng) if isinstance(v, Domain) else v for k, v in self.items.items()}

    def grid_size(self) -> int:
        """Number of points of the full grid (every domain must be discrete)."""
        continuous = [k for k, v in self.domains.items() if not v.discrete]
        if continuous:
            raise InvalidValueError(
                f"the grid strategy needs discrete parameters, but {continuous} are continuous; "
                "use wb.grid/wb.choice/wb.randint for them, or strategy='random'"
            )
        return math.prod(len(v.values()) for v in self.domains.values())

    def grid_points(self) -> Iterator[dict[str, Any]]:
        """Every configuration of the grid, in a fixed order (last parameter fastest)."""
        self.grid_size()
        names = list(self.domains)
        for combo in itertools.product(*(self.domains[n].values() for n in names)):
            point = dict(zip(names, combo, strict=True))
            yield {k: point.get(k, v) for k, v in self.items.items()}

    def describe(self) -> str:
        """A stable text form, to tell whether a resumed sweep has the same space."""
        return repr(sorted(self.items.items()))


def _is_plain_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value)
