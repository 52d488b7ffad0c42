"""Distributed routines as plugins: one function that runs on every rank with its row block.

::

    @wb.linalg.routine("colnorms")
    def colnorms(block, comm, *, ord=2):
        return np.sqrt(wb.allreduce((block**2).sum(axis=0)))

    wb.linalg.run("colnorms", D)

A routine gets this rank's block and the MPI communicator, reduces through
:func:`workbench.allreduce`, and returns what every rank agrees on (rank 0's value is
returned). Wrap a row-distributed output in :class:`Rows` to get a :class:`RowMatrix` back
instead of gathering it. Other handles passed as keyword arguments arrive as blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import engine_store
from workbench._util import new_key
from workbench.errors import InvalidValueError
from workbench.linalg._matrix import RowMatrix, is_row_matrix

if TYPE_CHECKING:
    from workbench.data import DistributedArray
    from workbench.pool import Pool

__all__ = ["Rows", "as_rows", "get_routine", "routine", "routines", "run"]

Routine = Callable[..., Any]
_ROUTINES: dict[str, Routine] = {}


@dataclass
class Rows:
    """Marks a routine's output as row-distributed: this rank's rows of the result."""

    block: np.ndarray


@dataclass(frozen=True)
class _Ref:
    key: str


@dataclass(frozen=True)
class _Stored:
    key: str
    shape: tuple[int, ...]
    dtype: str


def routine(name: str) -> Callable[[Routine], Routine]:
    """Register ``fn(block, comm, **kw)`` as the distributed routine ``name``."""
    if not isinstance(name, str) or not name:
        raise InvalidValueError(f"routine name must be a non-empty string, got {name!r}")

    def register(fn: Routine) -> Routine:
        _ROUTINES[name] = fn
        return fn

    return register


def routines() -> list[str]:
    """Names of the registered routines."""
    return sorted(_ROUTINES)


def get_routine(name: str | Routine) -> Routine:
    """The routine registered as ``name`` (a callable is returned as is)."""
    if callable(name):
        return name
    try:
        return _ROUTINES[name]
    except KeyError:
        raise InvalidValueError(
            f"unknown routine {name!r}; registered: {', '.join(routines())}. "
            "Register one with @wb.linalg.routine(name)"
        ) from None


def as_rows(A: Any, pool: Pool | None = None) -> tuple[DistributedArray, bool]:
    """``A`` as a handle (scattered to ``pool`` if it is an array), and whether it was
    scattered here (and should be freed after use)."""
    if is_row_matrix(A):
        A._check()
        return A, False
    from workbench.linalg._scatter import scatter

    return scatter(A, pool), True


def run(
    name: str | Routine,
    A: Any,
    *,
    pool: Pool | None = None,
    timeout: float | None = None,
    **kw: Any,
) -> Any:
    """Run routine ``name`` on every rank with its block of ``A``; return rank 0's result.

    ``A`` is a handle, or a dask/numpy array scattered to ``pool`` (default: the current
    pool) for the call and freed after. ``kw`` go to the routine (handles among them arrive
    as this rank's blocks). ``timeout`` bounds the wait for the routine in seconds (None:
    no limit). :class:`Rows` outputs come back as :class:`RowMatrix` handles.
    """
    fn = get_routine(name)
    D, temporary = as_rows(A, pool)
    try:
        args = {k: _ref(k, v, D) for k, v in kw.items()}
        out_key = new_key("result")
        results = D.pool.apply(_invoke, (fn, D.key, out_key, args), timeout=timeout)
        return _unwrap(results, D, getattr(fn, "__name__", str(name)))
    finally:
        if temporary:
            D.free()


def _ref(name: str, value: Any, D: DistributedArray) -> Any:
    if not is_row_matrix(value):
        return value
    value._check()
    if value.bounds != D.bounds:
        raise InvalidValueError(
            f"{name} is split over the ranks as {value.bounds} but the matrix as {D.bounds}: "
            f"scatter it with wb.linalg.scatter({name}, bounds=A.bounds)"
        )
    return _Ref(value.key)


def _invoke(fn: Routine, key: str, out_key: str, kw: dict[str, Any]) -> Any:
    """Engine: call the routine on this rank's block; keep :class:`Rows` outputs here."""
    from mpi4py import MPI

    block = engine_store.get(key)
    args = {k: engine_store.get(v.key) if isinstance(v, _Ref) else v for k, v in kw.items()}
    result = fn(block, MPI.COMM_WORLD, **args)
    count = iter(range(1_000_000))

    def keep(x: Any) -> Any:
        if not isinstance(x, Rows):
            return x
        k = f"{out_key}.{next(count)}"
        block = np.ascontiguousarray(x.block)
        engine_store.put(k, block)
        return _Stored(k, block.shape, block.dtype.str)

    if isinstance(result, tuple):
        return tuple(keep(x) for x in result)
    if isinstance(result, dict):
        return {k: keep(v) for k, v in result.items()}
    return keep(result)


def _unwrap(results: list[Any], D: DistributedArray, source: str) -> Any:
    """Rank 0's result with every :class:`_Stored` turned into a registered handle."""

    def handle(index: Any) -> Any:
        first = index(results[0])
        if not isinstance(first, _Stored):
            return first
        shapes = [index(r).shape for r in results]
        bounds, start = [], 0
        for s in shapes:
            bounds.append((start, start + s[0]))
            start += s[0]
        shape = (start, *first.shape[1:])
        dtype = np.dtype(first.dtype)
        out = RowMatrix(
            D.pool,
            first.key,
            int(np.prod(shape)) * dtype.itemsize,
            0.0,
            shape=shape,
            dtype=dtype,
            bounds=bounds,
            source=f"routine {source}",
        )
        D.pool.placed.add(first.key, out)
        return out

    head = results[0]
    if isinstance(head, tuple):
        return tuple(handle(lambda r, i=i: r[i]) for i in range(len(head)))
    if isinstance(head, dict):
        return {k: handle(lambda r, k=k: r[k]) for k in head}
    return handle(lambda r: r)
