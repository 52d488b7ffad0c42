"""Symmetric buffers: arrays in node-shared memory, reduced in place with no copies.

:func:`allocate` (``wb.comm.empty``; collective) gives every rank an array whose memory is
its row of one MPI-3 shared window per node. Every rank's array sits at the same place of
its row ("symmetric"), so ``allreduce(buf, out=buf)`` needs no staging: rank r reduces
elements ``[lo_r, hi_r)`` of every row in place and writes the result straight into every
row (about 2N bytes of memory traffic per rank, against about 5N for copy in, reduce,
copy out). Slices of a buffer work the same way when every rank passes the same slice.

Two flag waits in a node-shared control block replace the barriers (see
:mod:`workbench.comm._flags`): *arrive* (inputs ready, call headers visible) and *depart*
(nobody reads another row any more). The call header travels in the same control block, so
the mismatch check costs no collective; a rank that waits notices a rank that died (its
process is gone) and raises instead of hanging, and warns about ranks that are late.

Across nodes, rank k of each node reduces slice k of its node's rows, the partial results
go around a ring between the ranks with local index k on every node (one communicator per
"rail"), and the result is written to every row of the node; nodes with more ranks than the
smallest node leave their extra ranks out of the inter-node step.

No MPI call is made on the single-node path, so team threads (``allreduce_async``) can
reduce symmetric buffers: the windows are created at allocation, on the caller's thread.
"""

from __future__ import annotations

import atexit
import bisect
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from workbench import _spans, _timeouts
from workbench.comm import _flags, kernels
from workbench.comm._config import settings
from workbench.comm._convert import is_torch
from workbench.comm._topology import topology
from workbench.comm._window import NodeWindow
from workbench.comm.algorithms._base import block_bounds, scratch
from workbench.comm.algorithms._ring import ring_allreduce
from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = ["Block", "Registered", "allocate", "compiled_plan", "find", "reduce_registered"]

_log = logging.getLogger(__name__)

_ALIGN = 64
_MAGIC = 0x57425359  # "WBSY"
_F16 = np.dtype("float16")
_F32 = np.dtype("float32")
_SUPPORTED = tuple(np.dtype(t) for t in ("float16", "float32", "float64", "int32", "int64"))


Key = tuple[int, int]  # (allocating communicator's handle, allocation number on it)


