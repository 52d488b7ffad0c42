"""Mismatched calls raise on every rank; a late rank triggers a stall warning naming it.

Run: WORKBENCH_STALL_SECONDS=1 mpiexec -n 3 python -m mpi4py tests/mpi/allreduce_safety.py
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
from _common import RANK, SIZE, Failures

from workbench.comm import AllreduceMismatchError, allreduce

LATE = SIZE - 1
STALL = float(os.environ["WORKBENCH_STALL_SECONDS"])


def expect_mismatch(make, words_per_rank, **kw) -> None:  # type: ignore[no-untyped-def]
    try:
        allreduce(make(RANK), **kw)
    except AllreduceMismatchError as exc:
        msg = str(exc)
        for words in words_per_rank:
            assert all(w in msg for w in words), f"{words} not in:\n{msg}"
        if RANK == 0:
            print("MISMATCH MESSAGE:", msg.replace("\n", " | "), flush=True)
        return
    raise AssertionError("no AllreduceMismatchError")


def shapes() -> None:
    # rank 1 sends (4,), everyone else (3, 4) -- large and small (inline) messages
    for n in (4, 400_000):

        def make(r: int, n: int = n) -> np.ndarray:
            return np.ones(n if r == 1 else (3, n), np.float32)

        expect_mismatch(make, [["rank 1:", f"({n},) float32"], [f"0, 2: (3, {n}) float32"]])
        expect_mismatch(make, [["rank 1:", f"({n},) float32"]], algorithm="ring")


def dtypes_and_ops() -> None:
    expect_mismatch(
        lambda r: np.ones(5, np.float64 if r == 0 else np.float32),
        [["rank 0: (5,) float64"], ["(5,) float32"]],
    )
    try:
        allreduce(np.ones(5), op="max" if RANK == 0 else "sum")
    except AllreduceMismatchError as exc:
        assert "op=max" in str(exc) and "op=sum" in str(exc), str(exc)
    else:
        raise AssertionError("op mismatch not detected")


def local_rejection() -> None:
    # one rank passes an unsupported dtype: it raises TypeError, the others do not hang
    x = np.ones(3, np.uint8 if RANK == 1 else np.float32)
    try:
        allreduce(x)
    except AllreduceMismatchError as exc:
        assert "rank 1: rejected locally: TypeError" in str(exc) and "uint8" in str(exc), str(exc)
        assert RANK != 1 or isinstance(exc.__cause__, TypeError)
    else:
        raise AssertionError("rejected input on rank 1 went unnoticed")
    try:  # rejected on every rank: each raises its own error
        allreduce(np.ones(3, np.uint8))
    except TypeError as exc:
        assert "uint8" in str(exc)
    else:
        raise AssertionError("uint8 accepted")


def lists() -> None:
    def make(r: int) -> list[np.ndarray]:
        return [np.ones(3, np.float32), np.ones(2 if r == 0 else 5, np.int64)]

    expect_mismatch(make, [["rank 0: [(3,) float32, (2,) int64]"], ["(5,) int64"]])


def cached_calls() -> None:
    """Mismatches where some ranks take the cached small path (a shape called before) and
    others the general one (a new shape, another op, a timeline being recorded)."""
    from workbench import _spans

    for _ in range(3):  # cached from the second call on
        np.testing.assert_array_equal(allreduce(np.ones(6)), np.full(6, SIZE))
    expect_mismatch(lambda r: np.ones(7 if r == 1 else 6),
                    [["rank 1: (7,) float64"], ["0, 2: (6,) float64"]])  # fmt: skip
    try:
        allreduce(np.ones(6), op="max" if RANK == 0 else "sum")
    except AllreduceMismatchError as exc:
        assert "op=max" in str(exc) and "op=sum" in str(exc), str(exc)
    else:
        raise AssertionError("op mismatch on the cached path not detected")
    if RANK == 0:  # rank 0 records a timeline: the general path, beside the others' cached one
        _spans.start()
    x = np.arange(6, dtype=np.float64) * (RANK + 1)
    got = [allreduce(x, op=op) for op in ("sum", "max", "mean")]
    _spans.stop()
    _spans.take()
    want = np.arange(6) * SIZE * (SIZE + 1) / 2
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(got[1], np.arange(6) * SIZE)
    np.testing.assert_array_equal(got[2], want / SIZE)
    out = np.empty((2, 3), np.int32)  # into an output, 2-D, integers
    for _ in range(3):
        r = allreduce(np.full((2, 3), RANK, np.int32), out=out)
        assert r is out and (out == SIZE * (SIZE - 1) // 2).all(), out


def still_in_step() -> None:
    np.testing.assert_array_equal(allreduce(np.ones(10)), np.full(10, SIZE))


def stall() -> None:
    _stall(np.full(1000, RANK, np.float64), "STALL WARNING")


def stall_cached() -> None:
    """The same on the cached small path: its compiled spins give way to the wait loop."""
    x = np.full(999, RANK, np.float64)
    allreduce(x)  # cached from here on
    _stall(x, "STALL WARNING (cached)")


def _stall(x: np.ndarray, label: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if RANK == LATE:
            time.sleep(STALL * 2.5)
        t = time.monotonic()
        r = allreduce(x)
        waited = time.monotonic() - t
    np.testing.assert_array_equal(r, np.full(x.size, SIZE * (SIZE - 1) / 2))
    stalls = [str(w.message) for w in caught if "stalled" in str(w.message)]
    if RANK != LATE:
        assert waited > STALL, waited
        assert stalls, "no stall warning"
        assert f"rank(s) {LATE} have not joined" in stalls[0], stalls[0]
        if RANK == 0:
            print(f"{label}:", stalls[0], flush=True)
    else:
        assert not stalls, stalls


def main() -> None:
    f = Failures()
    cases = (shapes, dtypes_and_ops, local_rejection, lists, cached_calls, still_in_step, stall,
             still_in_step, stall_cached)  # fmt: skip
    for fn in cases:
        f.case(fn.__name__, fn)
    f.finish(f"allreduce safety p={SIZE}")


if __name__ == "__main__":
    main()
