"""Data placed on the ranks once and reused: row blocks of an array, or one object on every rank.

``pool.scatter(X)`` splits ``X`` by rows over the ranks (rank r gets one contiguous block,
sent zero-copy); ``pool.broadcast(obj)`` puts the same object on every rank. Engine code
reads its part with :func:`local`. Handles survive between cells and are listed by
``%wb status``; :meth:`DistributedArray.free` releases the memory on the engines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import engine_store
from workbench._timeouts import TRANSFER
from workbench._util import new_key
from workbench.errors import DataFreedError, InvalidValueError

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["Broadcast", "DistributedArray", "local", "row_bounds"]


def local(key: str | DistributedArray | Broadcast) -> Any:
    """On an engine: this rank's block of a scattered array, or the broadcast object."""
    return engine_store.get(key if isinstance(key, str) else key.key)


def row_bounds(n_rows: int, n_ranks: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ``[start, stop)`` row ranges, one per rank (first ranks get extras)."""
    base, extra = divmod(n_rows, n_ranks)
    bounds, start = [], 0
    for r in range(n_ranks):
        stop = start + base + (r < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


@dataclass
class _Placed:
    pool: Pool
    key: str
    nbytes: int
    seconds: float
    freed: bool = field(default=False, init=False)

    def free(self) -> None:
        """Release the engines' copies (safe to call twice)."""
        if self.freed:
            return
        self.freed = True
        self.pool.placed.remove(self.key)
        if not self.pool.stopped and not self.pool.dead_ranks():
            self.pool.view().apply_sync(engine_store.drop, self.key)

    @property
    def throughput(self) -> float:
        """Bytes per second of the transfer that placed the data."""
        return self.nbytes / self.seconds if self.seconds > 0 else float("inf")

    def _check(self) -> None:
        if self.freed:
            raise DataFreedError(f"{self.key} was freed; place the data again")


@dataclass
class DistributedArray(_Placed):
    """An array split by rows over the ranks: rank r holds rows ``bounds[r]``."""

    shape: tuple[int, ...] = ()
    dtype: np.dtype = field(default_factory=lambda: np.dtype("float64"))
    bounds: list[tuple[int, int]] = field(default_factory=list)

    def to_numpy(self) -> np.ndarray:
        """Gather every block into one array in the notebook (for small results)."""
        self._check()
        blocks = self.pool.view().apply_sync(engine_store.get, self.key)
        return np.concatenate(blocks, axis=0) if blocks else np.empty(self.shape, self.dtype)

    def describe(self) -> str:
        """One line for ``%wb status``."""
        dims = " x ".join(str(d) for d in self.shape)
        return f"{self.key}: {dims} {self.dtype} in {len(self.bounds)} row blocks"


@dataclass
class Broadcast(_Placed):
    """One object held by every rank."""

    kind: str = ""

    def describe(self) -> str:
        """One line for ``%wb status``."""
        return f"{self.key}: {self.kind} on every rank ({self.nbytes / 2**20:.1f} MiB each)"


def scatter_rows(pool: Pool, x: Any, *, key: str | None = None) -> DistributedArray:
    """Send ``x``'s rows to the ranks in contiguous blocks (see :meth:`Pool.scatter`)."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise InvalidValueError(
            "scatter needs an array with at least one dimension (rows), got a scalar"
        )
    key = key or new_key("array")
    bounds = row_bounds(arr.shape[0], pool.size)
    start = time.perf_counter()
    futures = [
        pool.view([rank]).apply_async(engine_store.put, key, np.ascontiguousarray(arr[lo:hi]))
        for rank, (lo, hi) in enumerate(bounds)
    ]
    for f in futures:
        f.get(timeout=TRANSFER)
    handle = DistributedArray(
        pool,
        key,
        int(arr.nbytes),
        time.perf_counter() - start,
        shape=tuple(arr.shape),
        dtype=arr.dtype,
        bounds=bounds,
    )
    pool.placed.add(key, handle)
    return handle


def broadcast(pool: Pool, obj: Any, *, key: str | None = None) -> Broadcast:
    """Put the same ``obj`` on every rank (see :meth:`Pool.broadcast`)."""
    key = key or new_key("object")
    start = time.perf_counter()
    sizes = pool.view().apply_sync(engine_store.put, key, obj)
    handle = Broadcast(
        pool, key, int(max(sizes, default=0)), time.perf_counter() - start, kind=type(obj).__name__
    )
    pool.placed.add(key, handle)
    return handle
