"""Distributed truncated SVD of a row-block matrix: Gram, TSQR and randomized (Halko et al.).

All three run on the ranks. Sums go through :func:`workbench.allreduce`; the small
decompositions (eigh of the Gram matrix, QR of stacked R factors, SVD of the sketch) run
on rank 0 and are broadcast, so every rank holds bit-identical factors.

* ``gram``: one pass, G = AᵀA allreduced, top-k eigenpairs. Error in σᵢ grows like
  ε·(σ₁/σᵢ)², so ``auto`` redoes it with TSQR when σₖ/σ₁ < 1e-3. Tall matrices.
* ``tsqr``: local QR, R factors gathered and factored again, SVD of R. Backward stable.
* ``randomized``: range finder with ``n_iter`` power iterations, each orthonormalised by
  TSQR; works for wide matrices too. Halko, Martinsson & Tropp (2011), eq. (1.11):
  ‖A − QQᵀA‖ ≤ [1 + 11·√(k+p)·√min(m,n)]^(1/(2q+1)) · σₖ₊₁ with probability ≥ 1 − 6·p⁻ᵖ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from workbench.errors import InvalidValueError
from workbench.linalg._matrix import is_row_matrix
from workbench.linalg._registry import Rows, routine, run

__all__ = ["METHODS", "check_svd_args", "svd_block", "truncated_svd", "tsqr"]

METHODS = ("auto", "gram", "tsqr", "randomized")
_GRAM_MAX_N = 4096  # auto uses the n x n Gram matrix up to this many columns
_GRAM_MIN_RATIO = 1e-3  # auto falls back to TSQR when sigma_k / sigma_1 is below this


def on_root(comm: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` computed on rank 0 and broadcast (identical result on every rank)."""
    return comm.bcast(fn(*args) if comm.rank == 0 else None, root=0)


