"""The row-block distributed matrix: a :class:`workbench.data.DistributedArray` with transfer facts.

Rank r holds rows ``bounds[r]`` of the matrix in the engine store (:mod:`workbench.engine_store`);
the handle lives in the notebook, is listed by ``%wb status`` and comes back to dask with
:meth:`RowMatrix.to_dask`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench import _timeouts
from workbench.data import DistributedArray

if TYPE_CHECKING:
    import dask.array as da


__all__ = ["RowMatrix", "is_row_matrix"]


@dataclass
class RowMatrix(DistributedArray):
    """A matrix split by rows over the ranks, with how it got there.

    ``pushed_bytes`` went from the notebook process to the engines, ``fetched_bytes``
    the engines pulled straight from dask workers; ``source`` says which path was taken.
    """

    source: str = "numpy"
    pushed_bytes: int = 0
    fetched_bytes: int = 0
    chunks_moved: int = 0

    def to_dask(self, *, timeout: float | None = _timeouts.TRANSFER) -> da.Array:
        """A dask array chunked by the row blocks; each chunk is pulled from its rank lazily
        (waiting at most ``timeout`` seconds for it; None: no limit)."""
        from workbench.linalg._gather import to_dask

        return to_dask(self, timeout=timeout)

    def describe(self) -> str:
        """One line for ``%wb status``."""
        size = f"{self.nbytes / 2**20:.1f} MiB"
        if self.pushed_bytes or self.fetched_bytes:
            size += f" moved in {self.seconds:.2f} s, {self.throughput / 1e9:.2f} GB/s"
        return f"{super().describe()} (linalg, from {self.source}, {size})"


def is_row_matrix(x: Any) -> bool:
    """True when ``x`` is a handle made by :func:`workbench.linalg.scatter` or
    ``pool.scatter``."""
    return isinstance(x, DistributedArray)