class Block(NodeWindow):
    """One allocation: a node-shared window of control rows and one data row per rank."""

    def __init__(self, comm: Any, nbytes: int, ranks_per_node: int | None, key: Key) -> None:
        topo = topology(comm, ranks_per_node)
        node = topo.node
        p = node.Get_size()
        self.row_bytes = max(_ALIGN, -(-nbytes // _ALIGN) * _ALIGN)
        super().__init__(node, p * self.row_bytes, "a symmetric buffer")
        self.key = key
        self.comm_size = comm.Get_size()
        self.rows = self.data.reshape(p, self.row_bytes)
        self.rows[self.rank].fill(0)  # first touch: this rank's pages on its own memory node
        self.start = self.rows[self.rank].ctypes.data
        self.seq = 0
        self.lock = threading.Lock()
        self.typed: dict[str, np.ndarray] = {}
        self.plans: dict[tuple[int, int, int, str], Any] = {}  # per call shape: what to reduce
        # inter-node rails: the ranks with local index k < (smallest node size) on every node
        self.rail: Any = None
        self.m = p
        if not topo.single_node:
            self.m = comm.allreduce(p, op=MPI.MIN)
            color = self.rank if self.rank < self.m else MPI.UNDEFINED
            rail = comm.Split(color, key=comm.Get_rank())
            self.rail = rail if self.rank < self.m else None
        node.Barrier()  # every row initialised before anyone uses the block

    @property
    def multi_node(self) -> bool:
        return self.rail is not None or self.m < self.p

    def rows_as(self, dtype: np.dtype) -> np.ndarray:
        """The data rows of every rank as ``(p, row_bytes // itemsize)`` of ``dtype``."""
        view = self.typed.get(dtype.str)
        if view is None:
            view = self.typed[dtype.str] = self.rows.view(dtype)
        return view

    def free(self) -> None:
        """Release the window (collective over the node) and the rail communicator."""
        self.typed.clear()
        self.plans.clear()
        super().free()
        if self.rail is not None:
            self.rail.Free()


@dataclass
class Registered:
    """Where a caller's array lives: its block, byte offset in the row, and elements."""

    block: Block
    offset: int
    size: int
    dtype: np.dtype


_lock = threading.Lock()
_blocks: dict[Key, Block] = {}
_addrs: list[int] = []  # sorted row start addresses of the blocks, for lookups
_keys: list[Key] = []  # the block of each address
_dead: set[Key] = set()  # blocks whose array was garbage collected on this rank
_counters: dict[int, itertools.count] = {}  # allocation numbers per communicator


def _forget(key: Key) -> None:
    with _lock:
        _dead.add(key)


def _collect(comm: Any) -> None:
    """Free the blocks of ``comm`` that every rank has dropped (collective, so it runs
    at the next allocation or at exit, never from a garbage collector)."""
    handle = comm.handle
    with _lock:
        mine = sorted(n for h, n in _dead if h == handle)
    everyone = comm.allgather(mine)
    for n in sorted(set(mine).intersection(*map(set, everyone))):
        key = (handle, n)
        with _lock:
            block = _blocks.pop(key)
            _dead.discard(key)
            k = _keys.index(key)
            del _addrs[k], _keys[k]
        block.free()


def allocate(
    shape: int | Sequence[int],
    dtype: Any = np.float32,
    comm: Any = None,
    *,
    ranks_per_node: int | None = None,
) -> np.ndarray:
    """A symmetric numpy array of ``shape`` and ``dtype`` on every rank of ``comm``
    (collective: every rank calls with the same shape and dtype).

    ``ranks_per_node`` fakes nodes of that many consecutive ranks (tests of the multi-node
    path on one machine). The memory is freed once every rank has dropped its array (at a
    later allocation on ``comm``) or at exit.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    dt = np.dtype(dtype)
    if dt not in _SUPPORTED:
        names = ", ".join(d.name for d in _SUPPORTED)
        raise InvalidTypeError(f"symmetric buffers hold {names}; got dtype {dt}")
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(not isinstance(d, (int, np.integer)) or d < 0 for d in dims):
        raise InvalidValueError(f"shape must be non-negative integers, got {shape!r}")
    n = int(np.prod(dims, dtype=np.int64))
    _collect(comm)
    with _lock:
        key = (comm.handle, next(_counters.setdefault(comm.handle, itertools.count())))
    block = Block(comm, n * dt.itemsize, ranks_per_node, key)
    owner = np.frombuffer(memoryview(block.rows[block.rank]), dtype=dt, count=n)
    with _lock:
        _blocks[key] = block
        k = bisect.bisect(_addrs, block.start)
        _addrs.insert(k, block.start)
        _keys.insert(k, key)
    weakref.finalize(owner, _forget, key)
    return owner.reshape(dims)


_recent: dict[int, tuple[Any, Registered]] = {}  # id(x) -> (weak reference to x, where)


def find(x: Any) -> Registered | None:
    """Where ``x`` (a numpy array or CPU torch tensor) lives when it is a C-contiguous part
    of a symmetric buffer, else None. Repeated lookups of the same object are cached."""
    if not _addrs:
        return None
    hit = _recent.get(id(x))
    if hit is not None and hit[0]() is x:
        return hit[1]
    arr = x.detach().numpy() if is_torch(x) else x
    if not isinstance(arr, np.ndarray) or arr.base is None:  # owns its memory: not ours
        return None
    if not arr.flags.c_contiguous or arr.dtype not in _SUPPORTED:
        return None
    addr = arr.__array_interface__["data"][0]
    with _lock:
        k = bisect.bisect_right(_addrs, addr) - 1
        if k < 0:
            return None
        block = _blocks[_keys[k]]
    offset = addr - block.start
    if offset + arr.nbytes > block.row_bytes or offset % arr.itemsize:
        return None
    reg = Registered(block, offset, arr.size, arr.dtype)
    if len(_recent) > 1024:
        _recent.clear()
    _recent[id(x)] = (weakref.ref(x), reg)
    return reg


def _header(fields: tuple[int, ...], reg: Registered | None) -> tuple[int, ...]:
    """The call header (word 1, the call number, left 0 for :func:`_flags.arrive`)."""
    if reg is None:  # this rank's input was rejected: a header no other rank can match
        return (_MAGIC, 0, -1, -1, -1, -1, -1, -1)
    return (_MAGIC, 0, fields[0], fields[1], fields[3], reg.offset, reg.dtype.num, fields[4])


def compiled_plan(reg: Registered, op: str, fields: tuple[int, ...], check: bool) -> np.ndarray:
    """The ``plan`` of :func:`workbench.comm._flags.symmetric_call` that reduces ``reg`` (of
    a single-node block, not float16) with ``op`` in place: the cached call of
    :mod:`workbench.comm._fast`, the same protocol and header as :func:`reduce_registered`."""
    block = reg.block
    rows, lo, hi, code = _node_plan(block, reg, op)
    plan = np.zeros(_flags.PLAN_WORDS, dtype=np.int64)
    plan[: _flags.PLAN_HEADER] = (
        block.ctl.ctypes.data, block.p, rows.ctypes.data, 0, rows.shape[1], block.rank,
        block.spins, lo, hi, code, check, 0, 0, 0, 0, 0,
    )  # fmt: skip
    plan[_flags.PLAN_HEADER :] = _header(fields, reg)
    return plan


def reduce_registered(
    reg: Registered | None,
    block: Block,
    op: str,
    fields: tuple[int, ...],
    desc: str,
    *,
    check: bool,
    stall_seconds: float,
    error: BaseException | None = None,
) -> None:
    """Allreduce the registered array ``reg`` of ``block`` in place (every node rank calls).

    ``fields`` and ``desc`` describe the call for the mismatch check (as the generic path's
    check); ``reg`` is None with ``error`` set when this rank's input was rejected, so the
    others raise a mismatch instead of waiting for it.
    """
    block.check_usable()
    with block.lock:
        t0 = _spans.now() if _spans.on else 0
        block.seq += 1
        seq = block.seq
        ctl, r = block.ctl, block.rank
        block.header[:] = _header(fields, reg)
        block.header[1] = seq
        if check:
            block.write_description(desc, 0)
        if _flags.arrive(ctl, r, block.header, 0, seq, block.spins):
            block.wait(_flags.ARRIVE, seq, stall_seconds)
        local_ok = not check or bool(_flags.headers_equal(ctl, 0))
        # (read before departing: a rank that leaves first rewrites its description)
        local_mismatch = None if local_ok else block.mismatch(seq, 0)
        t1 = _spans.now() if t0 else 0
        if block.multi_node:
            _inter_node(block, reg, op, seq, local_ok, check)
        elif local_ok and reg is not None:
            _reduce_node(block, reg, op)
        t2 = _spans.now() if t0 else 0
        if _flags.depart(ctl, r, seq, block.spins):
            block.wait(_flags.DEPART, seq, stall_seconds)
        if t0:  # the timeline's phases: in place, so nothing is copied
            _spans.add("wait for peers", "comm", t0, t1)
            _spans.add("reduce", "comm", t1, t2, {"algorithm": "symmetric"})
            _spans.add("wait for peers", "comm", t2)
        if local_mismatch is not None:
            raise local_mismatch from error
        if block.multi_node and bool((ctl[:, _flags.ERROR] == seq).any()):
            raise block.mismatch(seq, 0, across_nodes=True) from error
        if error is not None:
            raise error


def _node_plan(block: Block, reg: Registered, op: str) -> tuple[np.ndarray, int, int, int]:
    """Single node: the rows, the columns ``lo:hi`` this rank reduces and the op code."""
    key = (reg.offset, reg.size, reg.dtype.num, op)
    plan = block.plans.get(key)
    if plan is None:
        lo, hi = _slice(reg, block.p, block.rank)
        first = reg.offset // reg.dtype.itemsize
        plan = block.plans[key] = (
            block.rows_as(reg.dtype),
            first + lo,
            first + hi,
            kernels.OP_CODES[op],
        )
        if len(block.plans) > 1024:
            block.plans.clear()
    return plan


def _reduce_node(block: Block, reg: Registered, op: str) -> None:
    """Single node: this rank's slice of every row, reduced into every row."""
    rows, lo, hi, code = _node_plan(block, reg, op)
    if hi <= lo:
        return
    if rows.dtype == _F16:  # numba has no float16 arithmetic: reduce in float32, round once
        acc = rows[:, lo:hi].astype(_F32)
        kernels.reduce_to_all(acc, 0, hi - lo, code, block.p)
        rows[:, lo:hi] = acc.astype(_F16)
        return
    kernels.reduce_to_all(rows, lo, hi, code, block.p)


def _slice(reg: Registered, parts: int, k: int) -> tuple[int, int]:
    bounds = block_bounds(reg.size, parts)
    return bounds[k], bounds[k + 1]


def _columns(block: Block, reg: Registered, lo: int, hi: int) -> np.ndarray:
    first = reg.offset // reg.dtype.itemsize
    return block.rows_as(reg.dtype)[:, first + lo : first + hi]


def _inter_node(
    block: Block, reg: Registered | None, op: str, seq: int, local_ok: bool, check: bool
) -> None:
    """Several nodes: slice k of the node's rows is reduced by node rank k, allreduced
    around the rail of node ranks k, and written back into every row of the node.

    With the check on, the rail ranks first compare headers (a node whose ranks disagree
    sends one nobody can match), so every rail skips the data on a mismatch and marks it
    in the control block for the node's other ranks.
    """
    if block.rail is None:  # a node rank beyond the smallest node: no slice of its own
        return
    if check:
        h = block.header if local_ok else np.full(_flags.HEADER_WORDS, -seq, dtype=np.int64)
        both = np.concatenate([h, -h])
        block.rail.Allreduce(MPI.IN_PLACE, both, op=MPI.MAX)
        if not (both[: _flags.HEADER_WORDS] == -both[_flags.HEADER_WORDS :]).all():
            block.ctl[block.rank, _flags.ERROR] = seq
            return
    if reg is None or not local_ok:
        return
    lo, hi = _slice(reg, block.m, block.rank)
    cols = _columns(block, reg, lo, hi)
    work = _F32 if reg.dtype == _F16 else reg.dtype
    part = scratch(work, hi - lo, slot=3)
    base = "sum" if op == "mean" else op
    rows = cols.astype(work) if work != reg.dtype else cols
    kernels.reduce_rows(part, rows, kernels.OP_CODES[base], 1)
    ring_allreduce(part, base, block.rail, settings().segment_bytes)
    if op == "mean" and part.size:
        kernels.divide_by(part, block.comm_size)
    cols[:] = part if work == reg.dtype else part.astype(reg.dtype)


def _free_all(timeout: float = _timeouts.EXIT_CLEANUP) -> None:
    """Free every block at exit if every node rank is exiting too (``Win.Free`` is
    collective: a rank that died must not make the others hang)."""
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    with _lock:
        blocks = [_blocks[k] for k in sorted(_blocks)]
        _blocks.clear()
        _addrs.clear()
        _keys.clear()
    for block in blocks:
        if block.broken:
            continue
        req = block.node.Ibarrier()
        deadline = time.monotonic() + timeout
        while not req.Test():
            if time.monotonic() > deadline:
                _log.debug("symmetric buffers not freed: a node rank did not exit in %gs", timeout)
                return
            time.sleep(0.001)
        block.free()


atexit.register(_free_all)
