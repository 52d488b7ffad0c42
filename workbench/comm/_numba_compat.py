"""The one module that reaches below numba's public API: the LLVM-level helpers of the flag
kernels (:mod:`workbench.comm._flags`).

numba's public ``numba.extending.intrinsic`` lets a kernel emit LLVM IR (through llvmlite)
for what numba has no operation for: an atomic load with acquire order, a store with release
order, the CPU's spin-wait hint, the monotonic clock (the timeline's phase stamps), an
address as a pointer (an array known by address only), and Linux's cross-memory attach
(``process_vm_readv``/``writev``: one rank copying straight from or into another's private
array). The one helper they need from numba's internals is
``numba.core.cgutils.get_or_insert_function``; it is read here, with a fallback on llvmlite's
public API, so a numba upgrade that moves it is one file's work.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any, cast

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = [
    "as_voidptr",
    "clock_ns",
    "cpu_relax",
    "declare_function",
    "declare_function_public",
    "load_acquire",
    "store_release",
    "vm_read",
    "vm_readv",
    "vm_write",
    "vm_writev",
]


def declare_function_public(module: Any, fnty: Any, name: str) -> Any:
    """The function ``name`` of the llvmlite ``module``, declared with type ``fnty`` when
    the module has none by that name (llvmlite's public ``Module.get_global`` and
    ``ir.Function``): what numba's helper does."""
    try:
        return module.get_global(name)
    except KeyError:
        return ir.Function(module, fnty, name)


try:  # not numba's public API (numba.cgutils until 0.49, numba.core.cgutils since)
    from numba.core.cgutils import get_or_insert_function as _numba_declare
except ImportError:  # gone: the same with llvmlite's public API
    _numba_declare = declare_function_public

#: ``declare_function(module, fnty, name)``: numba's ``cgutils.get_or_insert_function``
#: when it has one, else :func:`declare_function_public`. Looked up when a kernel that uses
#: :func:`cpu_relax` is compiled.
declare_function: Callable[[Any, Any, str], Any] = _numba_declare

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


