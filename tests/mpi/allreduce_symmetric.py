"""Symmetric buffers: the zero-copy allreduce, on one node and on fake nodes.

Run: mpiexec -n 3 python -m mpi4py tests/mpi/allreduce_symmetric.py
"""

from __future__ import annotations

import gc
import itertools

import numpy as np
from _common import COMM, RANK, SIZE, Failures

import workbench as wb
from workbench.comm import AllreduceMismatchError, _fast, allreduce, allreduce_async, empty
from workbench.comm.algorithms._symmetric import _blocks, allocate

DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64)
SIZES = (0, 1, 7, 1023, (1 << 16) + 3)
OPS = ("sum", "mean", "max", "min")
FAKE = 2  # ranks per fake node


def contribution(n: int, dtype, rank: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1000 * rank + n)
    if np.dtype(dtype).kind == "i":
        return rng.integers(-1000, 1000, n).astype(dtype)
    return rng.standard_normal(n).astype(dtype)


def expected(n: int, dtype, op: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    stack = np.stack([contribution(n, dtype, r) for r in range(SIZE)]).astype(np.float64)
    want = {"sum": stack.sum(0), "mean": stack.mean(0), "max": stack.max(0), "min": stack.min(0)}
    return want[op]


def check_close(got: np.ndarray, n: int, dtype, op: str, label: str) -> None:  # type: ignore[no-untyped-def]
    want = expected(n, dtype, op)
    tol = {np.float16: 2e-2, np.float32: 1e-4, np.float64: 1e-10}.get(dtype, 0)
    assert np.allclose(got.astype(np.float64), want, rtol=tol, atol=tol * SIZE), label
    # bitwise identical on every rank
    everyone = COMM.allgather(got.tobytes())
    assert all(b == everyone[0] for b in everyone), f"{label}: ranks differ"


def every_op_and_dtype(ranks_per_node: int | None) -> None:
    for dtype in DTYPES:
        for n in SIZES:
            buf = allocate(n, dtype, ranks_per_node=ranks_per_node)
            assert wb.comm.is_symmetric(buf)
            for op in OPS:
                if op == "mean" and np.dtype(dtype).kind == "i":
                    continue
                buf[:] = contribution(n, dtype, RANK)
                out = allreduce(buf, op=op, out=buf)
                assert out is buf
                check_close(buf, n, dtype, op, f"{np.dtype(dtype).name} n={n} op={op}")


def slices_of_one_block(ranks_per_node: int | None) -> None:
    block = allocate((4, 300), np.float64, ranks_per_node=ranks_per_node)
    block[:] = RANK + 1
    part = block[1, 17:250]  # a C-contiguous slice inside the block
    allreduce(part, out=part)
    total = SIZE * (SIZE + 1) / 2
    assert (block[1, 17:250] == total).all()
    assert (block[1, :17] == RANK + 1).all() and (block[1, 250:] == RANK + 1).all()
    assert (block[0] == RANK + 1).all() and (block[2:] == RANK + 1).all()
    rows = [block[2], block[3]]  # a list that tiles one range: one zero-copy round
    allreduce(rows, op="max", out=rows)
    assert (block[2:] == SIZE).all()


def fused_list_of_separate_buffers() -> None:
    bufs = [empty(n, np.float32) for n in (5, 1000, 3)]
    for b in bufs:
        b[:] = RANK
    allreduce(bufs, op="sum", out=bufs)
    for b in bufs:
        assert (b == SIZE * (SIZE - 1) / 2).all()


def large_plain_lists_through_a_symmetric_buffer() -> None:
    # > 64 KiB in all: from p = 3, beyond the node window, packed into a symmetric buffer
    # after the check, reduced, unpacked (at p = 2 the window takes up to 512 KiB, cma more)
    sizes = [3, 70_000, 1, 20_000, 513]
    for dtype, op in ((np.float32, "sum"), (np.float64, "mean"), (np.int64, "max")):
        xs = [contribution(n, dtype, RANK) for n in sizes]
        outs = allreduce(xs, op=op)
        for n, got in zip(sizes, outs, strict=True):
            check_close(got, n, dtype, op, f"fused {np.dtype(dtype).name} {op} n={n}")
        allreduce(xs, op=op, out=xs)  # in place, into the caller's arrays
        for n, got in zip(sizes, xs, strict=True):
            check_close(got, n, dtype, op, f"fused in place {np.dtype(dtype).name} {op}")
    # a different list on one rank is caught by the check before any buffer grows
    xs = [np.ones(n, np.float32) for n in (sizes if RANK else [*sizes, 5])]
    try:
        allreduce(xs)
    except AllreduceMismatchError:
        pass
    else:
        raise AssertionError("mismatched fused lists were not detected")


def two_teams_at_once() -> None:
    a, b = empty(50_000, np.float32), empty(777, np.float64)
    a[:], b[:] = 1.0, RANK
    ha = allreduce_async(a, team="ta", out=a)
    hb = allreduce_async(b, op="max", team="tb", out=b)
    assert hb.wait(timeout=60) is b and ha.wait(timeout=60) is a
    assert (a == SIZE).all() and (b == SIZE - 1).all()
    for _ in range(20):  # repeated calls on both teams keep their order
        ha, hb = allreduce_async(a, team="ta", out=a), allreduce_async(b, team="tb", out=b)
        ha.wait(timeout=60)
        hb.wait(timeout=60)


def torch_like() -> None:
    try:
        import torch
    except ImportError:
        return
    t = empty(10, np.float32, like="torch")
    assert isinstance(t, torch.Tensor)
    t.fill_(RANK + 1.0)
    assert allreduce(t, out=t) is t
    assert float(t[0]) == SIZE * (SIZE + 1) / 2


def mismatch_raises_everywhere(ranks_per_node: int | None) -> None:
    buf = allocate(100, np.float32, ranks_per_node=ranks_per_node)
    # the last rank differs: on fake nodes it is on another node than rank 0
    part = buf[:40] if RANK == SIZE - 1 else buf[:50]
    try:
        allreduce(part, out=part)
    except AllreduceMismatchError as exc:
        assert "symmetric buffer" in str(exc), str(exc)
    else:
        raise AssertionError("no AllreduceMismatchError on a mismatched zero-copy call")
    allreduce(buf, out=buf)  # the buffer still works afterwards


def cached_calls(ranks_per_node: int | None) -> None:
    """A shape reduced in place again runs the compiled call of ``_fast`` (one node; across
    nodes the general path every time): every op and dtype, slices, check on and off, the
    results of the general path (its first call); a mismatch against cached shapes raises
    on every rank."""
    before, shapes = {id(c) for c in _fast._plans.values()}, 2  # (+ the two slices)
    for dtype in (np.float32, np.float64, np.int32, np.int64):
        buf = allocate(1023, dtype, ranks_per_node=ranks_per_node)
        for op, check in itertools.product(OPS, (True, False)):
            if op == "mean" and np.dtype(dtype).kind == "i":
                continue
            shapes += 1
            for k in range(3):
                buf[:] = contribution(1023, dtype, RANK)
                assert allreduce(buf, op=op, out=buf, check=check) is buf
                check_close(buf, 1023, dtype, op, f"cached {np.dtype(dtype).name} {op} #{k}")
    block = allocate((2, 300), np.float64, ranks_per_node=ranks_per_node)
    for _ in range(3):
        block[:] = RANK + 1
        for part in (block[0, 5:200], block[1]):  # (new view objects each time)
            allreduce(part, out=part)
        assert (block[0, 5:200] == SIZE * (SIZE + 1) / 2).all() and (block[1] == block[0, 5]).all()
        assert (block[0, :5] == RANK + 1).all() and (block[0, 200:] == RANK + 1).all()
    new = [c for c in _fast._plans.values() if id(c) not in before]
    symmetric = [c for c in new if isinstance(c, _fast.SymmetricCall)]
    assert len(symmetric) == (0 if ranks_per_node else shapes), (len(symmetric), shapes)
    if SIZE == 1:
        return
    buf = allocate(100, np.float32, ranks_per_node=ranks_per_node)
    for n in (40, 50, 40, 50):  # both shapes cached on every rank
        allreduce(buf[:n], out=buf[:n])
    part = buf[:40] if RANK == SIZE - 1 else buf[:50]
    try:
        allreduce(part, out=part)
    except AllreduceMismatchError as exc:
        assert "symmetric buffer" in str(exc), str(exc)  # (across nodes: the node's own)
        assert ranks_per_node or "(40,) float32" in str(exc), str(exc)
    else:
        raise AssertionError("no AllreduceMismatchError on a mismatched cached call")
    buf[:] = 1
    allreduce(buf, out=buf)  # the buffer still works afterwards
    assert (buf == SIZE).all()


def unregistered_and_out_of_place_still_work() -> None:
    buf = empty(64, np.float32)
    buf[:] = 1
    res = allreduce(buf)  # out of place: the generic path, buf untouched
    assert (res == SIZE).all() and (buf == 1).all()


def freed_when_dropped() -> None:
    before = len(_blocks)
    for _ in range(5):
        x = empty(1000, np.float32)
        allreduce(x, out=x)
        del x
        gc.collect()
    empty(1, np.float32)  # the next allocation frees what every rank dropped
    assert len(_blocks) <= before + 2, (before, len(_blocks))


def main() -> None:
    f = Failures()
    f.case("every op and dtype", every_op_and_dtype, None)
    f.case("slices of one block", slices_of_one_block, None)
    f.case("fused list of separate buffers", fused_list_of_separate_buffers)
    if SIZE > 1:
        f.case("large plain lists", large_plain_lists_through_a_symmetric_buffer)
    f.case("two teams at once", two_teams_at_once)
    f.case("torch like", torch_like)
    if SIZE > 1:
        f.case("mismatch raises everywhere", mismatch_raises_everywhere, None)
    f.case("cached calls", cached_calls, None)
    f.case("unregistered and out of place", unregistered_and_out_of_place_still_work)
    f.case("freed when dropped", freed_when_dropped)
    if SIZE > FAKE:  # fake nodes of two ranks (uneven when SIZE is odd)
        f.case("fake nodes: every op and dtype", every_op_and_dtype, FAKE)
        f.case("fake nodes: slices", slices_of_one_block, FAKE)
        f.case("fake nodes: mismatch", mismatch_raises_everywhere, FAKE)
        f.case("fake nodes: never cached", cached_calls, FAKE)
    f.finish(f"allreduce symmetric p={SIZE}")


main()
