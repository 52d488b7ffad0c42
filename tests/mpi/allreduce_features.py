"""Fused lists, async teams, in-place, torch, zero-length, input errors, env tuning.

Run: mpiexec -n P python -m mpi4py tests/mpi/allreduce_features.py
"""

from __future__ import annotations

import hashlib
import os
import threading

import numpy as np
from _common import COMM, RANK, SIZE, Failures

from workbench.comm import allreduce, allreduce_async, settings
from workbench.comm.algorithms import HierarchicalAlgorithm, ShmAlgorithm, available, get_algorithm
from workbench.errors import InvalidValueError

try:
    import torch
except ImportError:  # the pytest side skips the torch case when torch is missing
    torch = None

TRIANGLE = SIZE * (SIZE - 1) // 2  # sum of ranks


def fused_mixed() -> None:
    rng = np.random.default_rng(7)
    shapes = [(3, 4), (1,), (0,), (1000,), (17, 3), (5000,), (2, 2, 2)]
    dtypes = ["float32", "int64", "float64", "float16", "int32", "float32", "float64"]
    xs = [
        np.full(s, RANK + 1, dtype=d) + (rng.integers(0, 5, s).astype(d))
        for s, d in zip(shapes, dtypes, strict=True)
    ]
    for fb in (None, 64, 4096, 1 << 20):  # tiny fusion buffers force several batches
        for algo in ("auto", "ring", "shm", "cma"):
            res = allreduce(xs, "sum", algorithm=algo, fusion_bytes=fb)
            assert isinstance(res, list) and len(res) == len(xs)
            for x, r in zip(xs, res, strict=True):
                want = sum(np.full(x.shape, k + 1, x.dtype) for k in range(SIZE)) + SIZE * (
                    x - (RANK + 1)
                )
                assert r.shape == x.shape and r.dtype == x.dtype, (r.shape, r.dtype)
                np.testing.assert_array_equal(r, want.astype(x.dtype))
    maxes = allreduce([np.array([RANK], np.int32), np.array([-RANK, RANK], np.float64)], "max")
    assert maxes[0][0] == SIZE - 1 and list(maxes[1]) == [0, SIZE - 1]
    assert allreduce([], "sum") == []


def fused_in_place_many() -> None:
    xs = [np.full(k % 13 + 1, float(RANK), np.float32) for k in range(200)]
    before = [x.ctypes.data for x in xs]
    res = allreduce(xs, "mean", out=xs, fusion_bytes=2048)
    assert res is xs and [x.ctypes.data for x in xs] == before
    for x in xs:
        np.testing.assert_allclose(x, (SIZE - 1) / 2, rtol=1e-6)


