"""Recording on the ranks: the ``wb.timeline(path)`` block, the whole process
(``WORKBENCH_TIMELINE``), and the two halves of ``%%distributed --timeline``.

The ranks' records meet on rank 0 through point-to-point messages polled against a
deadline, never a blocking collective: a rank that died or never reached the end of the
block costs rank 0 the deadline and a warning naming it, not a hang.
"""

from __future__ import annotations

import atexit
import os
import pickle
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from workbench import _spans
from workbench._spans import Record
from workbench.timeline._trace import Trace, merge

__all__ = ["GATHER_SECONDS", "Recording", "begin_cell", "end_cell", "gather", "record_process"]

#: How long rank 0 waits for the other ranks' records.
GATHER_SECONDS = 60.0
_TAG = 0x5742  # "WB": the records' messages (within the 32767 every MPI allows)
_last: list[Trace] = []  # the last trace this process merged or loaded


def remember(trace: Trace) -> Trace:
    """Keep ``trace`` as the one :func:`workbench.timeline.show` draws by default."""
    _last[:] = [trace]
    return trace


def last() -> Trace | None:
    """The last trace recorded, merged or loaded in this process."""
    return _last[0] if _last else None


def _world() -> Any:
    """COMM_WORLD when MPI is initialised and running, else None (no import of mpi4py)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return None
    return mpi.COMM_WORLD


def gather(record: Record, comm: Any, seconds: float = GATHER_SECONDS) -> list[Record] | None:
    """Every rank's record on rank 0 of ``comm`` (None elsewhere), waited for at most
    ``seconds``; a rank missing then is named in a warning and left out.

    Each gather on ``comm`` is numbered alike on every rank; a record that arrives late
    from an earlier gather is dropped, never taken for this one's. A send rank 0 has not
    taken in time stays referenced (``_pending``) until it completes."""
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    gen = _generation[comm.handle] = _generation.get(comm.handle, 0) + 1
    deadline = time.monotonic() + seconds
    _pending[:] = [(req, buf) for req, buf in _pending if not req.Test()]
    if rank != 0:
        buf = _packed((gen, record))
        req = comm.Isend([buf, MPI.BYTE], dest=0, tag=_TAG)
        while not req.Test():
            if time.monotonic() > deadline:
                _pending.append((req, buf))  # its buffer must outlive the send
                warnings.warn(f"timeline: rank 0 did not take rank {rank}'s record within "
                              f"{seconds:.0f} s", stacklevel=2)  # fmt: skip
                return None
            time.sleep(0.001)
        return None
    records, status = [record], MPI.Status()
    # asked source by source: one rank's messages keep their order, and the number of the
    # gather tells a late record of an earlier one (dropped) from this one's
    waiting = set(range(1, size))
    while waiting and time.monotonic() < deadline:
        arrived = set()
        for r in waiting:
            if comm.Iprobe(source=r, tag=_TAG, status=status):
                got_gen, got = _received(comm, status)
                if got_gen == gen:
                    records.append(got)
                    arrived.add(r)
        waiting -= arrived
        if not arrived:
            time.sleep(0.001)
    if waiting:
        warnings.warn(f"timeline: no record from rank(s) {sorted(waiting)} within "
                      f"{seconds:.0f} s; the trace shows the others", stacklevel=2)  # fmt: skip
    return records


_generation: dict[int, int] = {}  # communicator handle -> gathers made on it
_pending: list[tuple[Any, Any]] = []  # (request, buffer) of sends not taken in time


def _received(comm: Any, status: Any) -> tuple[int, Record]:
    """The probed message (``status``): (gather number, record)."""
    from mpi4py import MPI

    buf = bytearray(status.Get_count(MPI.BYTE))
    comm.Recv([buf, MPI.BYTE], source=status.Get_source(), tag=_TAG)
    got: tuple[int, Record] = pickle.loads(buf)
    return got


def _packed(obj: Any) -> Any:
    import numpy as np

    return np.frombuffer(pickle.dumps(obj, protocol=5), dtype=np.uint8)


class Recording:
    """``with wb.timeline(path):`` on every rank: records the block; at its end rank 0
    merges every rank's spans into :attr:`trace` and writes ``path`` (when given). Other
    ranks' :attr:`trace` is None. Collective over ``comm`` (default ``COMM_WORLD``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, comm: Any = None) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self.comm = comm
        self.trace: Trace | None = None
        self._was_on = False
        self._since: tuple[int, int] | None = None

    def __enter__(self) -> Recording:
        self._was_on = _spans.on
        if not self._was_on:
            _spans.start()
        self._since = _spans.mark()  # (the whole process recorded: it keeps its spans)
        return self

    def __exit__(self, *exc: object) -> None:
        comm = self.comm if self.comm is not None else _world()
        rank = 0 if comm is None else comm.Get_rank()
        record = _spans.take(rank, since=self._since, keep=self._was_on)
        if not self._was_on:
            _spans.stop()
        records = [record] if comm is None else gather(record, comm)
        if records is not None:
            self.trace = remember(merge(records))
            if self.path is not None:
                self.trace.save(self.path)


def record_process(path: str) -> None:
    """Record this whole process (``WORKBENCH_TIMELINE=path``): spans from now on; at exit,
    rank 0 of ``COMM_WORLD`` (or the process alone, without MPI) writes the merged trace."""
    if not _spans.on:
        _spans.start()
    atexit.register(_write_at_exit, path)


def _write_at_exit(path: str) -> None:
    comm = _world()
    record = _spans.take(rank=0 if comm is None else comm.Get_rank())
    _spans.stop()
    records = [record] if comm is None else gather(record, comm, seconds=30.0)
    if records is not None:
        out = merge(records).save(path)
        print(f"workbench: timeline of {len(records)} rank(s) written to {out}", file=sys.stderr)


# -- %%distributed --timeline: the engines' halves (called through pool.run) -------------
_cell: list[int] = []


def begin_cell() -> None:
    """Engine side: start recording a cell."""
    _spans.start()
    _cell[:] = [_spans.now()]


def end_cell() -> Record:
    """Engine side: the cell's span, then everything recorded since :func:`begin_cell`."""
    if _cell:
        _spans.add("cell", "cell", _cell[0])
    _cell.clear()
    comm = _world()
    record = _spans.take(rank=None if comm is None else comm.Get_rank())
    _spans.stop()
    return record
