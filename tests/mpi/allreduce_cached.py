"""The cached call path (``workbench.comm._fast``) against numpy, on every rank alike.

Each call shape is made several times (the first through the general path, the rest
cached): small messages (the node window, :class:`SmallCall`) and larger ones (given to the
MPI library where ``auto`` picks it, :class:`MpiCall`), every op and dtype, new results,
outputs and in place, checked and not; results equal numpy's and bitwise equal on every
rank; a mismatch against a cached shape raises on every rank.

Run: mpiexec -n 2 python -m mpi4py tests/mpi/allreduce_cached.py
"""

from __future__ import annotations

import hashlib
import itertools
import os

import numpy as np
from _common import COMM, RANK, SIZE, Failures

from workbench.comm import AllreduceMismatchError, _fast, allreduce

#: Elements: 1-40 KB in the node window (at p=3, 5000 takes the two-wait protocol) and
#: 0.4-1.6 MB (in the window at p=2 up to 512 KiB, beyond it at p=3).
SIZES = (1, 1000, 5000, 100_000, 200_000)
#: Set when the tuning table makes ``auto`` give what the window does not take to the library.
EXPECT_MPI_CALLS = os.environ.get("EXPECT_MPI_CALLS") == "1"
OPS = ("sum", "mean", "max", "min")
DTYPES = (np.float32, np.float64, np.int32, np.int64)


def data(r: int, n: int, dtype) -> np.ndarray:  # type: ignore[no-untyped-def]
    return ((np.arange(n) % 7) * (r + 1) - r).astype(dtype)


def expected(n: int, dtype, op: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    stack = np.stack([data(r, n, dtype) for r in range(SIZE)])
    if op == "mean":
        return stack.sum(axis=0) / SIZE
    return {"sum": stack.sum(axis=0), "max": stack.max(axis=0), "min": stack.min(axis=0)}[op]


def same_everywhere(a: np.ndarray) -> None:
    digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    assert len(set(COMM.allgather(digest))) == 1, "results differ between ranks"


def one_shape(n: int, dtype, op: str, check: bool) -> None:  # type: ignore[no-untyped-def]
    if op == "mean" and np.dtype(dtype).kind == "i":
        return
    want = expected(n, dtype, op)
    out = np.empty(n, dtype)
    for _ in range(3):
        got = allreduce(data(RANK, n, dtype), op=op, check=check)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert allreduce(data(RANK, n, dtype), op=op, out=out, check=check) is out
        np.testing.assert_allclose(out, want, rtol=1e-6)
        x = data(RANK, n, dtype)
        assert allreduce(x, op=op, out=x, check=check) is x
        np.testing.assert_allclose(x, want, rtol=1e-6)
    same_everywhere(got)
    same_everywhere(x)


def every_shape() -> None:
    for n, dtype, op, check in itertools.product(SIZES, DTYPES, OPS, (True, False)):
        one_shape(n, dtype, op, check)
    kinds = {type(c).__name__ for c in _fast._plans.values()}
    assert "SmallCall" in kinds, kinds
    once = {c.once for c in _fast._plans.values() if isinstance(c, _fast.SmallCall)}
    assert once == ({True} if SIZE == 2 else {True, False}), once  # both protocols at p=3
    assert ("MpiCall" in kinds) == EXPECT_MPI_CALLS, kinds


def mismatch_against_a_cached_shape() -> None:
    for n in (1000, 200_000):
        for _ in range(2):
            allreduce(np.ones(n))
        try:
            allreduce(np.ones(n + 1 if RANK == 1 else n))
        except AllreduceMismatchError as exc:
            assert f"rank 1: ({n + 1},) float64" in str(exc), str(exc)
        else:
            raise AssertionError("no mismatch raised")


def cma_mismatch_without_the_check() -> None:
    """Cross-memory attach compares sizes before any copy, with the check off too: ranks
    passing different sizes all raise instead of writing past each other's arrays."""
    for _ in range(2):
        try:
            allreduce(np.ones(5000 + RANK), algorithm="cma", check=False)
        except AllreduceMismatchError as exc:
            assert "algorithm=cma" in str(exc) and "(5000,) float64" in str(exc), str(exc)
        else:
            raise AssertionError("no mismatch raised")
    x = np.full(300_001, RANK + 1.0)
    np.testing.assert_array_equal(allreduce(x, algorithm="cma", check=False),
                                  np.full(300_001, SIZE * (SIZE + 1) / 2))  # fmt: skip


def main() -> None:
    f = Failures()
    f.case("cma mismatch without the check", cma_mismatch_without_the_check)
    f.case("every shape", every_shape)
    f.case("mismatch against a cached shape", mismatch_against_a_cached_shape)
    f.finish(f"allreduce cached p={SIZE}")


main()
