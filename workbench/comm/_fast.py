"""The cached call path: a plain numpy array reduced with ``auto`` without the general path.

The general path (:func:`workbench.comm.allreduce.reduce_items`) validates the input,
reads the settings, plans the batches, describes the call for the check and picks the
route, every call: several microseconds of Python before any data moves, most of a small
message's time. A call shape that went through it once (same shape, dtype, layout, op,
output mode, communicator and arguments, under the same settings in the environment) is
remembered here as a :class:`SmallCall` holding everything that path computed; the next
call of that shape is a dictionary look-up, one allocation for the result and, for a
message that fits the node window, one numba entry (:func:`workbench.comm._flags.small_call`)
that copies the input into the window, arrives, checks the headers and reduces the whole
message into the result (on more ranks, for a message too large to read whole: reduces its
slice, departs and copies the result out; :class:`SmallCall`); for a larger one that
``auto`` gives to the MPI library, the check round and the library's call
(:class:`MpiCall`). An array of a symmetric buffer of one node reduced in place keeps its
zero-copy protocol, also in one numba entry (:class:`SymmetricCall`), at any size.

It is the same protocol as :meth:`workbench.comm._staging.Staging.call`, with the same call
headers, so ranks taking either path in the same call agree: the mismatch check, the
stall warning and the dead-rank check (Python's wait loop, once the compiled spins run out)
all still hold. One rank is a copy. Anything else (torch tensors, float16, lists, a checked
call across nodes, a symmetric buffer across nodes, sizes where ``auto`` picks one of
workbench's algorithms, a timeline being recorded, another algorithm) takes the general
path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

from workbench.comm import _config, _flags, kernels
from workbench.comm._staging import Staging, reduce_once, template
from workbench.comm.algorithms._base import block_bounds
from workbench.comm.algorithms._mpi import MPI_OPS
from workbench.comm.algorithms._symmetric import Registered, compiled_plan, find
from workbench.comm.kernels import OP_CODES

__all__ = ["Copy", "MpiCall", "SmallCall", "SymmetricCall", "lookup", "remember"]

_IN_PLACE = MPI.IN_PLACE
_FAST_DTYPES = frozenset(np.dtype(t) for t in ("float32", "float64", "int32", "int64"))
_MAX_PLANS = 1024

Key = tuple[Any, ...]
_plans: dict[Key | None, Callable[[np.ndarray, Any], Any]] = {}  # (None: never stored)
_read_env = _config.read_env
_env = [_read_env()]  # the settings in the environment that the cached calls were made under


def key(x: np.ndarray, op: str, comm: Any, out: Any, algorithm: Any, check: Any,
        fusion_bytes: Any) -> Key | None:  # fmt: skip
    """The cache key of a call, or None when its shape cannot be cached. A change of the
    settings in the environment empties the cache (cheaper than a key that holds them)."""
    if algorithm is not None and type(algorithm) is not str:
        return None  # an Algorithm instance: maybe unhashable, and never cached anyway
    env = _read_env()
    if env != _env[0]:  # (the same value objects while unchanged: compared by identity)
        _plans.clear()
        _env[0] = env
    where = None if comm is None else comm.handle
    if out is None:
        return (x.shape, x.dtype, x.strides, op, where, algorithm, check, fusion_bytes)
    if type(out) is not np.ndarray or not out.flags.writeable:
        return None  # (a read-only output is the general path's error to raise)
    if out is x:
        reg = find(x)
        if reg is None:
            return (x.shape, x.dtype, x.strides, op, where, algorithm, check, fusion_bytes, 1)
        if reg.block.multi_node:
            return None  # (its path makes MPI calls between nodes: never cached)
        # a symmetric buffer: its own zero-copy protocol, always (SymmetricCall)
        return (x.shape, x.dtype, x.strides, op, where, algorithm, check, fusion_bytes,
                reg.block.key, reg.offset)  # fmt: skip
    return (x.shape, x.dtype, x.strides, op, where, algorithm, check, fusion_bytes,
            out.shape, out.dtype, out.strides)  # fmt: skip


#: ``lookup(k)``: the cached call of key ``k`` (None for ``k`` None); the dictionary's own
#: method, one Python call less on every cached call.
lookup = _plans.get


def remember(k: Key, call: Callable[[np.ndarray, Any], Any]) -> None:
    """Cache ``call`` under ``k`` (the cache is emptied when it grows past 1024 shapes)."""
    if len(_plans) >= _MAX_PLANS:
        _plans.clear()
    _plans[k] = call


def eligible(x: Any, out: Any) -> bool:
    """Whether a call on ``x`` (into ``out``) can ever take the cached path."""
    return (
        type(x) is np.ndarray
        and x.dtype in _FAST_DTYPES
        and x.flags.c_contiguous
        and (out is None or out is x or (type(out) is np.ndarray and out.flags.c_contiguous))
    )


class Copy:
    """One rank: the reduction is the input itself (copied unless in place)."""

    __slots__ = ()

    def __call__(self, x: np.ndarray, out: Any) -> Any:
        if out is None:
            return x.copy()
        if out is not x:
            np.copyto(out, x)
        return out


class SmallCall:
    """A staged call of one shape on the window ``st`` (see the module doc)."""

    __slots__ = ("check", "desc", "flat", "n", "plan", "rows", "st", "stall")

    def __init__(self, st: Staging, x: np.ndarray, op: str, fields: tuple[int, ...],
                 desc: str, check: bool, stall_seconds: float) -> None:  # fmt: skip
        n = x.size
        self.st, self.n = st, n
        self.rows = (st.rows(0, x.dtype), st.rows(1, x.dtype))  # (the result row, on code 2)
        lo, hi = block_bounds(n, st.p)[st.rank : st.rank + 2]
        self.check, self.stall = check, stall_seconds
        self.flat = x.ndim != 1
        self.desc = desc
        self.plan = plan = np.zeros(_flags.PLAN_WORDS, dtype=np.int64)
        plan[: _flags.PLAN_HEADER] = (
            st.ctl.ctypes.data, st.p, self.rows[0].ctypes.data, self.rows[1].ctypes.data,
            self.rows[0].shape[1], st.rank, st.spins, lo, hi, OP_CODES[op], check,
            reduce_once(x.nbytes, st.p), 0, 0, 0, 0,
        )  # fmt: skip
        plan[_flags.PLAN_HEADER :] = template(fields, n)

    @property
    def once(self) -> bool:
        """Whether the call takes the one-wait protocol (:func:`reduce_once`)."""
        return bool(self.plan[_flags.PLAN_ONCE])

    def __call__(self, x: np.ndarray, out: Any) -> Any:
        st = self.st
        if st.broken:
            st.check_usable()
        st.seq += 1
        seq = st.seq
        half = seq & 1
        if self.check and st.descs[half] is not self.desc:  # read by the others on a mismatch
            st.write_description(self.desc, half)
        result = np.empty_like(x) if out is None else out
        src, dst = (x.reshape(-1), result.reshape(-1)) if self.flat else (x, result)
        code = _flags.small_call(self.plan, half, seq, src, dst)  # (the window by address)
        if code == 1:  # someone has not arrived: wait in Python (stalls, dead ranks)
            st.wait(_flags.ARRIVE, seq, self.stall)
            code = _flags.small_resume(self.plan, half, seq, dst)
        if code == 2:  # someone has not finished reducing its slice
            st.wait(_flags.DEPART, seq, self.stall)
            dst[:] = self.rows[half][st.p, : self.n]
        elif code == -2:
            raise st.mismatch(seq - 1, half)
        return result


class MpiCall:
    """A message ``auto`` gives to the MPI library (larger than the window, at a size where
    no algorithm of workbench beats it): the check round in the node window when the check
    is on (one compiled entry: header, arrive, compare), then the library's ``Allreduce``
    called straight from here, with what the general path would add (the division of a
    ``mean``) and nothing else."""

    __slots__ = ("allreduce", "desc", "divide", "header", "mpi_op", "p", "st", "stall")

    def __init__(self, comm: Any, st: Staging | None, op: str, fields: tuple[int, ...],
                 desc: str, stall_seconds: float) -> None:  # fmt: skip
        self.allreduce, self.p = comm.Allreduce, comm.Get_size()
        self.mpi_op = MPI_OPS["sum" if op == "mean" else op]
        self.divide = op == "mean"
        self.st, self.desc, self.stall = st, desc, stall_seconds  # st: None when unchecked
        self.header = template(fields, 0)

    def __call__(self, x: np.ndarray, out: Any) -> Any:
        st = self.st
        if st is not None:  # the check, as the general path's check-only staged call
            if st.broken:
                st.check_usable()
            st.seq += 1
            seq = st.seq
            half = seq & 1
            if st.descs[half] is not self.desc:
                st.write_description(self.desc, half)
            if _flags.arrive(st.ctl, st.rank, self.header, half, seq, st.spins):
                st.wait(_flags.ARRIVE, seq, self.stall)
            if not _flags.headers_equal(st.ctl, half):
                raise st.mismatch(seq - 1, half)
        if out is x:
            self.allreduce(_IN_PLACE, x, op=self.mpi_op)
            result = x
        else:
            result = np.empty_like(x) if out is None else out
            self.allreduce(x, result, op=self.mpi_op)
        if self.divide:
            kernels.divide_by(result.reshape(-1), self.p)
        return result


class SymmetricCall:
    """In place on a symmetric buffer of one node (``reg``): the zero-copy protocol of
    :func:`workbench.comm.algorithms._symmetric.reduce_registered`, with its call header,
    in one compiled entry (:func:`workbench.comm._flags.symmetric_call`), so ranks taking
    either path in the same call agree; Python only waits when the compiled spins run out
    (stalls, dead ranks) and reads the descriptions on a mismatch."""

    __slots__ = ("block", "check", "desc", "like", "plan", "stall")

    def __init__(self, reg: Registered, op: str, fields: tuple[int, ...], desc: str,
                 check: bool, stall_seconds: float) -> None:  # fmt: skip
        self.block, self.like = reg.block, np.empty(0, reg.dtype)  # (like: the rows' dtype)
        self.plan = compiled_plan(reg, op, fields, check)
        self.check, self.desc, self.stall = check, desc, stall_seconds

    def __call__(self, x: np.ndarray, out: Any) -> Any:
        block = self.block
        if block.broken:
            block.check_usable()
        with block.lock:  # (team threads may reduce the same buffer)
            block.seq += 1
            seq = block.seq
            if self.check and block.descs[0] is not self.desc:
                block.write_description(self.desc, 0)
            code = _flags.symmetric_call(self.plan, seq, self.like)
            if code == 1:  # someone has not arrived: wait in Python (stalls, dead ranks)
                block.wait(_flags.ARRIVE, seq, self.stall)
                code = _flags.symmetric_finish(self.plan, seq, self.like)
            if code == 2:  # someone has not finished writing its slice into every row
                block.wait(_flags.DEPART, seq, self.stall)
            elif code == -2:  # read the descriptions before departing (then they change)
                error = block.mismatch(seq, 0)
                if _flags.depart(block.ctl, block.rank, seq, block.spins):
                    block.wait(_flags.DEPART, seq, self.stall)
                raise error
        return x
