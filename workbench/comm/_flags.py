"""Numba kernels that synchronise the ranks of a node through flags in shared memory.

The zero-copy allreduce (:mod:`workbench.comm.algorithms._symmetric`) replaces MPI barriers
by per-rank words in a node-shared control block: a rank publishes a value with a release
store and waits until every rank's word reached it with acquire loads, spinning a bounded
number of times before it hands control back to Python (which yields the CPU, warns about
stalls and notices dead ranks). The control block is an ``int64`` array of shape
``(p, CTL_WORDS)``, one row per rank; the words are addressed by column.

Like :mod:`workbench.comm.kernels`: pure functions on arrays and addresses, no MPI, no Python
objects, ``cache=True``. The atomic loads and stores themselves are LLVM-level helpers of
:mod:`workbench.comm._numba_compat`. The kernels that do work between two flags take a
``stamps`` array: when it is not empty (a timeline is recorded) they write the monotonic
clock at the phase boundaries Python cannot see (see :data:`STAMPS`).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from workbench.comm._numba_compat import (
    as_voidptr,
    clock_ns,
    cpu_relax,
    load_acquire,
    store_release,
)
from workbench.comm.kernels import reduce_into_last, reduce_rows, reduce_to_all

__all__ = [
    "ARRIVE",
    "CMA_DST",
    "CMA_SRC",
    "CTL_WORDS",
    "DEPART",
    "DESC_BYTES",
    "DESC_WORD",
    "ERROR",
    "HEADER_WORD",
    "HEADER_WORDS",
    "PID",
    "PLAN_HEADER",
    "PLAN_WORDS",
    "STAMPS",
    "arrive",
    "depart",
    "headers_equal",
    "publish",
    "reduce_and_depart",
    "small_call",
    "small_finish",
    "small_resume",
    "stage_and_arrive",
    "symmetric_call",
    "symmetric_finish",
    "wait_all",
]

#: Column of the word a rank sets to the call number when its input is ready.
ARRIVE = 0
#: Column of the word a rank sets to the call number when it no longer reads the others.
DEPART = 8  # its own cache line: the two flags never share one
#: Column a rank sets to the call number when it saw a mismatch others cannot see
#: (between nodes); read after the depart wait.
ERROR = 12
#: Column of the process id, written once at allocation (to notice dead ranks).
PID = 16
#: First column of the call header (``HEADER_WORDS`` words) compared across ranks; there
#: are two slots (``HEADER_WORD + slot * HEADER_WORDS``), used alternately by call parity
#: where a rank may run one call ahead of another.
HEADER_WORD = 24
HEADER_WORDS = 8
#: First column of the call's text description (shown when the headers differ); two slots
#: of ``DESC_BYTES`` like the header.
DESC_WORD = 40
DESC_BYTES = 224
#: Length of the ``stamps`` array of a recorded call: [0] the input copied in
#: (:func:`stage_and_arrive`), [1] the reduction started and [2] ended
#: (:func:`reduce_and_depart`); an empty array records nothing.
STAMPS = 3
#: Columns where a rank publishes the addresses of its input and output for cross-memory
#: attach (:mod:`workbench.comm.algorithms._cma`), before it arrives.
CMA_SRC = 96
CMA_DST = 97
#: Words per rank row (832 bytes: flags, headers, descriptions and addresses on separate
#: cache lines).
CTL_WORDS = 104
#: The ``plan`` of :func:`small_call` and :func:`symmetric_call`: int64 words at these
#: indices (the address of the control block and the number of ranks; the addresses of the
#: rows (the two halves' of a staging window, a symmetric buffer's one) and their length in
#: elements; this rank, spins, the slice ``lo:hi`` it reduces, op code, check, one-wait)
#: followed by the call header.
(PLAN_CTL, PLAN_P, PLAN_ROWS, _, PLAN_COLS, PLAN_RANK, PLAN_SPINS, PLAN_LO, PLAN_HI, PLAN_OP,
 PLAN_CHECK, PLAN_ONCE) = range(12)  # fmt: skip
PLAN_HEADER = 16
PLAN_WORDS = PLAN_HEADER + HEADER_WORDS


@njit(cache=True, nogil=True)
def publish(ctl, rank, column, value):  # pragma: no cover - compiled
    """Release-store ``value`` into ``ctl[rank, column]`` (earlier writes become visible first)."""
    store_release(ctl.ctypes.data + (rank * ctl.shape[1] + column) * 8, value)


@njit(cache=True, nogil=True)
def wait_all(ctl, column, value, spins):  # pragma: no cover - compiled
    """Spin up to ``spins`` rounds until every row's ``column`` is >= ``value``.

    Returns 0 when all are there, else how many ranks are still missing.
    """
    p = ctl.shape[0]
    base = ctl.ctypes.data + column * 8
    stride = ctl.shape[1] * 8
    missing = p
    for _ in range(spins):
        missing = 0
        for r in range(p):
            if load_acquire(base + r * stride) < value:
                missing += 1
        if missing == 0:
            return 0
        cpu_relax()
    return missing


@njit(cache=True, nogil=True)
def headers_equal(ctl, slot):  # pragma: no cover - compiled
    """Whether every rank wrote the same call header in header slot ``slot``."""
    first = HEADER_WORD + slot * HEADER_WORDS
    for r in range(1, ctl.shape[0]):
        for k in range(first, first + HEADER_WORDS):
            if ctl[r, k] != ctl[0, k]:
                return False
    return True


@njit(cache=True, nogil=True)
def arrive(ctl, rank, header, slot, seq, spins):  # pragma: no cover - compiled
    """Write this rank's call header into slot ``slot`` with its word 1 set to ``seq``,
    publish ``ARRIVE = seq`` and spin for the others. Returns 0 when everyone arrived, else
    the number of ranks missing."""
    first = HEADER_WORD + slot * HEADER_WORDS
    for k in range(HEADER_WORDS):
        ctl[rank, first + k] = header[k]
    ctl[rank, first + 1] = seq
    publish(ctl, rank, ARRIVE, seq)
    return wait_all(ctl, ARRIVE, seq, spins)


@njit(cache=True, nogil=True)
def stage_and_arrive(
    ctl, rank, header, slot, seq, spins, row, src, stamps
):  # pragma: no cover - compiled
    """Copy ``src`` into the start of this rank's input ``row`` (stamped at ``stamps[0]``),
    then :func:`arrive`."""
    for i in range(src.size):
        row[i] = src[i]
    if stamps.size:
        stamps[0] = clock_ns()
    return arrive(ctl, rank, header, slot, seq, spins)


@njit(cache=True, nogil=True)
def reduce_and_depart(
    ctl, rank, slot, check, seq, spins, rows, lo, hi, op, divisor, stamps
):  # pragma: no cover
    """After everyone arrived: -2 if ``check`` and the headers of ``slot`` differ (nothing
    reduced); else reduce columns ``lo:hi`` of the input rows into the last row (see
    :func:`workbench.comm.kernels.reduce_into_last`; stamped at ``stamps[1]`` and
    ``stamps[2]``), publish ``DEPART = seq`` and spin for the others: 0 when all departed,
    else the number of ranks missing."""
    if check and not headers_equal(ctl, slot):
        return -2
    if stamps.size:
        stamps[1] = clock_ns()
    if hi > lo:
        reduce_into_last(rows, lo, hi, op, divisor)
    if stamps.size:
        stamps[2] = clock_ns()
    return depart(ctl, rank, seq, spins)


@njit(cache=True, nogil=True)
def depart(ctl, rank, seq, spins):  # pragma: no cover - compiled
    """Publish ``DEPART = seq`` and spin until every rank departed; returns ranks missing."""
    publish(ctl, rank, DEPART, seq)
    return wait_all(ctl, DEPART, seq, spins)


@njit(cache=True, nogil=True)
def small_call(plan, slot, seq, src, out):  # pragma: no cover - compiled
    """A whole staged call in one entry (the cached small path of
    :mod:`workbench.comm._fast`): copy ``src`` into this rank's input row of half ``slot``,
    :func:`arrive`, then :func:`small_finish`, with what does not change between calls of
    one shape in ``plan`` (:data:`PLAN_WORDS`: the window by address, so that three arrays
    cross the call instead of five, a cheaper entry). Returns 0 when done (``out`` holds
    the result), 1 when ranks have not arrived within the spins (Python waits, then calls
    :func:`small_finish`), 2 when they have not finished (Python waits, then copies the
    result row out), -2 on a header mismatch."""
    p = plan[PLAN_P]
    ctl = carray(as_voidptr(plan[PLAN_CTL]), (p, CTL_WORDS), np.int64)
    rows = carray(as_voidptr(plan[PLAN_ROWS + slot]), (p + 1, plan[PLAN_COLS]), src.dtype)
    rank, spins = plan[PLAN_RANK], plan[PLAN_SPINS]
    row = rows[rank]
    for i in range(src.size):
        row[i] = src[i]
    if arrive(ctl, rank, plan[PLAN_HEADER:], slot, seq, spins):
        return 1
    return small_resume(plan, slot, seq, out)


@njit(cache=True, nogil=True)
def small_resume(plan, slot, seq, out):  # pragma: no cover - compiled
    """:func:`small_finish` of the call of ``plan`` (after :func:`small_call` returned 1
    and Python waited for the others; codes as :func:`small_call`)."""
    p = plan[PLAN_P]
    ctl = carray(as_voidptr(plan[PLAN_CTL]), (p, CTL_WORDS), np.int64)
    rows = carray(as_voidptr(plan[PLAN_ROWS + slot]), (p + 1, plan[PLAN_COLS]), out.dtype)
    return small_finish(ctl, plan[PLAN_RANK], slot, plan[PLAN_CHECK], seq, plan[PLAN_SPINS],
                        rows, out, plan[PLAN_LO], plan[PLAN_HI], plan[PLAN_OP],
                        plan[PLAN_ONCE])  # fmt: skip


@njit(cache=True, nogil=True)
def small_finish(
    ctl, rank, slot, check, seq, spins, rows, out, lo, hi, op, once
):  # pragma: no cover - compiled
    """After everyone arrived: -2 if ``check`` and the headers of ``slot`` differ. With
    ``once``, reduce every input row whole into ``out`` (the one-wait protocol of
    :mod:`workbench.comm._staging`) and return 0. Otherwise what :func:`reduce_and_depart`
    does (unstamped), then the result row copied into ``out`` once everyone departed
    (codes as :func:`small_call`)."""
    if check and not headers_equal(ctl, slot):
        return -2
    p = ctl.shape[0]
    if once:
        reduce_rows(out, rows[:p], op, p)
        return 0
    if hi > lo:
        reduce_into_last(rows, lo, hi, op, p)
    if depart(ctl, rank, seq, spins):
        return 2
    result = rows[p]
    for i in range(out.size):
        out[i] = result[i]
    return 0


@njit(cache=True, nogil=True)
def symmetric_call(plan, seq, like):  # pragma: no cover - compiled
    """The single-node zero-copy call on a symmetric buffer in one entry (the cached path
    of :mod:`workbench.comm._fast`; the protocol of
    :func:`workbench.comm.algorithms._symmetric.reduce_registered`): write the header of
    ``plan`` (:data:`PLAN_WORDS`; the rows are the buffer's, of ``like``'s dtype) into slot
    0, :func:`arrive`, then :func:`symmetric_finish`. Returns 1 when ranks have not
    arrived within the spins (Python waits, then calls :func:`symmetric_finish`), else
    what that returns."""
    p = plan[PLAN_P]
    ctl = carray(as_voidptr(plan[PLAN_CTL]), (p, CTL_WORDS), np.int64)
    if arrive(ctl, plan[PLAN_RANK], plan[PLAN_HEADER:], 0, seq, plan[PLAN_SPINS]):
        return 1
    return symmetric_finish(plan, seq, like)


@njit(cache=True, nogil=True)
def symmetric_finish(plan, seq, like):  # pragma: no cover - compiled
    """After everyone arrived: -2 if the check is on and the headers differ (this rank
    has not departed: Python reads the descriptions first, then departs); else reduce this
    rank's slice of every row into every row (:func:`workbench.comm.kernels.reduce_to_all`),
    :func:`depart`: 0 when all departed, 2 when Python must wait for the others."""
    p = plan[PLAN_P]
    ctl = carray(as_voidptr(plan[PLAN_CTL]), (p, CTL_WORDS), np.int64)
    if plan[PLAN_CHECK] and not headers_equal(ctl, 0):
        return -2
    lo, hi = plan[PLAN_LO], plan[PLAN_HI]
    if hi > lo:
        rows = carray(as_voidptr(plan[PLAN_ROWS]), (p, plan[PLAN_COLS]), like.dtype)
        reduce_to_all(rows, lo, hi, plan[PLAN_OP], p)
    if depart(ctl, plan[PLAN_RANK], seq, plan[PLAN_SPINS]):
        return 2
    return 0
