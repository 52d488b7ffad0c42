"""Cross-memory attach: each rank reads its slice straight out of the other ranks' arrays.

Linux's ``process_vm_readv``/``process_vm_writev`` copy between the memory of two processes
of the same user in one kernel pass, so a private (not shared) array needs no staging copy
into shared memory. On one node, after every rank published the addresses of its input
and output (control words of a small node window) and arrived:

* rank ``r`` owns slice ``r`` (:func:`block_bounds`): it reads that slice of every other
  rank's input (into its output slice directly for the first, into scratch for the rest),
  combines it with its own, and writes the finished slice into every other rank's output;
* then it departs, and waits until everyone departed (its own output is then complete,
  and nobody reads its input any more).

Per rank that is ``(p - 1) / p`` of the message read from the others, the same written to
them, and one combining pass over its slice: no copy of the whole message in and out of a
shared buffer (what ``shm`` and MPICH's shared-memory path pay).

A fused list of tensors (:func:`cma_allreduce_many`) goes the same way without being packed
first: each rank publishes a table of its tensors' addresses, and slice ``r`` of the list's
concatenation is read, combined and written straight between the tensors, many tensors per
vectored system call (2000 tensors of 10 KB at p = 2: 6-8 ms, against 11-13 ms with a
call per tensor). What stays per tensor is the kernel's pinning of its pages: numpy gives
huge pages only to arrays of 4 MiB and more, so a list of small arrays is pinned 4 KiB at a
time (200 tensors, 21 MB in all: 1.5 ms or more over the 3-3.5 ms of one array that size).

A failed copy (a kernel that forbids it) is published in the ``ERROR`` word before
departing, so every rank raises instead of one hanging. Whether the kernel allows it here is
probed once per node (:func:`available`; ``python -m workbench.comm.tune`` reports it).
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba import njit

from workbench.comm import _flags, kernels
from workbench.comm._config import ENV_ALGO, settings
from workbench.comm._numba_compat import as_voidptr, vm_read, vm_readv, vm_write, vm_writev
from workbench.comm._topology import topology
from workbench.comm._window import NodeWindow
from workbench.comm.algorithms._base import Algorithm, block_bounds, scratch, take_input
from workbench.errors import AllreduceAbortedError, InvalidValueError, SetupError

__all__ = [
    "DIRECT_AVERAGE_BYTES",
    "CmaAlgorithm",
    "available",
    "cma_allreduce",
    "cma_allreduce_many",
]

_SRC, _DST = _flags.CMA_SRC, _flags.CMA_DST
_OPS = {op: kernels.OP_CODES[op] for op in ("sum", "max", "min")}  # (the fused path: mean too)
_combine = kernels.combine
#: Elements read from a peer per system call in the fused path (gathered from as many
#: tensors as needed): the piece is combined while it is still in the cache.
_PIECE = 1 << 16
#: A fused list goes straight between its tensors when they average at least this many
#: bytes; smaller ones are packed (per tensor the direct path costs two address look-ups,
#: two ranges of a vectored system call per peer and the pinning of its partly used pages
#: by the kernel, about what packing 4 KiB costs).
DIRECT_AVERAGE_BYTES = 4 << 10

_CHUNK = 1 << 30  # bytes per system call at most (the kernel caps one near 2 GiB)
_IOV_MAX = 1024  # ranges per vectored system call at most (Linux's UIO_MAXIOV)


@njit(cache=True, nogil=True)
def _copy(write, pid, local, remote, nbytes):  # pragma: no cover - compiled
    """All ``nbytes`` between ``local`` here and ``remote`` in ``pid``, in chunks: 0, or
    -errno (-5, EIO, for a copy that stops short)."""
    done = 0
    while done < nbytes:
        n = min(nbytes - done, _CHUNK)
        if write:
            got = vm_write(pid, local + done, remote + done, n)
        else:
            got = vm_read(pid, local + done, remote + done, n)
        if got <= 0:
            return got if got < 0 else -5
        done += got
    return 0


@njit(cache=True, nogil=True)
def _exchange(ctl, rank, src, dst, tmp, lo, hi, op):  # pragma: no cover - compiled
    """Slice ``lo:hi`` of everyone's input combined into ``dst`` here and written into
    everyone's output (see the module doc); 0, or the first failed copy's -errno."""
    p = ctl.shape[0]
    n = hi - lo
    if n == 0:
        return 0
    size = src.itemsize
    nbytes = n * size
    mine = dst[lo:hi]
    in_place = src.ctypes.data == dst.ctypes.data
    first = True
    for k in range(1, p):
        q = (rank + k) % p
        pid = ctl[q, _flags.PID]
        remote = ctl[q, _SRC] + lo * size
        if first and not in_place:  # straight into the output slice, then ours on top
            failed = _copy(False, pid, mine.ctypes.data, remote, nbytes)
            if failed:
                return failed
            _combine(mine, src[lo:hi], op)
        else:
            failed = _copy(False, pid, tmp.ctypes.data, remote, nbytes)
            if failed:
                return failed
            _combine(mine, tmp[:n], op)
        first = False
    for k in range(1, p):
        q = (rank + k) % p
        failed = _copy(True, ctl[q, _flags.PID], mine.ctypes.data, ctl[q, _DST] + lo * size,
                       nbytes)  # fmt: skip
        if failed:
            return failed
    return 0


@njit(cache=True, nogil=True)
def _vectored(write, pid, here, there, count, nbytes):  # pragma: no cover - compiled
    """One system call copying ``count`` ranges (rows of ``here`` in this process and of
    ``there`` in ``pid``: base, length; at most :data:`_IOV_MAX`, ``nbytes`` in all, at
    most :data:`_CHUNK`): 0, or -errno (-5, EIO, for a copy that stops short, which only a
    failing range causes)."""
    if write:
        got = vm_writev(pid, here.ctypes.data, count, there.ctypes.data, count)
    else:
        got = vm_readv(pid, here.ctypes.data, count, there.ctypes.data, count)
    if got == nbytes:
        return 0
    return got if got < 0 else -5


@njit(cache=True, nogil=True)
def _exchange_many(ctl, rank, tables, offsets, tmp, lo, hi, op, mean, like):  # pragma: no cover
    """:func:`_exchange` for a list: elements ``lo:hi`` of the concatenation of the tensors
    in ``tables[q]`` (rows of source and result address; ``offsets``: where each tensor
    starts). The others' pieces are gathered into ``tmp`` by one vectored read per ``tmp``
    full (or :data:`_IOV_MAX` pieces) and combined into the results; the results go to the
    others by one vectored write per :data:`_IOV_MAX` tensors: a system call costs a few
    microseconds, as much as copying tens of KiB, so not one per tensor. 0, or the first
    failed copy's -errno."""
    p, k = tables.shape[0], tables.shape[1]
    for d in range(1, p):  # the others' address tables first
        q = (rank + d) % p
        failed = _copy(False, ctl[q, _flags.PID], tables[q].ctypes.data, ctl[q, _SRC], k * 16)
        if failed:
            return failed
    size = like.itemsize
    first = np.searchsorted(offsets, lo, side="right") - 1
    here = np.empty((_IOV_MAX, 2), dtype=np.int64)  # iovecs: (base, length) per range
    there = np.empty((_IOV_MAX, 2), dtype=np.int64)
    for d in range(1, p):
        q = (rank + d) % p
        pid = ctl[q, _flags.PID]
        t, pos = first, lo
        while pos < hi:  # gather a tmp full of the others' pieces, then combine it
            t0, pos0, filled, count = t, pos, 0, 0
            while pos < hi and filled < tmp.size and count < _IOV_MAX:
                while offsets[t + 1] <= pos:
                    t += 1
                end = min(hi, offsets[t + 1], pos + tmp.size - filled)
                here[count, 0] = tmp.ctypes.data + filled * size
                there[count, 0] = tables[q, t, 0] + (pos - offsets[t]) * size
                here[count, 1] = there[count, 1] = (end - pos) * size
                filled += end - pos
                count += 1
                pos = end
            failed = _vectored(False, pid, here, there, count, filled * size)
            if failed:
                return failed
            t, at, pos = t0, 0, pos0
            while at < filled:
                while offsets[t + 1] <= pos:
                    t += 1
                m = min(offsets[t + 1] - pos, filled - at)
                out = tables[rank, t, 1] + (pos - offsets[t]) * size
                dst = numba.carray(as_voidptr(out), m, like.dtype)
                if d == 1:  # this rank's own input and the first peer's, into the result
                    mine = tables[rank, t, 0] + (pos - offsets[t]) * size
                    own = numba.carray(as_voidptr(mine), m, like.dtype)
                    kernels.combine_into(dst, own, tmp[at : at + m], op)
                else:
                    _combine(dst, tmp[at : at + m], op)
                at += m
                pos += m
    if mean:
        t, pos = first, lo
        while pos < hi:
            while offsets[t + 1] <= pos:
                t += 1
            end = min(hi, offsets[t + 1])
            out = tables[rank, t, 1] + (pos - offsets[t]) * size
            kernels.divide_by(numba.carray(as_voidptr(out), end - pos, like.dtype), p)
            pos = end
    for d in range(1, p):  # this rank's results into the others' outputs
        q = (rank + d) % p
        pid = ctl[q, _flags.PID]
        t, pos, count, nbytes = first, lo, 0, 0
        while pos < hi:
            while offsets[t + 1] <= pos:
                t += 1
            end = min(hi, offsets[t + 1], pos + _CHUNK // size)
            m = (end - pos) * size
            if count == _IOV_MAX or nbytes + m > _CHUNK:
                failed = _vectored(True, pid, here, there, count, nbytes)
                if failed:
                    return failed
                count, nbytes = 0, 0
            at = (pos - offsets[t]) * size
            here[count, 0], there[count, 0] = tables[rank, t, 1] + at, tables[q, t, 1] + at
            here[count, 1] = there[count, 1] = m
            count += 1
            nbytes += m
            pos = end
        if count:
            failed = _vectored(True, pid, here, there, count, nbytes)
            if failed:
                return failed
    return 0


@njit(cache=True, nogil=True)
def _overlaps(table, nbytes):  # pragma: no cover - compiled
    """Whether a result range of ``table`` (rows of source and result address, ``nbytes``
    each) overlaps another range of it (an input, or another result): the others write
    results while this rank still reads its inputs, so such a list is staged first."""
    k = table.shape[0]
    starts = np.empty(2 * k, dtype=np.int64)
    ends = np.empty(2 * k, dtype=np.int64)
    result = np.zeros(2 * k, dtype=np.bool_)
    n = 0
    for t in range(k):
        if nbytes[t] == 0:
            continue
        for c in range(2):
            if c == 0 and table[t, 0] == table[t, 1]:
                continue  # in place: one range
            starts[n], ends[n], result[n] = table[t, c], table[t, c] + nbytes[t], c == 1
            n += 1
    reach, reach_result = -1, -1  # the furthest end of the ranges so far, of the results
    for i in np.argsort(starts[:n]):
        if starts[i] < reach_result or (result[i] and starts[i] < reach):
            return True
        reach = max(reach, ends[i])
        if result[i]:
            reach_result = max(reach_result, ends[i])
    return False


@njit(cache=True, nogil=True)
def _probe(pid, dst, remote):  # pragma: no cover - compiled
    return vm_read(pid, dst.ctypes.data, remote, dst.nbytes)


def _probe_peers(w: NodeWindow) -> str | None:
    """None when this rank can read every other rank's memory through the pids they
    published, else why not: each rank publishes a random token and its address, and
    reads everyone else's (ranks in different pid namespaces, as some container setups
    make them, would otherwise read a stranger's memory)."""
    token = np.random.default_rng().integers(1, 2**62, size=1, dtype=np.int64)
    w.ctl[w.rank, _SRC] = token.ctypes.data
    w.ctl[w.rank, _DST] = token[0]
    w.node.Barrier()
    got = np.zeros(1, dtype=np.int64)
    why = None
    for q in range(w.p):
        if q == w.rank:
            continue
        try:
            n = _probe(w.ctl[q, _flags.PID], got, w.ctl[q, _SRC])
        except Exception as e:  # no such function (not Linux): numba fails to link it
            why = f"{type(e).__name__}: {e}"
            break
        if n < 0:
            why = f"process_vm_readv: {os.strerror(-n)}"
            break
        if n != 8 or got[0] != w.ctl[q, _DST]:
            why = "the ranks' process ids do not name each other (separate pid namespaces?)"
            break
    w.node.Barrier()  # (the token stays alive until everyone has read it)
    return why


class _Window(NodeWindow):
    """The control rows of one node communicator (no data: the arrays stay private)."""

    def __init__(self, node: Any) -> None:
        super().__init__(node, 0, "this communicator (cross-memory attach)")
        self.seq = 0
        self.held: tuple[Any, ...] | None = None  # what the others may still copy
        node.Barrier()  # every control row initialised (its pid published) before the probe
        everyone = node.allgather(_probe_peers(self))
        self.refused = next((w for w in everyone if w is not None), None)


_lock = threading.Lock()
_windows: dict[int, _Window] = {}


def _window(node: Any) -> _Window:
    """The window of ``node`` (created collectively at its first use)."""
    key = node.handle
    found = _windows.get(key)
    if found is None:
        found = _Window(node)
        with _lock:
            _windows[key] = found
    return found


def available(comm: Any) -> str | None:
    """None when cross-memory attach works between the ranks of the one-node ``comm``,
    else why not (collective at the first call on ``comm``)."""
    return _window(topology(comm).node).refused


def _refused(w: _Window) -> None:
    if w.refused:
        raise SetupError(
            f"algorithm='cma': this kernel does not let the ranks copy from each other "
            f"({w.refused}); use 'auto' (which then does not pick it) or 'shm' "
            f"(as argument or in {ENV_ALGO})"
        )


def _run(
    w: _Window,
    fields: tuple[int, int, int, int, int],
    desc: str,
    addresses: tuple[int, int],
    held: Any,
    exchange: Callable[[np.ndarray, int], int],
    stall_seconds: float,
) -> None:
    """One call on ``w``: publish ``addresses`` and the header ``fields`` (bytes, dtype, op,
    tensors, layout), arrive, compare the headers, ``exchange(ctl, seq)`` (0 or -errno),
    depart; every rank raises when the headers differ or a copy failed anywhere."""
    _refused(w)
    w.check_usable()
    w.seq += 1
    seq, ctl, r, p = w.seq, w.ctl, w.rank, w.p
    # what every rank must agree on before touching another's memory (word 1: the call
    # number, which arrive writes), and what a mismatch shows
    header = w.header
    header[0], (header[2], header[3], header[4], header[5]) = fields[0], fields[1:]
    w.write_description(desc, 0)
    ctl[r, _SRC], ctl[r, _DST] = addresses
    w.held = held  # alive until this call is over everywhere (see below)
    try:
        if _flags.arrive(ctl, r, header, 0, seq, w.spins):  # publishes the addresses too
            w.wait(_flags.ARRIVE, seq, stall_seconds)
        agreed = bool(_flags.headers_equal(ctl, 0))
        # (read while every rank is still in this call: nobody's description changes yet)
        mismatch = None if agreed else w.mismatch(seq, 0)
        failed = 0
        if agreed:
            failed = exchange(ctl, seq)
            if failed:
                _flags.publish(ctl, r, _flags.ERROR, seq)
        if _flags.depart(ctl, r, seq, w.spins):
            w.wait(_flags.DEPART, seq, stall_seconds)
    except BaseException:
        # left in the middle (an interrupt, a dead rank): the others may still copy from
        # and into this rank's arrays, which stay referenced; the window is not used again
        w.broken = w.broken or (
            f"an allreduce (call #{seq}) was interrupted on node rank {r} while the ranks "
            "copied between their arrays; restart the pool (`%wb restart`)"
        )
        raise
    w.held = None
    if mismatch is not None:
        raise mismatch
    if failed or (ctl[:, _flags.ERROR] == seq).any():
        who = [q for q in range(p) if ctl[q, _flags.ERROR] == seq]
        why = f" ({os.strerror(-failed)})" if failed < 0 else ""
        raise AllreduceAbortedError(
            f"algorithm='cma': copying between the ranks failed on node rank(s) {who}{why} "
            f"in call #{seq}; the result is incomplete on every rank. Use 'shm' or 'mpi' "
            f"(as argument or in {ENV_ALGO})"
        )


def cma_allreduce(buf: np.ndarray, op: str, node: Any, src: np.ndarray | None = None,
                  stall_seconds: float = 60.0) -> None:  # fmt: skip
    """Allreduce ``buf`` in place over the one-node ``node`` (see the module doc); the
    local contribution is read from ``src`` when given."""
    p, r = node.Get_size(), node.Get_rank()
    if src is None:
        src = buf
    if p == 1 or buf.size == 0:
        take_input(buf, src)
        return
    bounds = block_bounds(buf.size, p)
    lo, hi = bounds[r], bounds[r + 1]
    code = _OPS[op]

    def exchange(ctl: np.ndarray, seq: int) -> int:
        tmp = scratch(buf.dtype, hi - lo, 3)
        return int(_exchange(ctl, r, src, buf, tmp, lo, hi, code))

    fields = (buf.nbytes, buf.dtype.num, code, 1, buf.size)
    desc = f"({buf.size},) {buf.dtype.name} op={op} algorithm=cma"
    _run(_window(node), fields, desc, (src.ctypes.data, buf.ctypes.data), (src, buf), exchange,
         stall_seconds)  # fmt: skip


def cma_allreduce_many(
    srcs: Sequence[np.ndarray],
    dsts: Sequence[np.ndarray],
    offsets: np.ndarray,
    op: str,
    node: Any,
    stall_seconds: float = 60.0,
) -> None:
    """Allreduce the flat tensors ``srcs`` (one dtype; ``offsets``: their cumulative sizes,
    ``[0, ...]``) into ``dsts`` (each ``srcs[k]`` itself, or an array of its size) over the
    one-node ``node`` without packing them (see the module doc). ``op`` may be ``mean``."""
    p, r, k = node.Get_size(), node.Get_rank(), len(srcs)
    dtype = srcs[0].dtype
    n = int(offsets[-1])
    if p == 1 or n == 0:  # (through a copy: a result may lie over another input)
        flat = np.concatenate(srcs)
        for t, d in enumerate(dsts):
            d[...] = flat[offsets[t] : offsets[t + 1]]
        return
    tables = np.empty((p, k, 2), dtype=np.int64)
    tables[r, :, 0] = [kernels.address(a) for a in srcs]  # (a fifth of .ctypes.data's cost)
    tables[r, :, 1] = [kernels.address(a) for a in dsts]
    staged = None
    if _overlaps(tables[r], np.diff(offsets) * dtype.itemsize):
        # (a tensor listed twice, results over inputs): reduce private copies, then unpack
        staged = (np.concatenate(srcs), np.empty(n, dtype=dtype))
        tables[r, :, 0] = staged[0].ctypes.data + offsets[:-1] * dtype.itemsize
        tables[r, :, 1] = staged[1].ctypes.data + offsets[:-1] * dtype.itemsize
    bounds = block_bounds(n, p)
    lo, hi = bounds[r], bounds[r + 1]
    base = "sum" if op == "mean" else op

    def exchange(ctl: np.ndarray, seq: int) -> int:
        tmp = scratch(dtype, min(_PIECE, max(hi - lo, 1)), 3)
        return int(_exchange_many(ctl, r, tables, offsets, tmp, lo, hi, _OPS[base],
                                  op == "mean", tmp))  # fmt: skip

    layout = zlib.crc32(offsets.astype(np.int64).tobytes())
    fields = (n * dtype.itemsize, dtype.num, kernels.OP_CODES[op], k, layout)
    desc = f"{k} tensors ({n} elements, sizes {layout:08x}) {dtype.name} op={op} algorithm=cma"
    _run(_window(node), fields, desc, (tables[r].ctypes.data, 0), (srcs, dsts, tables, staged),
         exchange, stall_seconds)  # fmt: skip
    if staged is not None:
        for t, d in enumerate(dsts):
            d[...] = staged[1][offsets[t] : offsets[t + 1]]


class CmaAlgorithm(Algorithm):
    """Cross-memory attach on one node (see the module doc); ``auto`` picks it for large
    messages on one node where the kernel allows it."""

    name = "cma"
    team_safe = False  # creates a window on first use
    single_node = True
    shortcuts = False

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` over ``comm`` by copying between the ranks (see the base class)."""
        if comm.Get_size() == 1:
            take_input(buf, src)
            return
        cma_allreduce(buf, op, _node(comm), src, settings().stall_seconds)

    def reduce_many(self, srcs: Sequence[np.ndarray], dsts: Sequence[np.ndarray],
                    offsets: np.ndarray, op: str, comm: Any) -> None:  # fmt: skip
        """A fused list of one dtype straight between the tensors (:func:`cma_allreduce_many`)."""
        cma_allreduce_many(srcs, dsts, offsets, op, _node(comm), settings().stall_seconds)


def _node(comm: Any) -> Any:
    """The node communicator of the one-node ``comm`` (every rank sees the same node count,
    so a multi-node ``comm`` raises on all ranks together)."""
    topo = topology(comm)
    if not topo.single_node:
        raise InvalidValueError(
            f"algorithm='cma' works on one node only, but this communicator of "
            f"{comm.Get_size()} ranks spans {topo.n_nodes} nodes; use 'auto' or "
            f"'hierarchical' (as argument or in {ENV_ALGO})"
        )
    return topo.node