def fused_direct() -> None:
    """Lists reduced straight between the tensors (cma, chosen or picked by auto for a
    large list on two ranks): pieces that cross tensors, empty tensors, every op, in place,
    into given outputs, a tensor listed twice, and a mismatch that the check does not see."""
    rng = np.random.default_rng(11)
    sizes = [0, 70_000, 1, 0, 200_003, 5, 131_072, 0, 3, 90_000]  # > 512 KiB of float32
    for dtype in ("float32", "float64", "int64"):
        xs = [rng.integers(-50, 50, n).astype(dtype) + RANK for n in sizes]
        everyone = [[x - RANK + q for x in xs] for q in range(SIZE)]
        for algo in ("cma", "auto"):
            for op in ("sum", "mean", "max", "min"):
                if op == "mean" and dtype == "int64":
                    continue
                want = [getattr(np, {"mean": "mean", "sum": "sum", "max": "max",
                                      "min": "min"}[op])([e[k] for e in everyone], axis=0)
                        for k in range(len(xs))]  # fmt: skip
                kept = [x.copy() for x in xs]
                got = allreduce(xs, op, algorithm=algo)
                for x, k in zip(xs, kept, strict=True):
                    np.testing.assert_array_equal(x, k)  # inputs untouched
                for g, w in zip(got, want, strict=True):
                    np.testing.assert_allclose(g, w.astype(dtype), rtol=1e-12)
                outs = [np.full_like(x, -7) for x in xs]
                res = allreduce(xs, op, out=outs, algorithm=algo)
                assert all(r is o for r, o in zip(res, outs, strict=True))
                for o, g in zip(outs, got, strict=True):
                    np.testing.assert_array_equal(o, g)
                digest = hashlib.sha1(np.concatenate(got).tobytes()).hexdigest()
                assert len(set(COMM.allgather(digest))) == 1, "ranks disagree"
        ys = [x.copy() for x in xs]
        allreduce(ys, "sum", out=ys, algorithm="cma")
        for y, w in zip(ys, [np.sum([e[k] for e in everyone], axis=0) for k in range(len(xs))],
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(y, w.astype(dtype))
    if SIZE == 2 and available(COMM) is None:  # the case above took the direct path
        assert get_algorithm("auto").select(1 << 20, COMM).name == "cma"
    # results over inputs: each list is staged privately, the sums stay right
    total = SIZE * (SIZE + 1) / 2
    a = np.full(300_000, float(RANK + 1))
    allreduce([a, a], "sum", out=[a, a], algorithm="cma")  # one tensor listed twice
    np.testing.assert_array_equal(a, np.full(300_000, total))
    a, b = np.full(300_000, float(RANK + 1)), np.full(300_000, 2.0 * (RANK + 1))
    allreduce([a, b], "sum", out=[b, a], algorithm="cma")  # swapped outputs
    np.testing.assert_array_equal(b, np.full(300_000, total))
    np.testing.assert_array_equal(a, np.full(300_000, 2 * total))
    big = np.arange(600_001, dtype=np.float64) + RANK
    want = (np.arange(600_001) * SIZE + SIZE * (SIZE - 1) / 2)[[0, 300_000]]
    shifted = [big[1:300_001], big[300_001:600_001]]  # each result one element past its input
    allreduce([big[:300_000], big[300_000:600_000]], "sum", out=shifted, algorithm="cma")
    np.testing.assert_array_equal(big[[1, 300_001]], want)
    twice = allreduce([a, a], "max", algorithm="cma")  # one input twice, new results
    np.testing.assert_array_equal(twice[0], twice[1])
    # more pieces than one vectored system call takes (1024): 1500 one-element tensors
    # between two large ones (an average over the direct path's 4 KiB), then 2100 of 4.4 KB
    for sizes in ([1_500_000] + [1] * 1500 + [1_500_000], [1100] * 2100):
        many = [np.full(n, float(RANK + 1 + k % 7)) for k, n in enumerate(sizes)]
        want = [np.full(n, SIZE * (k % 7) + total) for k, n in enumerate(sizes)]
        for got in (allreduce(many, "sum", algorithm="cma"),
                    allreduce(many, "sum", out=many, algorithm="cma")):  # fmt: skip
            for k, (g, w) in enumerate(zip(got, want, strict=True)):
                np.testing.assert_array_equal(g, w, err_msg=f"tensor {k} of {len(sizes)}")
    if SIZE == 1:
        return
    # different lists with the check off: the call header still catches it on every rank,
    # also when only the sizes' checksum differs (same count, same total)
    for extra in ([RANK, 0, 0], [RANK, -RANK, 0]):
        bad = [np.ones(100_000 + e, np.float32) for e in extra]
        try:
            allreduce(bad, "sum", algorithm="cma", check=False)
        except Exception as exc:
            assert "Mismatch" in type(exc).__name__ and "3 tensors" in str(exc), exc
        else:
            raise AssertionError(f"a mismatched list was reduced ({extra})")


def in_place() -> None:
    for algo in ("auto", "mpi", "ring", "rhd", "shm", "hierarchical"):
        x = np.arange(10_001, dtype=np.float64) + RANK
        ptr = x.ctypes.data
        r = allreduce(x, out=x, algorithm=algo)
        assert r is x and x.ctypes.data == ptr
        np.testing.assert_array_equal(x, SIZE * np.arange(10_001) + TRIANGLE)
    h = np.ones(33, np.float16) * (RANK + 1)
    assert allreduce(h, "max", out=h) is h and h.dtype == np.float16 and h[0] == SIZE
    out = np.empty((2, 3), np.int32)
    r = allreduce(np.full((2, 3), RANK, np.int32), "min", out=out)
    assert r is out and (out == 0).all()


def zero_length() -> None:
    for algo in ("auto", "mpi", "ring", "rhd", "shm", "hierarchical"):
        r = allreduce(np.empty((0, 3), np.float32), "sum", algorithm=algo)
        assert r.shape == (0, 3) and r.dtype == np.float32
    s = allreduce(np.float64(RANK + 1))  # 0-d works too
    assert float(s) == SIZE * (SIZE + 1) / 2


def other_inputs() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = allreduce(x.T)  # non-contiguous input: fine out of place
    np.testing.assert_array_equal(r, SIZE * x.T)
    mv = memoryview(np.full(4, RANK, np.int64))  # buffer protocol
    np.testing.assert_array_equal(allreduce(mv), np.full(4, TRIANGLE))

    class Dl:  # DLPack only
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def __dlpack__(self, **kw: object) -> object:
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self) -> tuple[int, int]:
            return self.a.__dlpack_device__()

    np.testing.assert_array_equal(allreduce(Dl(np.ones(3, np.float64))), np.full(3, SIZE))


