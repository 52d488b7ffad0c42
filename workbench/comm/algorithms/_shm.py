"""Node shared-memory allreduce through an MPI-3 shared window.

Every rank copies its input into its slot of a window all ranks of the node can
read, a barrier, each rank reduces its slice of all slots (numba) into a result
row, a barrier, every rank copies the result out. Messages larger than the chunk
size go through in chunks. Two alternating halves of the window make one more
barrier per chunk unnecessary: a rank still copying out of half A cannot be
overwritten before everyone has entered the next chunk, which uses half B.
The window is cached per node communicator, grows when needed and is freed at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

import numpy as np
from mpi4py import MPI

from workbench import _timeouts
from workbench.comm._config import ENV_ALGO
from workbench.comm._topology import topology
from workbench.comm.algorithms._base import Algorithm, block_bounds, take_input
from workbench.comm.kernels import OP_CODES, reduce_rows
from workbench.errors import InvalidValueError

__all__ = ["ShmAlgorithm", "shm_allreduce"]

CHUNK_BYTES = 16 << 20  # per-rank slot size cap; bounds the window at 2 (p+1) * 16 MiB
_ALIGN = 64


class _Window:
    """One shared window of ``2 * (p + 1)`` slots of ``slot_bytes`` on a node comm."""

    def __init__(self, node: Any, slot_bytes: int) -> None:
        p = node.Get_size()
        self.node = node
        self.slot_bytes = slot_bytes
        total = 2 * (p + 1) * slot_bytes
        self.win = MPI.Win.Allocate_shared(total if node.Get_rank() == 0 else 0, 1, comm=node)
        mem, _ = self.win.Shared_query(0)
        self.raw = np.frombuffer(mem.cast("B"), dtype=np.uint8, count=total)
        self.win.Lock_all()
        self.parity = 0

    def rows(self, dtype: np.dtype, half: int) -> np.ndarray:
        """Half ``half`` of the window as ``(p + 1, slot_elems)`` of ``dtype``."""
        p1 = self.node.Get_size() + 1
        start = half * p1 * self.slot_bytes
        block = self.raw[start : start + p1 * self.slot_bytes]
        return block.view(dtype).reshape(p1, self.slot_bytes // np.dtype(dtype).itemsize)

    def free(self) -> None:
        self.win.Unlock_all()
        self.win.Free()


_log = logging.getLogger(__name__)
_lock = threading.Lock()
_windows: dict[int, _Window] = {}


def _window(node: Any, nbytes: int) -> _Window:
    need = min(max(nbytes, _ALIGN), CHUNK_BYTES)
    need = -(-need // _ALIGN) * _ALIGN
    key = node.handle
    with _lock:
        w = _windows.get(key)
    if w is not None and w.slot_bytes >= need:
        return w
    if w is not None:  # grow: same sizes on every rank, so every rank does this together
        w.free()
        need = min(max(need, 2 * w.slot_bytes), CHUNK_BYTES)
    w = _Window(node, need)
    with _lock:
        _windows[key] = w
    return w


def shm_allreduce(buf: np.ndarray, op: str, node: Any, src: np.ndarray | None = None) -> None:
    """Allreduce ``buf`` in place with ``op`` over ``node``, whose ranks must share memory;
    the local contribution is read from ``src`` when given."""
    p, r = node.Get_size(), node.Get_rank()
    if src is None:
        src = buf
    if p == 1 or buf.size == 0:
        take_input(buf, src)
        return
    w = _window(node, buf.nbytes)
    code = OP_CODES[op]
    cap = w.slot_bytes // buf.itemsize
    for start in range(0, buf.size, cap):
        m = min(cap, buf.size - start)
        rows = w.rows(buf.dtype, w.parity)
        w.parity ^= 1
        np.copyto(rows[r, :m], src[start : start + m])
        w.win.Sync()
        node.Barrier()
        w.win.Sync()
        bounds = block_bounds(m, p)
        lo, hi = bounds[r], bounds[r + 1]
        if hi > lo:
            reduce_rows(rows[p, lo:hi], rows[:p, lo:hi], code, 1)
        w.win.Sync()
        node.Barrier()
        w.win.Sync()
        np.copyto(buf[start : start + m], rows[p, :m])


class ShmAlgorithm(Algorithm):
    """Shared memory on one node only; ``ranks_per_node`` fakes nodes (for tests).

    A communicator that spans several nodes raises :class:`InvalidValueError` on every
    rank: ``hierarchical`` is shm inside nodes and a ring between them, and ``auto``
    picks it by itself across nodes.
    """

    name = "shm"
    team_safe = False  # creates shared windows on first use
    single_node = True
    shortcuts = False

    def __init__(self, ranks_per_node: int | None = None) -> None:
        self.ranks_per_node = ranks_per_node

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` over ``comm`` through the node's shared window (see the base class)."""
        if comm.Get_size() == 1:
            take_input(buf, src)
            return
        topo = topology(comm, self.ranks_per_node)
        if not topo.single_node:  # every rank sees the same node count: all raise together
            raise InvalidValueError(
                f"algorithm='shm' works on one node only, but this communicator of "
                f"{comm.Get_size()} ranks spans {topo.n_nodes} nodes; use "
                "algorithm='hierarchical' (shared memory inside each node, a ring between "
                f"nodes) or 'auto', which picks it across nodes (as argument or in {ENV_ALGO})"
            )
        shm_allreduce(buf, op, topo.node, src)


def _free_all(timeout: float = _timeouts.EXIT_CLEANUP) -> None:
    """Free the windows at exit, but only if every node rank is exiting too
    (``Win.Free`` is collective; a rank that died must not make the others hang)."""
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    with _lock:
        windows = list(_windows.values())
        _windows.clear()
    for w in windows:
        req = w.node.Ibarrier()
        deadline = time.monotonic() + timeout
        while not req.Test():
            if time.monotonic() > deadline:
                _log.debug("shm windows not freed: not every node rank exited in %gs", timeout)
                return  # leave it to MPI_Finalize / the process exit
            time.sleep(0.001)
        w.free()


atexit.register(_free_all)