def tsqr(block: np.ndarray, comm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Tall-skinny QR of the matrix whose rows ``block`` holds on this rank of ``comm``:
    this rank's rows of Q, and R (replicated)."""
    q1, r1 = np.linalg.qr(block)
    stacked = comm.gather(r1, root=0)
    if comm.rank == 0:
        q2, r = np.linalg.qr(np.vstack(stacked))
        edges = np.cumsum([0] + [s.shape[0] for s in stacked])
        pieces = [q2[edges[i] : edges[i + 1]] for i in range(len(stacked))]
    else:
        pieces, r = None, None
    mine = comm.scatter(pieces, root=0)
    return q1 @ mine, comm.bcast(r, root=0)


def _flip(u: np.ndarray, vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic signs: the largest entry of each right singular vector is positive."""
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    return u * signs, vt * signs[:, None]


def _gram(a: np.ndarray, comm: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import workbench as wb

    n = a.shape[1]
    local = scipy.linalg.blas.dsyrk(1.0, a.T, trans=0, lower=0) if a.shape[0] else np.zeros((n, n))
    g = wb.allreduce(local, op="sum")
    wb.progress(1, total=2, phase="gram")

    def top(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w, v = scipy.linalg.eigh(g, lower=False, subset_by_index=[n - k, n - 1])
        return np.sqrt(np.maximum(w[::-1], 0.0)), np.ascontiguousarray(v[:, ::-1])

    s, v = on_root(comm, top, g)
    safe = np.where(s > 0, s, 1.0)
    u = (a @ v) / safe * (s > 0)
    wb.progress(2, total=2, phase="U")
    return u, s, v.T


def _tsqr_svd(a: np.ndarray, comm: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import workbench as wb

    q, r = tsqr(a, comm)
    wb.progress(1, total=2, phase="tsqr")
    ur, s, vt = on_root(comm, lambda r: np.linalg.svd(r, full_matrices=False), r)
    wb.progress(2, total=2, phase="U")
    return q @ ur[:, :k], s[:k], vt[:k]


def _randomized(
    a: np.ndarray, comm: Any, k: int, m: int, n_oversamples: int, n_iter: int, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import workbench as wb

    n = a.shape[1]
    width = min(k + n_oversamples, m, n)
    omega = np.random.default_rng(random_state).standard_normal((n, width))  # same on all ranks
    q, _ = tsqr(a @ omega, comm)
    for it in range(n_iter):
        wb.progress(it, total=n_iter + 1, phase="power iteration")
        z = wb.allreduce(a.T @ q, op="sum")
        z = on_root(comm, lambda z: np.linalg.qr(z)[0], z)
        q, _ = tsqr(a @ z, comm)
    b = wb.allreduce(q.T @ a, op="sum")
    ub, s, vt = on_root(comm, lambda b: np.linalg.svd(b, full_matrices=False), b)
    wb.progress(n_iter + 1, total=n_iter + 1, phase="done")
    return q @ ub[:, :k], s[:k], vt[:k]


def svd_block(
    block: np.ndarray,
    comm: Any,
    *,
    k: int,
    method: str,
    m: int,
    fallback: bool = False,
    n_oversamples: int = 10,
    n_iter: int = 2,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """On a rank of ``comm``: (this rank's rows of U, s, Vt, method used) of the rank-``k``
    SVD of the ``m``-row matrix distributed as ``block``; the other arguments are those
    of :func:`truncated_svd` (``fallback``: Gram may redo with TSQR, see ``auto``)."""
    a = np.asarray(block, dtype=np.float64)
    if method == "gram":
        u, s, vt = _gram(a, comm, k)
        if fallback and s[0] > 0 and s[-1] < _GRAM_MIN_RATIO * s[0]:
            u, s, vt = _tsqr_svd(a, comm, k)
            method = "tsqr"
    elif method == "tsqr":
        u, s, vt = _tsqr_svd(a, comm, k)
    else:
        u, s, vt = _randomized(a, comm, k, m, n_oversamples, n_iter, random_state)
    u, vt = _flip(u, vt)
    out = block.dtype if block.dtype.kind == "f" else np.dtype(np.float64)
    return u.astype(out, copy=False), s.astype(out), vt.astype(out), method


@routine("svd")
def svd_routine(block: np.ndarray, comm: Any, **kw: Any) -> tuple[Any, ...]:
    """Registered routine ``svd``: U stays on the ranks (see :func:`truncated_svd`)."""
    u, s, vt, used = svd_block(block, comm, **kw)
    return Rows(u), s, vt, used


def check_svd_args(
    shape: tuple[int, ...], k: Any, method: str, n_oversamples: int = 10, n_iter: int = 2
) -> tuple[str, bool]:
    """Validate ``shape``, ``k``, ``method``, ``n_oversamples`` and ``n_iter``; return the
    method the ranks run and whether Gram may fall back to TSQR."""
    if len(shape) != 2:
        raise InvalidValueError(f"truncated SVD needs a 2-D matrix, got shape {tuple(shape)}")
    m, n = shape
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= min(m, n):
        raise InvalidValueError(
            f"k={k!r} must be an integer with 1 <= k <= min(m, n) = {min(m, n)} "
            f"for a {m} x {n} matrix"
        )
    if method not in METHODS:
        raise InvalidValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if n_oversamples < 0 or n_iter < 0:
        raise InvalidValueError(f"n_oversamples={n_oversamples} and n_iter={n_iter} must be >= 0")
    if method in ("gram", "tsqr") and m < n:
        raise InvalidValueError(
            f"method={method!r} needs a tall matrix (rows >= columns), got {m} x {n}: use "
            "method='randomized' (or 'auto', which picks it for wide matrices), or factor "
            "the transpose and swap U and Vt"
        )
    if method == "auto":
        return ("gram", True) if m >= n and n <= _GRAM_MAX_N else ("randomized", False)
    return method, False


def shape_of(A: Any) -> tuple[int, ...]:
    """Shape of a handle, dask or numpy array (without computing anything)."""
    return tuple(A.shape) if hasattr(A, "shape") else np.shape(A)


def present(handle: Any, like: Any) -> Any:
    """A handle for handle inputs; a dask array (pulled lazily) otherwise."""
    return handle if is_row_matrix(like) else handle.to_dask()


def truncated_svd(
    A: Any,
    k: int,
    *,
    method: str = "auto",
    n_oversamples: int = 10,
    n_iter: int = 2,
    random_state: int = 0,
    pool: Any = None,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Rank-``k`` SVD ``A ≈ U diag(s) Vt`` on the engines; U stays distributed.

    ``A``: dask or numpy array (scattered for the call) or a :class:`RowMatrix`.
    Returns U as a dask array pulled lazily from the ranks (a :class:`RowMatrix` when ``A``
    was one), and ``s``, ``Vt`` as numpy arrays. ``method``: ``gram`` (fast, tall), ``tsqr``
    (accurate, tall), ``randomized`` (large or wide), ``auto`` picks by shape.
    ``randomized`` samples ``k + n_oversamples`` directions from ``random_state`` and runs
    ``n_iter`` power iterations. ``pool``: where to run (default: the current pool).
    """
    used, fallback = check_svd_args(shape_of(A), k, method, n_oversamples, n_iter)
    u, s, vt, done = run(
        svd_routine,
        A,
        pool=pool,
        k=int(k),
        method=used,
        m=shape_of(A)[0],
        fallback=fallback,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        random_state=random_state,
    )
    u.source = f"truncated_svd ({done})"
    return present(u, A), s, vt