def input_errors() -> None:
    def raises(exc: type, words: list[str], fn, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*a, **kw)
        except exc as e:
            msg = str(e)
            assert all(w in msg for w in words), msg
            return
        raise AssertionError(f"{fn.__name__}{a} did not raise {exc.__name__}")

    x = np.ones((4, 4), np.float32)
    raises(TypeError, ["strides", "contiguous"], allreduce, x.T, out=x.T)
    raises(TypeError, ["complex128", "float32"], allreduce, np.ones(3, np.complex128))
    raises(TypeError, ["uint8"], allreduce, np.ones(3, np.uint8))
    raises(ValueError, ["'prod'", "sum, mean, max, min"], allreduce, x, "prod")
    raises(TypeError, ["mean", "int32"], allreduce, np.ones(3, np.int32), "mean")
    raises(ValueError, ["out has shape"], allreduce, x, out=np.empty(3, np.float32))
    raises(ValueError, ["algorithm", "'bogus'", "ring"], allreduce, x, algorithm="bogus")
    # the same call works afterwards: the failed calls left every rank in step
    np.testing.assert_array_equal(allreduce(x), SIZE * x)


def env_tuning() -> None:
    bad = {
        "WORKBENCH_ALLREDUCE_ALGO": ("fastest", "auto, ring"),
        "WORKBENCH_FUSION_BYTES": ("lots", "positive integer"),
        "WORKBENCH_SEGMENT_BYTES": ("-5", "positive integer"),
        "WORKBENCH_ALLREDUCE_CHECK": ("maybe", "on/off"),
        "WORKBENCH_STALL_SECONDS": ("0", "positive number"),
    }
    for var, (value, allowed) in bad.items():
        old = os.environ.get(var)
        os.environ[var] = value
        try:
            settings()
        except ValueError as exc:
            msg = str(exc)
            assert var in msg and repr(value) in msg and allowed in msg, msg
        else:
            raise AssertionError(f"{var}={value} accepted")
        finally:
            if old is None:
                del os.environ[var]
            else:
                os.environ[var] = old
    os.environ.update(
        WORKBENCH_ALLREDUCE_ALGO="ring", WORKBENCH_SEGMENT_BYTES="4k", WORKBENCH_FUSION_BYTES="1k"
    )
    try:
        s = settings()
        assert (s.algorithm, s.segment_bytes, s.fusion_bytes) == ("ring", 4096, 1024)
        x = np.arange(100_003, dtype=np.float32)
        np.testing.assert_array_equal(allreduce(x), SIZE * x)
        res = allreduce([x[:10], x[:300], x[:1000]], check=False)
        np.testing.assert_array_equal(res[2], SIZE * x[:1000])
    finally:
        for v in ("WORKBENCH_ALLREDUCE_ALGO", "WORKBENCH_SEGMENT_BYTES", "WORKBENCH_FUSION_BYTES"):
            del os.environ[v]


