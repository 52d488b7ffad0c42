"""Small helpers shared across workbench's subpackages (no MPI, no pool, no widgets).

Setting parsers (``parse_bytes``, ``parse_bool``, ``parse_seconds``) name the setting and what
is allowed when a value is bad; ``format_ranks`` writes rank lists the way every message does;
``new_key`` names data placed on the engines; ``non_dominated`` finds a Pareto front (the
sweep's result and its widget both need it).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Sequence

from workbench.errors import InvalidValueError

__all__ = [
    "bad_setting",
    "engines",
    "format_ranks",
    "new_key",
    "non_dominated",
    "parse_bool",
    "parse_bytes",
    "parse_seconds",
]

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_BYTES_RE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)
_TRUE = ("1", "on", "true", "yes")
_FALSE = ("0", "off", "false", "no")


def bad_setting(name: str, value: object, allowed: str) -> InvalidValueError:
    """The error for setting ``name`` given ``value``: says what is allowed."""
    return InvalidValueError(f"{name}={value!r} is not valid; allowed: {allowed}")


def parse_bytes(name: str, value: str | int) -> int:
    """A positive byte count from ``123``, ``64MiB``, ``512k`` or ``1G``."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _BYTES_RE.match(str(value))
        if m is None:
            raise bad_setting(
                name, value, "a positive integer number of bytes, e.g. 4194304 or 4MiB"
            )
        n = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if n <= 0:
        raise bad_setting(name, value, "a positive integer number of bytes, e.g. 4194304 or 4MiB")
    return n


def parse_bool(name: str, value: str | bool) -> bool:
    """``on/off``, ``1/0``, ``true/false``, ``yes/no`` (any case)."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise bad_setting(name, value, "on/off, 1/0, true/false, yes/no")


def parse_seconds(name: str, value: str | float) -> float:
    """A positive number of seconds."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise bad_setting(name, value, "a positive number of seconds, e.g. 60 or 0.5") from None
    if not s > 0:
        raise bad_setting(name, value, "a positive number of seconds, e.g. 60 or 0.5")
    return s


def engines(n: int) -> str:
    """``"1 MPI engine"``, ``"4 MPI engines"``."""
    return f"{n} MPI engine{'' if n == 1 else 's'}"


def format_ranks(ranks: Iterable[int]) -> str:
    """Ranks as messages write them: ``[0, 1, 2]`` -> ``'0, 1, 2'``, ``[0, 1, 2, 3, 7]`` ->
    ``'0-3, 7'`` (runs of four or more become a range)."""
    parts: list[str] = []
    ordered = sorted(set(ranks))
    for _, run_ in itertools.groupby(enumerate(ordered), key=lambda t: t[1] - t[0]):
        run = [r for _, r in run_]
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 4 else [str(r) for r in run]
    return ", ".join(parts)


def new_key(prefix: str) -> str:
    """A fresh name for data placed on the engines, e.g. ``array-1f2e3d4c``."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_PARETO_BLOCK = 512  # rows compared at once: memory stays at block * n * objectives booleans


def non_dominated(points: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[bool]:
    """For each point (one value per objective), True if no other point dominates it: at
    least as good in every objective and better in one. ``maximize[k]`` says whether a
    larger value of objective ``k`` is better. Equal points do not dominate each other."""
    import numpy as np

    if not len(points):
        return []
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    scores = np.asarray(points, dtype=float) * signs  # larger is better everywhere
    keep = np.ones(len(scores), dtype=bool)
    for lo in range(0, len(scores), _PARETO_BLOCK):
        block = scores[lo : lo + _PARETO_BLOCK, None, :]  # (b, 1, k) against (1, n, k)
        geq = (scores[None, :, :] >= block).all(axis=2)
        gt = (scores[None, :, :] > block).any(axis=2)
        keep[lo : lo + _PARETO_BLOCK] = ~np.any(geq & gt, axis=1)
    return keep.tolist()
