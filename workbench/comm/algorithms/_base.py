"""The contract every allreduce algorithm implements, and what they share."""

from __future__ import annotations

import abc
import functools
import threading
from typing import Any, ClassVar

import numpy as np

from workbench.comm import kernels

__all__ = [
    "CAPABILITIES",
    "ELEMENTWISE",
    "Algorithm",
    "block_bounds",
    "scratch",
    "take_input",
]

#: op name -> kernel ``f(dst, src)`` combining ``src`` into ``dst`` elementwise.
ELEMENTWISE = {"sum": kernels.reduce_sum, "max": kernels.reduce_max, "min": kernels.reduce_min}


class Algorithm(abc.ABC):
    """An allreduce strategy: a plugin implements :meth:`reduce` and declares what it can do.

    ``reduce(buf, op, comm)`` reduces the contiguous 1-D ``buf`` in place across
    ``comm`` with ``op`` in ``("sum", "max", "min")`` (the mean is a sum followed by
    a division, done by the caller). When ``src`` is given, the local contribution is
    read from it and ``buf`` is only written (saves a copy for out-of-place calls).
    Every rank of ``comm`` must call with the same size, dtype and op; the result is
    bitwise identical on every rank.

    What the callers ask of an algorithm is declared as class attributes (every built-in
    algorithm sets each one; the defaults here are those of a plain point-to-point one):

    * ``name``: how users and the tuning table name it (``algorithm="ring"``).
    * ``team_safe``: it may run on an ``allreduce_async`` team's thread. False for those
      that create MPI shared-memory windows on first use: only the caller's thread may
      (windows made from several threads at once can deadlock MPI), so teams refuse them.
    * ``single_node``: it runs only when every rank of the communicator is on one node.
    * ``shortcuts``: ``allreduce`` may move the data its own way instead of calling
      :meth:`reduce`: a symmetric buffer reduced in place where it lies, a small message
      inside the mismatch check (the node's staging window, or the check's allgather), a
      fused list through a symmetric buffer. Only an algorithm that chooses per call
      (``auto``) says True; a fixed one runs as asked.
    """

    name: ClassVar[str] = ""
    team_safe: ClassVar[bool] = True
    single_node: ClassVar[bool] = False
    shortcuts: ClassVar[bool] = False

    @abc.abstractmethod
    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` in place over ``comm`` with ``op`` (reading ``src`` when given)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


#: The capability attributes of :class:`Algorithm` (each built-in algorithm declares them).
CAPABILITIES = ("name", "team_safe", "single_node", "shortcuts")


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
