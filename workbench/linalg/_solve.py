"""Distributed least squares and ridge: ``min ‖Ax − b‖² + α‖x‖²`` with A held by the ranks.

* :func:`lstsq` — direct: TSQR of A (ridge by appending √α·I rows on rank 0), or the
  normal equations (AᵀA + αI) x = Aᵀb with both products allreduced in one fused call.
* :func:`cg` — iterative: CGLS (conjugate gradients on the normal equations without
  forming AᵀA), two allreduces per iteration, progress reported every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from workbench.errors import InvalidValueError
from workbench.linalg._matrix import is_row_matrix
from workbench.linalg._registry import as_rows, routine, run
from workbench.linalg._svd import shape_of, tsqr

__all__ = ["Solution", "cg", "lstsq"]

LSTSQ_METHODS = ("qr", "normal")


@dataclass
class Solution:
    """``x`` (numpy), ``‖Ax − b‖``, iterations (1 for direct methods) and the method."""

    x: np.ndarray
    residual_norm: float
    iterations: int
    method: str


def _residual(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    import workbench as wb

    r = b - a @ x
    return float(np.sqrt(wb.allreduce(np.array([np.vdot(r, r)]), op="sum")[0]))


@routine("lstsq")
def lstsq_routine(
    block: np.ndarray, comm: Any, *, b: np.ndarray, alpha: float, method: str
) -> tuple[np.ndarray, float]:
    """Registered routine ``lstsq``."""
    import workbench as wb

    a, rhs = np.asarray(block, np.float64), np.asarray(b, np.float64)
    n = a.shape[1]
    if method == "normal":
        g, c = wb.allreduce([a.T @ a, a.T @ rhs], op="sum")
        g[np.diag_indices(n)] += alpha
        x = scipy.linalg.solve(g, c, assume_a="pos")
    else:
        aug, baug = a, rhs
        if alpha > 0 and comm.rank == 0:
            aug = np.vstack([a, np.sqrt(alpha) * np.eye(n)])
            baug = np.concatenate([rhs, np.zeros((n, *rhs.shape[1:]))])
        q, r = tsqr(aug, comm)
        qtb = wb.allreduce(q.T @ baug, op="sum")
        x = scipy.linalg.solve_triangular(r, qtb)
    wb.progress(1, total=1)
    return x, _residual(a, rhs, x)


@routine("cg")
def cg_routine(
    block: np.ndarray, comm: Any, *, b: np.ndarray, alpha: float, tol: float, maxiter: int
) -> tuple[np.ndarray, float, int]:
    """Registered routine ``cg`` (CGLS for one right-hand side)."""
    import workbench as wb

    a, rhs = np.asarray(block, np.float64), np.asarray(b, np.float64)
    x = np.zeros(a.shape[1])
    r = rhs.copy()
    s = wb.allreduce(a.T @ r, op="sum")
    p, gamma = s.copy(), float(s @ s)
    stop = tol * np.sqrt(gamma)
    it = 0
    while it < maxiter and np.sqrt(gamma) > stop and gamma > 0:
        q = a @ p
        delta = float(wb.allreduce(np.array([q @ q]), op="sum")[0]) + alpha * float(p @ p)
        step = gamma / delta
        x += step * p
        r -= step * q
        s = wb.allreduce(a.T @ r, op="sum") - alpha * x
        new = float(s @ s)
        p = s + (new / gamma) * p
        gamma = new
        it += 1
        wb.progress(it, total=maxiter, normal_residual=np.sqrt(gamma))
    return x, _residual(a, rhs, x), it


def _with_rhs(A: Any, b: Any, pool: Any, name: str, call: Any) -> Any:
    """Place A and b alike, run ``call(D, B)``, free what was placed here."""
    from workbench.linalg._scatter import scatter

    m = shape_of(A)[0]
    if len(shape_of(A)) != 2 or shape_of(b)[:1] != (m,) or len(shape_of(b)) not in (1, 2):
        raise InvalidValueError(
            f"{name}: A must be 2-D and b have A's {m} rows, got A {shape_of(A)}, b {shape_of(b)}"
        )
    D, free_a = as_rows(A, pool)
    placed = not (is_row_matrix(b) and b.bounds == D.bounds)
    B = scatter(b, D.pool, bounds=D.bounds) if placed else b
    try:
        return call(D, B)
    finally:
        if placed:
            B.free()
        if free_a:
            D.free()


def lstsq(A: Any, b: Any, *, alpha: float = 0.0, method: str = "qr", pool: Any = None) -> Solution:
    """Solve ``min ‖Ax − b‖² + α‖x‖²`` on the engines (b: vector or matrix with A's rows).

    ``alpha`` is the ridge penalty α; ``method`` is ``qr`` (TSQR, stable) or ``normal``
    (the normal equations, one fused allreduce); ``pool``: default the current pool.
    """
    if method not in LSTSQ_METHODS:
        raise InvalidValueError(
            f"unknown method {method!r}; choose one of {', '.join(LSTSQ_METHODS)}"
        )
    if alpha < 0:
        raise InvalidValueError(f"alpha={alpha} must be >= 0")
    m, n = shape_of(A)[0], shape_of(A)[-1]
    if method == "qr" and alpha == 0 and m < n:
        raise InvalidValueError(
            f"lstsq(method='qr') needs rows >= columns without ridge, got {m} x {n}: "
            "pass alpha > 0 (ridge) or use cg"
        )

    def call(D: Any, B: Any) -> Solution:
        x, res = run(lstsq_routine, D, b=B, alpha=float(alpha), method=method)
        return Solution(x, res, 1, method)

    return _with_rhs(A, b, pool, "lstsq", call)


def cg(
    A: Any,
    b: Any,
    *,
    alpha: float = 0.0,
    tol: float = 1e-10,
    maxiter: int | None = None,
    pool: Any = None,
) -> Solution:
    """CGLS on the engines: ``min ‖Ax − b‖² + α‖x‖²`` for a vector ``b``, without forming AᵀA.

    ``A`` is a handle or a dask/numpy array, ``alpha`` the ridge penalty α. Stops when
    ‖Aᵀ(b − Ax) − αx‖ ≤ tol·‖Aᵀb‖ or after ``maxiter`` (default 2·n) iterations.
    ``pool``: default the current pool.
    """
    if len(shape_of(b)) != 1:
        raise InvalidValueError(
            f"cg solves for one right-hand side: b must be 1-D, got {shape_of(b)}"
        )
    if alpha < 0 or tol <= 0:
        raise InvalidValueError(f"alpha={alpha} must be >= 0 and tol={tol} > 0")
    maxiter = 2 * shape_of(A)[-1] if maxiter is None else int(maxiter)

    def call(D: Any, B: Any) -> Solution:
        x, res, it = run(cg_routine, D, b=B, alpha=float(alpha), tol=float(tol), maxiter=maxiter)
        return Solution(x, res, it, "cg")

    return _with_rhs(A, b, pool, "cg", call)
