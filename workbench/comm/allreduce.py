"""The public allreduce: one tensor, a fused list of tensors, checked and tunable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpi4py import MPI

from workbench import _spans
from workbench.comm import _config, _fast
from workbench.comm._checks import CallFields, agree, comm_state, signature
from workbench.comm._convert import Item, check_op, finish, prepare
from workbench.comm._fusion import Batch, plan
from workbench.comm._staging import staging
from workbench.comm._teams import AllreduceHandle, submit
from workbench.comm.algorithms import Algorithm, AutoAlgorithm, CmaAlgorithm, get_algorithm
from workbench.comm.algorithms._cma import DIRECT_AVERAGE_BYTES
from workbench.comm.algorithms._mpi import MPIAlgorithm
from workbench.comm.algorithms._symmetric import Registered, find, reduce_registered
from workbench.errors import InvalidValueError

__all__ = ["allreduce", "allreduce_async"]

_OP_CODES = {"sum": 1, "mean": 2, "max": 3, "min": 4}
_DESCRIBE_MAX = 8  # tensors listed in a mismatch description
_single_cache: dict[tuple[Any, ...], tuple[str, CallFields]] = {}
_NO_FIELDS: CallFields = (0, 0, 0, 0, 0)  # header fields of an unchecked call


def _algorithm_code(algo: Algorithm) -> int:
    return signature(f"{type(algo).__qualname__}:{algo.name}")


def _describe(items: list[Item], op: str, algo: Algorithm, many: bool) -> str:
    parts = [it.describe() for it in items[:_DESCRIBE_MAX]]
    if len(items) > _DESCRIBE_MAX:
        total = sum(it.src.size for it in items)
        parts.append(f"... ({len(items)} tensors, {total} elements, hash {_items_hash(items):08x})")
    what = f"[{', '.join(parts)}]" if many else parts[0]
    return f"{what} op={op} algorithm={algo.name}"


def _kind(error: BaseException) -> str:
    """The built-in kind of ``error`` (``TypeError`` for workbench's InvalidTypeError), the
    name a user catches; the other ranks' messages show it."""
    for cls in type(error).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return type(error).__name__


def _items_hash(items: list[Item]) -> int:
    return signature(";".join(it.describe() for it in items))


def _call_fields(items: list[Item], op: str, algo: Algorithm, desc: str) -> CallFields:
    h = signature(desc) if len(items) <= _DESCRIBE_MAX else _items_hash(items) ^ signature(desc)
    return (h, sum(it.src.size for it in items), len(items), _OP_CODES[op], _algorithm_code(algo))


def reduce_items(
    xs: Sequence[Any],
    outs: Sequence[Any] | None,
    op: str,
    comm: Any,
    *,
    many: bool,
    algorithm: str | Algorithm | None,
    check: bool | str | None,
    fusion_bytes: int | str | None,
) -> list[Any]:
    """Validate, check across ranks, reduce and return the results of ``xs``; one span on
    the timeline when it is recorded (:mod:`workbench._spans`)."""
    if not _spans.on:
        return _reduce_items(xs, outs, op, comm, many, algorithm, check, fusion_bytes)
    t0 = _spans.now()
    try:
        return _reduce_items(xs, outs, op, comm, many, algorithm, check, fusion_bytes)
    finally:
        nbytes = sum(int(getattr(x, "nbytes", 0)) for x in xs)
        name = algorithm if isinstance(algorithm, str) or algorithm is None else algorithm.name
        args = {"bytes": nbytes, "tensors": len(xs), "op": op, "algorithm": name or "auto"}
        _spans.add("allreduce", "comm", t0, 0, args)


def _reduce_items(
    xs: Sequence[Any],
    outs: Sequence[Any] | None,
    op: str,
    comm: Any,
    many: bool,
    algorithm: str | Algorithm | None,
    check: bool | str | None,
    fusion_bytes: int | str | None,
) -> list[Any]:
    op = check_op(op)
    cfg = _config.settings(
        algorithm=algorithm if isinstance(algorithm, str) else None,
        fusion_bytes=fusion_bytes,
        check=check,
    )
    algo = get_algorithm(algorithm if isinstance(algorithm, Algorithm) else cfg.algorithm)
    comm = MPI.COMM_WORLD if comm is None else comm
    if algo.shortcuts:  # (auto) a symmetric buffer in place is reduced where it lies
        target = symmetric_target(xs, outs)
        if target is not None:
            return _reduce_symmetric(xs, target, op, algo, many, cfg)
    error: Exception | None = None
    try:
        items = [
            prepare(x, None if outs is None else outs[k], op, f"tensor {k}" if many else "input")
            for k, x in enumerate(xs)
        ]
    except (TypeError, ValueError) as exc:
        if not cfg.check:
            raise
        items, error = [], exc
    batches = plan(items, cfg.fusion_bytes)
    st = staging(comm)
    if st is not None:  # one node: the check (and a small message) through the node window
        # (every rank asks, rejected input or not: auto's plan is collective the first time)
        staged = algo.shortcuts and (
            not isinstance(algo, AutoAlgorithm)
            or algo.stages(batches[0].nbytes if batches else 0, comm)
        )
        small = error is None and staged and len(batches) == 1 and batches[0].nbytes <= st.capacity
        if cfg.check or small:
            desc, fields = (
                _signature(items, op, algo, many, error) if cfg.check else ("", _NO_FIELDS)
            )
            st.call(
                batches[0] if small else None, op, fields, desc,
                check=cfg.check, stall_seconds=cfg.stall_seconds, error=error,
            )  # fmt: skip
            if small:
                return [finish(it) for it in items]
        for batch in batches:
            t0 = _spans.now() if _spans.on else 0
            direct = _direct(batch, algo, comm)
            if direct is not None:  # a list reduced straight between the tensors: no packing
                direct.reduce_many([it.src for it in batch.items], batch.targets(),
                                   batch.offsets, op, comm)  # fmt: skip
            elif batch.fused and cfg.check and algo.shortcuts:
                st.reduce_fused(batch, op, comm, cfg.stall_seconds)
            else:
                batch.run(op, comm, algo, None)
            if t0:
                name = algo.name if direct is None else direct.name
                _spans.add("reduce", "comm", t0, 0, {"algorithm": name, "bytes": batch.nbytes})
        return _finish(items)
    rows = None
    if cfg.check:
        t0 = _spans.now() if _spans.on else 0
        payload = None
        if (
            error is None
            and algo.shortcuts
            and len(batches) == 1
            and comm_state(comm).can_inline(batches[0].nbytes)
        ):
            payload = batches[0].packed()
        desc, fields = _signature(items, op, algo, many, error)
        rows = agree(comm, fields, desc, cfg.stall_seconds, payload=payload, error=error)
        if t0:
            _spans.add("check", "comm", t0)
    for batch in batches:
        t0 = _spans.now() if _spans.on else 0
        batch.run(op, comm, algo, rows)
        if t0:
            _spans.add("reduce", "comm", t0, 0, {"algorithm": algo.name, "bytes": batch.nbytes})
    return _finish(items)


def _direct(batch: Batch, algo: Algorithm, comm: Any) -> CmaAlgorithm | None:
    """The algorithm that reduces the fused ``batch`` without packing it (``cma``, chosen,
    or picked by ``auto`` for the batch's size, for tensors that are not tiny), else None."""
    if not batch.fused or batch.nbytes < DIRECT_AVERAGE_BYTES * len(batch.items):
        return None
    if isinstance(algo, AutoAlgorithm):
        algo = algo.select(batch.nbytes, comm)
    return algo if isinstance(algo, CmaAlgorithm) else None


def _finish(items: list[Item]) -> list[Any]:
    """The results of ``items`` (copied out where they were staged); a span when recorded."""
    if not _spans.on:
        return [finish(it) for it in items]
    t0 = _spans.now()
    results = [finish(it) for it in items]
    _spans.add("copy out", "comm", t0)
    return results


def _reduce_symmetric(
    xs: Sequence[Any],
    target: tuple[Any, Registered],
    op: str,
    algo: Algorithm,
    many: bool,
    cfg: _config.Settings,
) -> list[Any]:
    """In place on a symmetric buffer: the zero-copy path. Inputs are validated once per
    call shape (cached); a rank whose input is rejected still takes part, so the others
    raise a mismatch instead of waiting for it."""
    block, reg = target
    error: Exception | None = None
    key = (xs[0].shape, xs[0].dtype, op, algo, many, "symmetric") if len(xs) == 1 else None
    found = _single_cache.get(key) if key is not None else None
    if found is None:
        try:
            items = [
                prepare(x, x, op, f"tensor {k}" if many else "input") for k, x in enumerate(xs)
            ]
        except (TypeError, ValueError) as exc:
            if not cfg.check:
                raise
            items, error = [], exc
        found = _signature(items, op, algo, many, error)
        if key is not None and error is None:
            _single_cache[key] = found
    desc, fields = found
    reduce_registered(
        reg if error is None else None, block, op, fields, desc,
        check=cfg.check, stall_seconds=cfg.stall_seconds, error=error,
    )  # fmt: skip
    return list(xs)


def _signature(
    items: list[Item], op: str, algo: Algorithm, many: bool, error: BaseException | None
) -> tuple[str, CallFields]:
    """The call's description and check fields (cached for the common one-tensor call)."""
    if error is not None:
        desc = f"rejected locally: {_kind(error)}: {error}"
        return desc, (signature(desc), -1, -1, _OP_CODES[op], _algorithm_code(algo))
    if len(items) != 1:
        desc = _describe(items, op, algo, many)
        return desc, _call_fields(items, op, algo, desc)
    it = items[0]
    key = (it.shape, it.dtype.char, op, algo, many)
    found = _single_cache.get(key)
    if found is None:
        desc = _describe(items, op, algo, many)
        found = _single_cache[key] = (desc, _call_fields(items, op, algo, desc))
        if len(_single_cache) > 4096:
            _single_cache.clear()
    return found


def symmetric_target(xs: Sequence[Any], outs: Sequence[Any] | None) -> tuple[Any, Any] | None:
    """``(block, registered)`` when ``xs`` is reduced in place and lives in one symmetric
    buffer: one array, or a list of arrays that tile one contiguous range of it."""
    if outs is None or len(xs) == 0:
        return None
    if len(xs) == 1:
        reg = find(xs[0]) if outs[0] is xs[0] else None
        return None if reg is None else (reg.block, reg)
    regs = []
    for x, o in zip(xs, outs, strict=True):
        reg = find(x) if o is x else None
        if reg is None:
            return None
        regs.append(reg)
    first = regs[0]
    regs.sort(key=lambda r: r.offset)
    end = regs[0].offset
    for reg in regs:
        if reg.block is not first.block or reg.dtype != first.dtype or reg.offset != end:
            return None
        end += reg.size * reg.dtype.itemsize
    whole = Registered(first.block, regs[0].offset, sum(r.size for r in regs), first.dtype)
    return first.block, whole


def allreduce(
    x: Any,
    op: str = "sum",
    comm: Any = None,
    out: Any = None,
    *,
    algorithm: str | Algorithm | None = None,
    check: bool | None = None,
    fusion_bytes: int | str | None = None,
) -> Any:
    """Reduce ``x`` across the ranks of ``comm`` (default ``MPI.COMM_WORLD``).

    ``x`` is a numpy array, a CPU torch tensor or anything exposing the buffer
    protocol, ``__array__`` or ``__dlpack__``; or a list/tuple of those, reduced as one
    fused message (grouped by dtype, batches of ``fusion_bytes``). ``op`` is ``sum``,
    ``mean``, ``max`` or ``min``; dtypes float16/32/64 and int32/64 (float16 is reduced
    in float32; ``mean`` of integers raises TypeError). ``out is x`` reduces in place,
    ``out`` another array writes there, otherwise a new array (a tensor for torch
    input) is returned. ``algorithm`` (auto, ring, rhd, shm, hierarchical, mpi, cma or an
    :class:`~workbench.comm.algorithms.Algorithm`) and ``check`` override
    ``WORKBENCH_ALLREDUCE_ALGO`` and ``WORKBENCH_ALLREDUCE_CHECK``. With the check on,
    ranks passing different shapes, dtypes or op all raise
    :class:`AllreduceMismatchError`.

    ``x`` in a symmetric buffer (:func:`workbench.comm.empty`, or a slice of one, or a list
    of slices that tile one range of it) with ``out=x`` is reduced in place with no copies
    (with ``algorithm`` auto); every rank must then pass its buffer the same way.
    """
    k = None
    if type(x) is np.ndarray:
        if not _spans.on:  # a call shape seen before: one compiled call
            k = _fast.key(x, op, comm, out, algorithm, check, fusion_bytes)
            call = _fast.lookup(k)  # (None for k None)
            if call is not None:
                return call(x, out)
    elif isinstance(x, (list, tuple)):
        if out is not None and out is not x and len(out) != len(x):
            raise InvalidValueError(
                f"allreduce: out has {len(out)} entries but {len(x)} tensors were passed"
            )
        outs = x if out is x else out
        results = reduce_items(
            x,
            outs,
            op,
            comm,
            many=True,
            algorithm=algorithm,
            check=check,
            fusion_bytes=fusion_bytes,
        )
        return x if out is x else results
    (result,) = reduce_items(
        (x,),
        None if out is None else (out,),
        op,
        comm,
        many=False,
        algorithm=algorithm,
        check=check,
        fusion_bytes=fusion_bytes,
    )
    if k is not None and _fast.eligible(x, out):
        small = _small_call(x, op, comm, out, algorithm, check)
        if small is not None:
            _fast.remember(k, small)
    return result


def _small_call(x: np.ndarray, op: str, comm: Any, out: Any, algorithm: Any, check: Any) -> Any:
    """The cached call (:mod:`workbench.comm._fast`) for the shape of a call that just
    succeeded on the general path, or None when that path would not stage it."""
    if algorithm not in (None, "auto") or (out is not None and out is not x and (
            out.shape != x.shape or out.dtype != x.dtype)):  # fmt: skip
        return None
    cfg = _config.settings(check=check)
    if cfg.algorithm != "auto":
        return None
    if out is x and x.size:
        reg = find(x)
        if reg is not None:  # in place in a symmetric buffer (of one node: _fast.key)
            op = check_op(op)
            algo = get_algorithm("auto")
            desc, fields = _signature([prepare(x, x, op, "input")], op, algo, False, None)
            return _fast.SymmetricCall(reg, op, fields, desc, cfg.check, cfg.stall_seconds)
    comm = MPI.COMM_WORLD if comm is None else comm
    if comm.Get_size() == 1:
        return _fast.Copy()
    st = staging(comm)
    if x.size == 0:
        return None
    algo = get_algorithm("auto")
    assert isinstance(algo, AutoAlgorithm)
    op = check_op(op)
    item = prepare(x, out, op, "input")
    desc, fields = _signature([item], op, algo, False, None) if cfg.check else ("", _NO_FIELDS)
    if st is not None and x.nbytes <= st.capacity and algo.stages(x.nbytes, comm):
        return _fast.SmallCall(st, x, op, fields, desc, cfg.check, cfg.stall_seconds)
    if isinstance(algo.select(x.nbytes, comm), MPIAlgorithm) and (st is not None or not cfg.check):
        checked = st if cfg.check else None
        return _fast.MpiCall(comm, checked, op, fields, desc, cfg.stall_seconds)
    return None


def allreduce_async(
    tensors: Any,
    op: str = "sum",
    *,
    team: str = "default",
    comm: Any = None,
    out: Any = None,
    algorithm: str | Algorithm | None = None,
    check: bool | None = None,
    fusion_bytes: int | str | None = None,
) -> AllreduceHandle:
    """Start :func:`allreduce` of ``tensors`` on the worker thread of ``team``.

    Returns an :class:`AllreduceHandle`; ``handle.wait()`` gives what
    :func:`allreduce` would have returned (or re-raises its exception). Calls on one
    team run in submission order; different teams run concurrently, each on its own
    duplicate of ``comm``. Do not modify the inputs before ``wait()`` returns.
    ``op``, ``out``, ``algorithm``, ``check`` and ``fusion_bytes`` are those of
    :func:`allreduce`, except that ``shm`` and ``hierarchical`` are refused (no
    shared windows are created from a team's thread). Symmetric buffers
    (:func:`workbench.comm.empty`) reduced in place do use shared memory from a team:
    their windows were created when they were allocated.
    """
    check_op(op)
    base = MPI.COMM_WORLD if comm is None else comm
    chosen = get_algorithm(algorithm)
    if not chosen.team_safe:
        raise InvalidValueError(
            f"allreduce_async(algorithm={chosen.name!r}): shared-memory windows cannot be "
            "created safely from a team's thread; use 'auto', 'ring', 'rhd' or 'mpi' for "
            "teams, or allocate the tensors with wb.comm.empty (symmetric buffers reduce in "
            "shared memory from any thread)"
        )

    def job(team_comm: Any) -> Any:
        return allreduce(
            tensors,
            op,
            team_comm,
            out,
            algorithm=algorithm,
            check=check,
            fusion_bytes=fusion_bytes,
        )

    return submit(team, base, job)
