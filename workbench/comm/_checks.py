"""The safety net of every allreduce: all ranks agree on what they reduce, or all raise.

Before the data moves, every rank contributes a fixed-size header (call number,
hash of shapes/dtypes, element count, op, algorithm) to one small nonblocking
collective: an ``Iallgather`` that can also carry a small message inline (so a
small allreduce costs exactly one collective), or, on many ranks, an
``Iallreduce(MAX)`` of ``[header, -header]`` that yields max and min at once.
Only when headers differ are the full descriptions allgathered, and every rank
raises the same :class:`AllreduceMismatchError`.

While waiting, the collective is polled; after ``WORKBENCH_STALL_SECONDS`` the
waiting ranks announce themselves to each other on a side communicator and warn,
naming the ranks that have not joined.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import warnings
import zlib
from typing import Any

import numpy as np
from mpi4py import MPI

from workbench._util import format_ranks
from workbench.errors import AllreduceMismatchError

__all__ = [
    "HEADER_WORDS",
    "INLINE_BYTES",
    "AllreduceMismatchError",
    "CallFields",
    "CommState",
    "agree",
    "comm_state",
    "mismatch_error",
    "signature",
    "wait_polling",
]

HEADER_WORDS = 8
HEADER_BYTES = HEADER_WORDS * 8
#: Messages up to this size travel inside the check's allgather (one collective per call).
INLINE_BYTES = 8 << 10
#: Use the allgather form while ``p * slot`` stays below this; beyond, Iallreduce(MAX).
MAX_GATHER_BYTES = 512 << 10
#: Poll without yielding the CPU this long before yielding between polls.
SPIN_SECONDS = 50e-6
_MAGIC = 0x57424152
_HEADER = struct.Struct(f"={HEADER_WORDS}q")  # "WBAR"
_STALL_TAG = 0x5354

#: What the check compares of a call: (hash, elements, tensors, op code, algorithm code).
CallFields = tuple[int, int, int, int, int]


def signature(description: str) -> int:
    """A process-independent 32-bit hash of a call description."""
    return zlib.crc32(description.encode())


class CommState:
    """Per-communicator bookkeeping: call counter, side channel, reusable buffers."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.size = comm.Get_size()
        self.rank = comm.Get_rank()
        self.seq = 0
        self.side = comm.Dup()  # collective: created on the first call of every rank
        self.slot_bytes = HEADER_BYTES + INLINE_BYTES
        self.gather = self.size * self.slot_bytes <= MAX_GATHER_BYTES
        if self.gather:
            self.slot = np.zeros(self.slot_bytes, dtype=np.uint8)
            self.header = self.slot[:HEADER_BYTES].view(np.int64)
            self.gathered = np.empty((self.size, self.slot_bytes), dtype=np.uint8)
            self.slot_mv = self.slot.data
            self.gathered_mv = self.gathered.data.cast("B")
            self.slot_spec = [self.slot, MPI.BYTE]
            self.gathered_spec = [self.gathered, MPI.BYTE]
            self.rows: dict[tuple[int, str], np.ndarray] = {}
        else:
            self.sig = np.zeros(2 * HEADER_WORDS, dtype=np.int64)
            self.header = self.sig[:HEADER_WORDS]
            self.sigmax = np.empty_like(self.sig)
        self.sends: list[Any] = []

    def can_inline(self, nbytes: int) -> bool:
        return self.gather and nbytes <= INLINE_BYTES


_lock = threading.Lock()
_states: dict[int, CommState] = {}


def comm_state(comm: Any) -> CommState:
    """The :class:`CommState` of ``comm`` (created collectively on first use)."""
    key = comm.handle
    st = _states.get(key)
    if st is None:
        st = CommState(comm)
        with _lock:
            _states[key] = st
    return st


def _announce(st: CommState) -> None:
    """Tell every other rank that this rank is waiting in call ``st.seq``."""
    st.sends = [s for s in st.sends if not s.Test()]
    msg = np.array([st.seq], dtype=np.int64)
    for dest in range(st.size):
        if dest != st.rank:
            st.sends.append(st.side.Isend(msg, dest, _STALL_TAG))


def _collect(st: CommState, arrived: set[int]) -> None:
    """Receive pending announcements; remember who is waiting in the current call."""
    status = MPI.Status()
    msg = np.empty(1, dtype=np.int64)
    while st.side.Iprobe(MPI.ANY_SOURCE, _STALL_TAG, status):
        src = status.Get_source()
        st.side.Recv(msg, src, _STALL_TAG)
        if msg[0] == st.seq:
            arrived.add(src)


