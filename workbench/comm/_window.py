"""A node-shared window with a control row per rank: what the flag-synchronised paths share.

The window holds, per rank of the node, a control row of ``CTL_WORDS`` int64 words
(:mod:`workbench.comm._flags`: flags, the process id, two call-header slots and two
description slots), followed by the data area its user lays out. :meth:`NodeWindow.wait`
waits for a flag of every rank: it spins in numba, yields the CPU between rounds, warns
about late ranks after ``WORKBENCH_STALL_SECONDS`` and raises
:class:`~workbench.errors.AllreduceAbortedError` when a rank it waits for has died (its
process is gone), instead of hanging.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
import psutil
from mpi4py import MPI

from workbench._util import format_ranks
from workbench.comm import _flags
from workbench.comm._checks import mismatch_error
from workbench.comm._config import ENV_STALL
from workbench.errors import AllreduceAbortedError, AllreduceMismatchError

__all__ = ["NodeWindow"]

#: Flag polls per visit to the numba kernel before Python yields the CPU, when every rank of
#: the node has a core of its own (spinning is then the fastest wait) ...
SPINS = 2000
#: ... and when the node's ranks outnumber the cores this process may run on: a spinning
#: rank would burn the time slice of the rank it waits for, so it yields almost at once.
SPINS_OVERSUBSCRIBED = 20
_DEATH_CHECK = 0.25  # seconds between looks for dead ranks while waiting
_DESC_WORDS = _flags.DESC_BYTES // 8


class NodeWindow:
    """Control rows and ``data_bytes`` of data in one MPI-3 shared window on ``node``.

    ``what`` names the window's use in messages (e.g. ``"a symmetric buffer"``).
    """

    def __init__(self, node: Any, data_bytes: int, what: str) -> None:
        self.node = node
        self.p, self.rank = node.Get_size(), node.Get_rank()
        self.what = what
        ctl_bytes = self.p * _flags.CTL_WORDS * 8
        total = ctl_bytes + data_bytes
        self.win = MPI.Win.Allocate_shared(total if self.rank == 0 else 0, 1, comm=node)
        mem, _ = self.win.Shared_query(0)
        raw = np.frombuffer(mem.cast("B"), dtype=np.uint8, count=total)
        self.ctl = raw[:ctl_bytes].view(np.int64).reshape(self.p, _flags.CTL_WORDS)
        self.data = raw[ctl_bytes:]
        self.ctl[self.rank].fill(0)
        self.ctl[self.rank, _flags.PID] = os.getpid()
        self.header = np.zeros(_flags.HEADER_WORDS, dtype=np.int64)
        self.spins = SPINS if self.p <= len(os.sched_getaffinity(0)) else SPINS_OVERSUBSCRIBED
        self.broken: str | None = None
        self.descs = ["", ""]

    def wait(self, column: int, seq: int, stall_seconds: float) -> None:
        """Return once every rank's ``column`` reached ``seq`` (see the module doc)."""
        if not _flags.wait_all(self.ctl, column, seq, self.spins):
            return
        start = time.monotonic()
        check_at, warn_at = start + _DEATH_CHECK, start + stall_seconds
        while _flags.wait_all(self.ctl, column, seq, self.spins):
            os.sched_yield()  # oversubscribed ranks (more ranks than cores) get to run
            now = time.monotonic()
            if now >= check_at:
                check_at = now + _DEATH_CHECK
                self._raise_if_dead(column, seq)
            if now >= warn_at:
                warn_at = now + stall_seconds
                late = format_ranks(self._missing(column, seq))
                warnings.warn(
                    f"workbench.allreduce stalled: node rank {self.rank} has waited "
                    f"{now - start:.1f}s in call #{seq} on {self.what}; node rank(s) {late} "
                    "have not joined yet. Check that every rank calls allreduce the same "
                    f"number of times; raise {ENV_STALL} (now {stall_seconds:g}) if the "
                    "wait is expected.",
                    RuntimeWarning,
                    stacklevel=5,
                )

    def _missing(self, column: int, seq: int) -> list[int]:
        return [q for q in range(self.p) if self.ctl[q, column] < seq]

    def _raise_if_dead(self, column: int, seq: int) -> None:
        dead = []
        for q in self._missing(column, seq):
            pid = int(self.ctl[q, _flags.PID])
            try:
                gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                dead.append(f"rank {q} (pid {pid})")
        if dead:
            self.broken = (
                f"node {', '.join(dead)} died during allreduce call #{seq} on {self.what}; "
                "the MPI job is broken: restart the pool (`%wb restart`)"
            )
            raise AllreduceAbortedError(self.broken)

    def check_usable(self) -> None:
        """Raise at once when a rank of this window died in an earlier call."""
        if self.broken:
            raise AllreduceAbortedError(self.broken)

    def write_description(self, desc: str, slot: int) -> None:
        """Put this rank's call description where the others read it on a mismatch."""
        if desc == self.descs[slot]:
            self.descs[slot] = desc  # (the same object from now on: a cheaper test)
            return
        raw = desc.encode()[: _flags.DESC_BYTES - 1]
        first = _flags.DESC_WORD + slot * _DESC_WORDS
        text = self.ctl[self.rank, first : first + _DESC_WORDS].view(np.uint8)
        text[:] = 0
        text[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        self.descs[slot] = desc

    def mismatch(
        self, seq: int, slot: int, *, across_nodes: bool = False
    ) -> AllreduceMismatchError:
        """The error every rank raises when the call headers of ``slot`` differ (ranks are
        node ranks; on a one-node communicator they are its ranks)."""
        first = _flags.DESC_WORD + slot * _DESC_WORDS
        descs = [
            self.ctl[q, first : first + _DESC_WORDS].view(np.uint8).tobytes()
            .split(b"\0", 1)[0].decode(errors="replace")
            for q in range(self.p)
        ]  # fmt: skip
        where = f" on {self.what}" + (" (between this node and another)" if across_nodes else "")
        return mismatch_error(descs, seq, self.p, where)

    def free(self) -> None:
        """Release the window (collective over the node)."""
        self.win.Free()