def teams() -> None:
    a = [np.full(200_000, RANK, np.float32), np.full(7, RANK, np.int64)]
    b = [np.full(300_000, RANK + 1, np.float64)]
    handles = []
    for k in range(4):  # several calls per team, FIFO, two teams in flight
        handles.append(("a", k, allreduce_async(a, "sum", team="grads-a")))
        handles.append(("b", k, allreduce_async(b, "max", team="grads-b")))
    for team, _k, h in handles:
        res = h.wait(timeout=120)
        assert h.done()
        if team == "a":
            assert (res[0] == TRIANGLE).all() and (res[1] == TRIANGLE).all()
        else:
            assert (res[0] == SIZE).all()
    workers = {t.name for t in threading.enumerate() if t.name.startswith("workbench-allreduce")}
    assert {"workbench-allreduce-grads-a", "workbench-allreduce-grads-b"} <= workers, workers
    # window-based algorithms are refused for teams (windows from threads can deadlock MPI)
    try:
        allreduce_async(a, team="grads-a", algorithm="shm")
    except ValueError as exc:
        assert "shared-memory" in str(exc)
    else:
        raise AssertionError("allreduce_async(algorithm='shm') was accepted")
    # a worker's exception comes back from wait()
    h = allreduce_async([np.ones(3, np.complex64)], team="grads-a")
    try:
        h.wait(timeout=60)
    except TypeError as exc:
        assert "complex64" in str(exc)
    else:
        raise AssertionError("wait() did not re-raise the worker's TypeError")


def shm_one_node_only() -> None:
    """shm asked for on (faked) nodes raises on every rank and names the way out."""
    x = np.arange(1000, dtype=np.float64) + RANK
    want = SIZE * np.arange(1000) + TRIANGLE
    np.testing.assert_array_equal(allreduce(x, algorithm=ShmAlgorithm(ranks_per_node=SIZE)), want)
    if SIZE < 3:  # nodes of SIZE - 1 ranks: several nodes only from 3 ranks on
        return
    try:
        allreduce(x, algorithm=ShmAlgorithm(ranks_per_node=SIZE - 1))
    except InvalidValueError as exc:
        msg = str(exc)
        assert "one node only" in msg and "2 nodes" in msg, msg
        assert "'hierarchical'" in msg and "'auto'" in msg, msg
    else:
        raise AssertionError("algorithm='shm' across two (faked) nodes did not raise")
    # every rank raised together, so they are still in step; hierarchical does those nodes
    r = allreduce(x, algorithm=HierarchicalAlgorithm(ranks_per_node=SIZE - 1))
    np.testing.assert_array_equal(r, want)


def torch_tensors() -> None:
    if torch is None:
        if RANK == 0:
            print("SKIP torch: not installed")
        return
    t = torch.full((3, 5), float(RANK), dtype=torch.float32)
    r = allreduce(t, "sum")
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float32 and r.shape == (3, 5)
    assert torch.equal(r, torch.full((3, 5), float(TRIANGLE)))
    ptr = t.data_ptr()
    assert allreduce(t, "max", out=t) is t and t.data_ptr() == ptr and (t == SIZE - 1).all()
    g = torch.ones(4, requires_grad=True)
    assert torch.equal(allreduce(g, "mean"), torch.ones(4))
    halves = torch.full((6,), 0.5, dtype=torch.float16)
    r16 = allreduce(halves)
    assert r16.dtype == torch.float16 and (r16 == 0.5 * SIZE).all()
    lst = allreduce([torch.arange(4, dtype=torch.int64), torch.zeros(2, dtype=torch.float64)])
    assert all(isinstance(v, torch.Tensor) for v in lst)
    assert torch.equal(lst[0], SIZE * torch.arange(4))
    try:
        allreduce(torch.ones(2, dtype=torch.bfloat16))
    except TypeError as exc:
        assert "bfloat16" in str(exc)
    else:
        raise AssertionError("bfloat16 accepted")
    if RANK == 0:
        print("torch checked", torch.__version__)


def main() -> None:
    f = Failures()
    for fn in (
        fused_mixed,
        fused_in_place_many,
        fused_direct,
        in_place,
        zero_length,
        other_inputs,
        input_errors,
        env_tuning,
        teams,
        shm_one_node_only,
        torch_tensors,
    ):
        f.case(fn.__name__, fn)
        COMM.Barrier()
    f.finish(f"allreduce features p={SIZE}")


if __name__ == "__main__":
    main()