def wait_polling(req: Any, st: CommState, stall_seconds: float) -> None:
    """Wait for ``req``, warning every ``stall_seconds`` about ranks that have not joined."""
    if req.Test():
        return
    start = time.monotonic()
    spin_until = start + SPIN_SECONDS
    # announce at half the stall time, warn at the full time: ranks that enter up to half
    # the stall time after this one (a busy or oversubscribed node) are still counted as here
    next_event = start + 0.5 * stall_seconds
    arrived: set[int] = set()
    announced = False
    while not req.Test():
        now = time.monotonic()
        if now > spin_until:
            os.sched_yield()  # lets oversubscribed ranks run (MPICH's Wait does the same)
        if announced:
            _collect(st, arrived)
        now = time.monotonic()
        if now < next_event:
            continue
        if not announced:  # announce, then give the others time to do the same
            _announce(st)
            announced = True
            next_event = start + stall_seconds
            continue
        missing = sorted(set(range(st.size)) - arrived - {st.rank})
        who = f"rank(s) {format_ranks(missing)}" if missing else "some rank(s)"
        warnings.warn(
            f"workbench.allreduce stalled: rank {st.rank} has waited {now - start:.1f}s in "
            f"call #{st.seq} on communicator {st.comm.Get_name()!r} (size {st.size}); "
            f"{who} have not joined yet. Check that every rank calls allreduce the same "
            f"number of times; raise WORKBENCH_STALL_SECONDS (now {stall_seconds:g}) if "
            "the wait is expected.",
            RuntimeWarning,
            stacklevel=4,
        )
        next_event = now + stall_seconds
    if announced:
        _collect(st, arrived)


def mismatch_error(
    descriptions: list[str], seq: int, size: int, where: str = ""
) -> AllreduceMismatchError:
    """The error every rank raises: the ranks grouped by the call they made."""
    groups: dict[str, list[int]] = {}
    for r, d in enumerate(descriptions):
        groups.setdefault(d, []).append(r)
    lines = "\n".join(
        f"  rank{'s' if len(rs) > 1 else ''} {format_ranks(rs)}: {d}" for d, rs in groups.items()
    )
    return AllreduceMismatchError(
        f"Mismatched allreduce{where} (call #{seq}, communicator size {size}): one or more "
        f"ranks sent different tensors, op or algorithm; every rank must pass the same "
        f"shapes, dtypes and op:\n{lines}\nFix the call on the ranks that differ "
        f"(this error is raised on every rank, nothing was reduced)."
    )


def _raise_mismatch(st: CommState, mine: str, cause: BaseException | None) -> None:
    raise mismatch_error(st.comm.allgather(mine), st.seq, st.size) from cause


def agree(
    comm: Any,
    fields: CallFields,
    description: str,
    stall_seconds: float,
    *,
    payload: np.ndarray | None = None,
    error: BaseException | None = None,
) -> np.ndarray | None:
    """Check that every rank makes the same call; return the ranks' inline payloads.

    ``fields`` = (hash, elements, tensors, op code, algorithm code). With ``payload``
    (only if ``comm_state(comm).can_inline``), the result is a ``(p, n)`` array of every
    rank's payload in rank order. ``error`` marks a rank whose input was rejected
    locally: it still takes part, so the others raise instead of hanging.
    """
    st = comm_state(comm)
    try:
        return _agree(st, fields, description, stall_seconds, payload, error)
    finally:
        st.seq += 1


def _agree(
    st: CommState,
    fields: CallFields,
    description: str,
    stall_seconds: float,
    payload: np.ndarray | None,
    error: BaseException | None,
) -> np.ndarray | None:
    comm, seq = st.comm, st.seq
    h = st.header
    if st.gather:
        hb = _HEADER.pack(_MAGIC, seq, *fields, 0 if error is None else 1)
        slot = st.slot_mv
        slot[:HEADER_BYTES] = hb
        if payload is not None:
            nb = payload.nbytes
            slot[HEADER_BYTES : HEADER_BYTES + nb] = payload.data.cast("B")
        wait_polling(comm.Iallgather(st.slot_spec, st.gathered_spec), st, stall_seconds)
        g, step = st.gathered_mv, st.slot_bytes
        same = all(g[k : k + HEADER_BYTES] == hb for k in range(0, st.size * step, step))
    else:
        h[:] = (_MAGIC, seq, *fields, 0 if error is None else 1)
        st.sig[HEADER_WORDS:] = -h
        wait_polling(comm.Iallreduce(st.sig, st.sigmax, op=MPI.MAX), st, stall_seconds)
        same = bool((st.sigmax[:HEADER_WORDS] == -st.sigmax[HEADER_WORDS:]).all())
    if not same:
        _raise_mismatch(st, f"{description} (call #{seq})", error)
    if error is not None:
        raise error
    if payload is None or not st.gather:
        return None
    key = (payload.nbytes, payload.dtype.char)
    rows = st.rows.get(key)
    if rows is None:
        rows = st.rows[key] = st.gathered[:, HEADER_BYTES : HEADER_BYTES + key[0]].view(
            payload.dtype
        )
    return rows