@intrinsic
def _load_acquire(typingctx, addr):  # pragma: no cover - compiled
    sig = types.int64(addr)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def _store_release(typingctx, addr, value):  # pragma: no cover - compiled
    sig = types.void(addr, value)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        val = context.cast(builder, args[1], signature.args[1], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _cpu_relax(typingctx):  # pragma: no cover - compiled
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:  # PAUSE: lets the sibling hyperthread run while we spin
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(declare_function(builder.module, fnty, "llvm.x86.sse2.pause"), [])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _as_voidptr(typingctx, addr):  # pragma: no cover - compiled
    sig = types.voidptr(addr)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


_CLOCK_MONOTONIC = 1  # Linux (the kernels' platform): what time.monotonic_ns reads


@intrinsic
def _clock_ns(typingctx):  # pragma: no cover - compiled
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
        # a symbol, not an address: the compiled kernel stays cacheable
        clock = declare_function(builder.module, fnty, "clock_gettime")
        with builder.goto_entry_block():  # one slot per function, not one per loop turn
            ts = builder.alloca(timespec)
        builder.call(clock, [ir.Constant(i32, _CLOCK_MONOTONIC), ts])
        zero = ir.Constant(i32, 0)
        sec = builder.load(builder.gep(ts, [zero, zero]))
        nsec = builder.load(builder.gep(ts, [zero, ir.Constant(i32, 1)]))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


_I32, _I64 = ir.IntType(32), ir.IntType(64)
_IOVEC = ir.LiteralStructType([_I64, _I64])  # struct iovec: (base, length) on a 64-bit Linux


def _vm_call(builder: Any, name: str, pid: Any, mine: Any, n_mine: Any, theirs: Any,
             n_theirs: Any) -> Any:  # fmt: skip
    """Emit Linux's ``name`` (``process_vm_readv``/``writev``) on the ``iovec`` pointers
    ``mine`` and ``theirs``: the bytes copied, or -errno."""
    fnty = ir.FunctionType(_I64, [_I32, _IOVEC.as_pointer(), _I64, _IOVEC.as_pointer(), _I64,
                                  _I64])  # fmt: skip
    fn = declare_function(builder.module, fnty, name)
    errno_loc = declare_function(builder.module, ir.FunctionType(_I32.as_pointer(), []),
                                 "__errno_location")  # fmt: skip
    zero64 = ir.Constant(_I64, 0)
    got = builder.call(fn, [builder.trunc(pid, _I32), mine, n_mine, theirs, n_theirs, zero64])
    errno = builder.sext(builder.load(builder.call(errno_loc, [])), _I64)
    return builder.select(builder.icmp_signed("<", got, zero64), builder.neg(errno), got)


def _vm_copy(name: str) -> Any:
    """An intrinsic calling Linux's ``name`` (``process_vm_readv``/``process_vm_writev``)
    with one local and one remote ``iovec``: ``(pid, local address, remote address,
    nbytes) -> bytes copied, or -errno``."""

    @intrinsic
    def _call(typingctx, pid, local, remote, nbytes):  # pragma: no cover - compiled
        sig = types.int64(pid, local, remote, nbytes)

        def codegen(context, builder, signature, args):
            with builder.goto_entry_block():
                mine, theirs = builder.alloca(_IOVEC), builder.alloca(_IOVEC)
            zero, one = ir.Constant(_I32, 0), ir.Constant(_I32, 1)
            pid_v, loc, rem, n = (context.cast(builder, v, t, types.int64)
                                  for v, t in zip(args, signature.args, strict=True))  # fmt: skip
            builder.store(loc, builder.gep(mine, [zero, zero]))
            builder.store(n, builder.gep(mine, [zero, one]))
            builder.store(rem, builder.gep(theirs, [zero, zero]))
            builder.store(n, builder.gep(theirs, [zero, one]))
            one64 = ir.Constant(_I64, 1)
            return _vm_call(builder, name, pid_v, mine, one64, theirs, one64)

        return sig, codegen

    return _call


def _vm_copy_vectored(name: str) -> Any:
    """An intrinsic calling Linux's ``name`` with ``iovec`` arrays given by address (int64
    rows of ``(base, length)``, the layout of ``struct iovec`` on a 64-bit Linux):
    ``(pid, local iovecs, how many, remote iovecs, how many) -> bytes copied, or -errno``."""

    @intrinsic
    def _call(typingctx, pid, local, n_local, remote, n_remote):  # pragma: no cover - compiled
        sig = types.int64(pid, local, n_local, remote, n_remote)

        def codegen(context, builder, signature, args):
            kinds = zip(args, signature.args, strict=True)
            pid_v, loc, n_loc, rem, n_rem = (context.cast(builder, v, t, types.int64)
                                             for v, t in kinds)  # fmt: skip
            iov = _IOVEC.as_pointer()
            return _vm_call(builder, name, pid_v, builder.inttoptr(loc, iov), n_loc,
                            builder.inttoptr(rem, iov), n_rem)  # fmt: skip

        return sig, codegen

    return _call


_process_vm_readv = _vm_copy("process_vm_readv")
_process_vm_writev = _vm_copy("process_vm_writev")
_process_vm_readv_vectored = _vm_copy_vectored("process_vm_readv")
_process_vm_writev_vectored = _vm_copy_vectored("process_vm_writev")


# What numba-compiled code calls (numba types the calls itself: the casts only tell mypy
# the signatures as a kernel sees them, not the decorator's ``(typingctx, ...)`` ones).
#: ``load_acquire(addr) -> int64``: the int64 at address ``addr``, loaded with acquire order.
load_acquire = cast("Callable[[int], int]", _load_acquire)
#: ``store_release(addr, value)``: store ``value`` as int64 at ``addr`` with release order.
store_release = cast("Callable[[int, int], None]", _store_release)
#: ``cpu_relax()``: the spin-wait hint (x86 ``PAUSE``; nothing elsewhere).
cpu_relax = cast("Callable[[], None]", _cpu_relax)
#: ``vm_read(pid, local, remote, nbytes) -> int64``: copy ``nbytes`` from address ``remote``
#: of process ``pid`` to ``local`` here (``process_vm_readv``): bytes copied, or -errno.
vm_read = cast("Callable[[int, int, int, int], int]", _process_vm_readv)
#: ``vm_write(pid, local, remote, nbytes) -> int64``: the other way (``process_vm_writev``).
vm_write = cast("Callable[[int, int, int, int], int]", _process_vm_writev)
#: ``vm_readv(pid, local_iov, n_local, remote_iov, n_remote) -> int64``: ``vm_read`` of
#: many ranges in one system call (the iovec arrays by address: int64 rows of base, length).
vm_readv = cast("Callable[[int, int, int, int, int], int]", _process_vm_readv_vectored)
#: ``vm_writev(pid, local_iov, n_local, remote_iov, n_remote) -> int64``: the other way.
vm_writev = cast("Callable[[int, int, int, int, int], int]", _process_vm_writev_vectored)
#: ``as_voidptr(addr) -> void*``: an address as a pointer, for ``numba.carray(ptr, n, dtype)``
#: (an array of this process that a kernel knows by address only).
as_voidptr = cast("Callable[[int], Any]", _as_voidptr)
#: ``clock_ns() -> int64``: ``CLOCK_MONOTONIC`` in nanoseconds, the clock of
#: :func:`time.monotonic_ns` (about 20 ns a read).
clock_ns = cast("Callable[[], int]", _clock_ns)
