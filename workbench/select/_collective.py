"""Engine-side pieces shared by the selection methods: who am I, deal work, reduce or fail
together, and the cross-validated score of one candidate.

Every cross-rank reduction goes through the shared ``wb.allreduce``. A rank that fails
still joins the reduction (with a flag), so the others never wait on it forever.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from workbench.errors import InvalidValueError, WorkbenchError

__all__ = [
    "PeerFailed",
    "cv_score",
    "fair_threads",
    "mine",
    "on_every_rank",
    "reduce_or_raise",
    "world",
]


class PeerFailed(WorkbenchError, RuntimeError):
    """Another rank failed during a collective step; this one stops quietly."""


def world() -> tuple[int, int]:
    """``(rank, size)`` of this engine in ``MPI.COMM_WORLD``."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size


@contextlib.contextmanager
def fair_threads() -> Iterator[int]:
    """Limit BLAS/OpenMP threads to this rank's share of the node's cores while inside.

    Ranks sharing a node would otherwise each start one BLAS thread per core; spinning
    BLAS threads on oversubscribed cores make small fits many times slower.
    """
    from mpi4py import MPI
    from threadpoolctl import threadpool_limits

    local = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        threads = max(1, (os.cpu_count() or 1) // local.size)
    finally:
        local.Free()
    with threadpool_limits(limits=threads):
        yield threads


def on_every_rank(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as the engine side of a selection: it runs within :func:`fair_threads`."""

    def run(*args: Any, **kwargs: Any) -> Any:
        with fair_threads():
            try:
                return fn(*args, **kwargs)
            except PeerFailed:
                return None  # only the failing ranks raise, so the notebook shows their error

    # keep __module__: ipyparallel rebuilds a shipped function with its module's globals
    return functools.update_wrapper(run, fn, assigned=("__name__", "__qualname__", "__doc__"))


def mine(items: Sequence[Any] | np.ndarray, rank: int, size: int) -> list[Any]:
    """The items this rank handles: ``rank, rank + size, ...`` (dealt like cards)."""
    return list(items[rank::size])


def reduce_or_raise(
    arrays: list[np.ndarray], error: BaseException | None, *, op: str = "sum"
) -> list[np.ndarray]:
    """``wb.allreduce(arrays, op)`` fused with a failure flag per rank.

    When any rank failed, every rank stops after the reduction: the failing ranks raise
    their own error, the others :class:`PeerFailed` (turned into ``None`` by
    :func:`on_every_rank`, so the notebook reports only the real errors).
    """
    from workbench.comm import allreduce

    rank, size = world()
    flags = np.zeros(size)
    flags[rank] = 0.0 if error is None else 1.0
    *out, flags = allreduce([*arrays, flags], op="sum" if op == "sum" else op)
    if flags.any():
        if error is not None:
            raise error
        failed = [int(r) for r in np.flatnonzero(flags)]
        raise PeerFailed(f"stopped because rank(s) {failed} failed")
    return out


def cv_score(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    scorer: Any,
) -> float:
    """Mean ``scorer`` score of a clone of ``estimator`` fitted on ``(X, y)`` over ``splits``,
    as ``cross_val_score(...).mean()`` computes it.

    Like scikit-learn with ``error_score=np.nan``: a fold whose fit or score fails scores
    NaN with a warning; ValueError when every fold failed.
    """
    from sklearn.base import clone

    scores = []
    errors = []
    for train, test in splits:
        est = clone(estimator)
        try:
            est.fit(X[train], y[train])
            scores.append(scorer(est, X[test], y[test]))
        except Exception as e:  # scikit-learn's error_score=np.nan
            errors.append(e)
            scores.append(np.nan)
    if errors and len(errors) == len(scores):
        raise InvalidValueError(
            f"all {len(scores)} cross-validation fits failed on {X.shape[1]} features; "
            f"the first error: {type(errors[0]).__name__}: {errors[0]}"
        ) from errors[0]
    if errors:
        warnings.warn(
            f"{len(errors)} of {len(scores)} folds failed and score NaN: {errors[0]!r}",
            stacklevel=2,
        )
    return float(np.asarray(scores, dtype=float).mean())
