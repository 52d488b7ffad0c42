"""The node window behind checked and small allreduces on a one-node communicator.

Every rank of the node has a control row (flags, two call-header slots) and, in each of two
halves of the window, an input row plus a shared result row. A call writes its 64-byte
header next to its flags — and, when the message is small, its input (packed, when a list
is fused) into its row — then publishes ARRIVE; once every rank has arrived:

* the headers are compared: the mismatch check costs no collective of its own;
* a small message is reduced right there, with no MPI call. Where every rank can afford to
  read all of it (:func:`reduce_once`: two ranks, or a message that is tiny for the number of
  ranks) each rank reduces every input row whole into its own result, in row order (the
  same bits everywhere): one flag wait. Otherwise rank r reduces its slice of every input
  row into the result row, publishes DEPART, and once every slice is done copies (unpacks)
  the result out: two flag waits;
* a large message goes on with the algorithm ``auto`` (or the caller) chose; a large fused
  list (with the check on, so that every rank is known to pass the same sizes) is packed
  into a symmetric buffer of the communicator, reduced there with no further copy and
  unpacked (:meth:`Staging.reduce_fused`).

Consecutive calls use alternating halves and header slots (by call parity). Every call ends
after an arrive wait at least, so a rank can be at most one call ahead of another: it
writes half h again only in call seq + 2, after every rank arrived in call seq + 1 and so
had finished reading half h in call seq. Neither protocol needs a further wait. Team
communicators keep the collective check (their threads must not create windows);
multi-node communicators too.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from workbench import _spans
from workbench.comm import _flags
from workbench.comm._fusion import Batch
from workbench.comm._teams import is_team_comm
from workbench.comm._topology import topology
from workbench.comm._window import NodeWindow
from workbench.comm.algorithms._base import block_bounds
from workbench.comm.algorithms._symmetric import allocate, find, reduce_registered
from workbench.comm.kernels import OP_CODES

__all__ = ["STAGE_BYTES", "Staging", "reduce_once", "staging", "template"]

#: Messages up to this many bytes are reduced inside the window (measured: below it the
#: flag round beats the MPI library's allreduce on one node; see docs/allreduce.md) ...
STAGE_BYTES = 64 << 10
#: ... and up to this many on two ranks, where the one-wait protocol moves less memory than
#: the slice protocol (measured 1.6x the MPI library at 512 KiB, about as fast as cma there;
#: cma takes the larger messages).
PAIR_STAGE_BYTES = 512 << 10
#: On more ranks, every rank reduces the whole message (one wait) while what it reads of
#: the others' rows stays under this many bytes: about the cost of a second flag wait.
ONCE_BYTES = 16 << 10
_MAGIC = 0x57425354  # "WBST"


class Staging(NodeWindow):
    """The staging window of one one-node communicator (see the module doc)."""

    def __init__(self, node: Any, capacity: int | None = None) -> None:
        p = node.Get_size()
        self.capacity = capacity or (PAIR_STAGE_BYTES if p == 2 else STAGE_BYTES)
        super().__init__(node, 2 * (p + 1) * self.capacity, "this communicator")
        self.seq = 0
        self._rows: dict[tuple[int, str], np.ndarray] = {}
        self._fusion: dict[str, np.ndarray] = {}  # dtype -> symmetric buffer for fused lists
        self._stamps = np.zeros(_flags.STAMPS, dtype=np.int64)  # a recorded call's phases
        self._result = np.empty(self.capacity, dtype=np.uint8)  # one-wait: this rank's result
        node.Barrier()  # every control row initialised before anyone uses the window

    def rows(self, half: int, dtype: np.dtype) -> np.ndarray:
        """Half ``half`` as ``(p + 1, capacity // itemsize)`` of ``dtype`` (row p: result)."""
        key = (half, dtype.str)
        view = self._rows.get(key)
        if view is None:
            size = (self.p + 1) * self.capacity
            raw = self.data[half * size : (half + 1) * size]
            view = self._rows[key] = raw.view(dtype).reshape(self.p + 1, -1)
        return view

    def call(
        self,
        batch: Batch | None,
        op: str,
        fields: tuple[int, ...],
        desc: str,
        *,
        check: bool,
        stall_seconds: float,
        error: BaseException | None = None,
    ) -> None:
        """One call: check it (when ``check``) and, with a ``batch`` no larger than the
        capacity, reduce it and put the results into its items. Every rank calls with the
        same kind of arguments (equal headers guarantee it)."""
        self.check_usable()
        t0 = _spans.now() if _spans.on else 0
        self.seq += 1
        seq, half, r = self.seq, self.seq & 1, self.rank
        size = -1 if error is not None else (0 if batch is None else batch.size)
        h = template(fields, size)
        if check:
            self.write_description(desc, half)
        if batch is None:  # the check alone; the data goes another way
            if _flags.arrive(self.ctl, r, h, half, seq, self.spins):
                self.wait(_flags.ARRIVE, seq, stall_seconds)
            if check and not _flags.headers_equal(self.ctl, half):
                raise self.mismatch(seq - 1, half) from error
            if error is not None:
                raise error
            if t0:
                _spans.add("wait for peers", "comm", t0)
            return
        rows = self.rows(half, batch.dtype)
        n, p = batch.size, self.p
        stamps = self._stamps if t0 else _NO_STAMPS
        if batch.fused:
            batch.pack_into(rows[r, :n])
            if t0:
                stamps[0] = _spans.now()
            missing = _flags.arrive(self.ctl, r, h, half, seq, self.spins)
        else:  # one numba call copies the input in and arrives
            missing = _flags.stage_and_arrive(
                self.ctl, r, h, half, seq, self.spins, rows[r], batch.items[0].src, stamps
            )
        if missing:
            self.wait(_flags.ARRIVE, seq, stall_seconds)
        if reduce_once(batch.nbytes, p):
            t1 = _spans.now() if t0 else 0
            result = self._result.view(batch.dtype)[:n]
            code = _flags.small_finish(self.ctl, r, half, check, seq, self.spins, rows, result,
                                       0, 0, OP_CODES[op], True)  # fmt: skip
            if code == -2:
                raise self.mismatch(seq - 1, half)
            if t0:
                stamps[1], stamps[2] = t1, _spans.now()
            batch.take_result(result)
            if t0:
                _record_phases(t0, stamps, stamps[2])
            return
        bounds = block_bounds(n, p)
        missing = _flags.reduce_and_depart(
            self.ctl, r, half, check, seq, self.spins, rows, bounds[r], bounds[r + 1],
            OP_CODES[op], p, stamps,
        )  # fmt: skip
        if missing == -2:
            raise self.mismatch(seq - 1, half)
        if missing:
            self.wait(_flags.DEPART, seq, stall_seconds)
        t1 = _spans.now() if t0 else 0
        batch.take_result(rows[p, :n])
        if t0:
            _record_phases(t0, stamps, t1)

    def reduce_fused(self, batch: Batch, op: str, comm: Any, stall_seconds: float) -> None:
        """Reduce a fused ``batch`` through a symmetric buffer of ``comm``: one pack into it,
        the zero-copy reduction, one unpack. Collective, and only after a successful check
        (the buffer grows the same way on every rank)."""
        key = batch.dtype.str
        buf = self._fusion.get(key)
        if buf is None or buf.size < batch.size:
            grow = batch.size if buf is None else max(batch.size, 2 * buf.size)
            buf = self._fusion[key] = allocate(grow, batch.dtype, comm)
        flat = buf[: batch.size]
        reg = find(flat)
        assert reg is not None
        batch.pack_into(flat)
        reduce_registered(
            reg, reg.block, op, _NO_FIELDS, "", check=False, stall_seconds=stall_seconds
        )
        batch.take_result(flat)


_NO_FIELDS = (0, 0, 0, 0, 0)
_NO_STAMPS = np.zeros(0, dtype=np.int64)  # the kernels stamp nothing


def _record_phases(t0: int, stamps: np.ndarray, t1: int) -> None:
    """The phases of a staged call (timeline): copy in, wait for the others to arrive,
    reduce (this rank's slice, or the whole message), wait for them to finish (none when
    ``t1`` is the end of the reduction), copy the result out."""
    copied, reducing, reduced = (int(t) for t in stamps)
    _spans.add("copy in", "comm", t0, copied)
    _spans.add("wait for peers", "comm", copied, reducing)
    _spans.add("reduce", "comm", reducing, reduced)
    if t1 > reduced:
        _spans.add("wait for peers", "comm", reduced, t1)
    _spans.add("copy out", "comm", t1)


def reduce_once(nbytes: int, p: int) -> bool:
    """Whether a staged message of ``nbytes`` on ``p`` ranks takes the one-wait protocol
    (every rank reduces all of it; see the module doc)."""
    return p == 2 or (p - 1) * nbytes <= ONCE_BYTES


_templates: dict[tuple[tuple[int, ...], int], np.ndarray] = {}


def template(fields: tuple[int, ...], size: int) -> np.ndarray:
    """The call header for ``fields`` and a staged ``size`` (word 1, the call number, is
    filled in when it is written)."""
    h = _templates.get((fields, size))
    if h is None:
        if len(_templates) > 4096:
            _templates.clear()
        h = _templates[(fields, size)] = np.array([_MAGIC, 0, *fields, size], dtype=np.int64)
    return h


_lock = threading.Lock()
_states: dict[int, Staging | None] = {}


def staging(comm: Any) -> Staging | None:
    """The staging window of ``comm``, or None where it does not apply (one rank, several
    nodes, a team's communicator). Created collectively at the first call on ``comm``."""
    key = comm.handle
    try:
        return _states[key]  # None is a valid answer: no .get()
    except KeyError:
        pass  # the first call on comm
    found: Staging | None = None
    if comm.Get_size() > 1 and not is_team_comm(comm):
        topo = topology(comm)
        if topo.single_node:
            found = Staging(topo.node)
    with _lock:
        _states[key] = found
    return found
