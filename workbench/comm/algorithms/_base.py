"""The contract every allreduce algorithm implements, and what they share."""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

from workbench.comm import kernels

__all__ = ["ELEMENTWISE", "ROWWISE", "Algorithm", "block_bounds", "scratch", "take_input"]

#: op name -> kernel ``f(dst, src)`` combining ``src`` into ``dst`` elementwise.
ELEMENTWISE = {"sum": kernels.reduce_sum, "max": kernels.reduce_max, "min": kernels.reduce_min}
#: op name -> kernel ``f(dst, rows)`` reducing a stack of rows (one per rank) into ``dst``.
ROWWISE = {
    "sum": kernels.reduce_rows_sum,
    "max": kernels.reduce_rows_max,
    "min": kernels.reduce_rows_min,
}


class Algorithm:
    """An allreduce strategy.

    ``reduce(buf, op, comm)`` reduces the contiguous 1-D ``buf`` in place across
    ``comm`` with ``op`` in ``("sum", "max", "min")`` (the mean is a sum followed by
    a division, done by the caller). When ``src`` is given, the local contribution is
    read from it and ``buf`` is only written (saves a copy for out-of-place calls).
    Every rank of ``comm`` must call with the same size, dtype and op; the result is
    bitwise identical on every rank.
    """

    name: str = ""

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` in place over ``comm`` with ``op`` (reading ``src`` when given)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def take_input(buf: np.ndarray, src: np.ndarray | None) -> None:
    """Copy the local contribution ``src`` into ``buf`` (no-op when None or ``buf``)."""
    if src is not None and src is not buf:
        np.copyto(buf, src)


@functools.lru_cache(maxsize=4096)
def block_bounds(n: int, parts: int) -> tuple[int, ...]:
    """Start offsets of ``parts`` near-equal blocks of ``n`` elements, plus ``n`` (cached:
    the same sizes come back call after call)."""
    return tuple((n * k) // parts for k in range(parts + 1))


_local = threading.local()


def scratch(dtype: np.dtype, n: int, slot: int = 0) -> np.ndarray:
    """A reusable scratch array of ``n`` elements of ``dtype``, private to this thread.

    Grows when asked for more and is kept for the next call, so large messages
    do not allocate (and page-fault) on every call. ``slot`` selects independent
    buffers for algorithms that need two at once.
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    key = (np.dtype(dtype).str, slot)
    arr = pool.get(key)
    if arr is None or arr.size < n:
        arr = np.empty(max(n, 1), dtype=dtype)
        pool[key] = arr
    return arr[:n]
