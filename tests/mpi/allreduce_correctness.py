"""Every algorithm x op x dtype x size against numpy's reduction of all ranks' inputs.

Run: mpiexec -n P python -m mpi4py tests/mpi/allreduce_correctness.py [--quick]
"""

from __future__ import annotations

import sys

import numpy as np
from _common import COMM, RANK, SIZE, Failures

from workbench.comm import allreduce
from workbench.comm.algorithms import HierarchicalAlgorithm

ALGORITHMS = ["auto", "mpi", "ring", "rhd", "shm", "hierarchical", "cma",
              HierarchicalAlgorithm(2)]  # fmt: skip
OPS = ["sum", "mean", "max", "min"]
DTYPES = ["float16", "float32", "float64", "int32", "int64"]
SIZES = [0, 1, 7, 1023, (1 << 20) + 3]  # elements; the last is > 1 MiB for every dtype
TOL = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-13}


def contributions(dtype: str, n: int, seed: int) -> np.ndarray:
    """Every rank's input, stacked (each rank computes all of them to build the reference)."""
    rng = np.random.default_rng(seed)
    if dtype.startswith("int"):
        return rng.integers(-1000, 1000, (SIZE, n)).astype(dtype)
    return rng.standard_normal((SIZE, n)).astype(dtype)


def references(xs: np.ndarray) -> dict[str, np.ndarray]:
    wide = xs.astype(np.int64 if xs.dtype.kind == "i" else np.float64)
    ref = {"sum": wide.sum(0), "max": wide.max(0), "min": wide.min(0)}
    if xs.dtype.kind == "f":
        ref["mean"] = wide.mean(0)
        ref["scale"] = np.abs(wide).sum(0)
    return ref


def one(algo, op: str, xs: np.ndarray, ref: dict[str, np.ndarray]) -> None:
    x = xs[RANK].copy()
    dtype = x.dtype
    if op == "mean" and dtype.kind == "i":
        try:
            allreduce(x, op, algorithm=algo)
        except TypeError as exc:
            assert "mean" in str(exc)
            return
        raise AssertionError("mean of ints did not raise TypeError")
    got = allreduce(x, op, algorithm=algo)
    assert np.array_equal(x, xs[RANK]), "input was modified"
    assert got.dtype == dtype and got.shape == x.shape, (got.dtype, got.shape)
    if dtype.kind == "i" or op in ("max", "min"):
        assert np.array_equal(got, ref[op].astype(dtype)), "exact result differs"
    else:
        # float sums: rounding grows with the number of terms and their magnitude
        scale = ref["scale"] / (SIZE if op == "mean" else 1)
        err = np.abs(got.astype(np.float64) - ref[op])
        bad = np.flatnonzero(err > TOL[dtype.name] * (scale + 1.0) * 4)
        assert bad.size == 0, f"{bad.size} elements off, first {bad[:3]} err {err[bad[:3]]}"
    # every rank holds bitwise the same result
    digest = got.tobytes()[:64] + np.float64(got.sum(dtype=np.float64)).tobytes()
    assert len(set(COMM.allgather(digest))) == 1, "ranks disagree on the result"


def main() -> None:
    quick = "--quick" in sys.argv
    f = Failures()
    sizes = SIZES[:-1] if quick else SIZES
    for seed, (dtype, n) in enumerate((d, n) for d in DTYPES for n in sizes):
        xs = contributions(dtype, n, seed)
        ref = references(xs)
        for algo in ALGORITHMS:
            name = algo if isinstance(algo, str) else "hierarchical(ranks_per_node=2)"
            for op in OPS:
                f.case(f"{name} {op} {dtype} n={n}", one, algo, op, xs, ref)
    f.finish(f"allreduce correctness p={SIZE}")


if __name__ == "__main__":
    main()
