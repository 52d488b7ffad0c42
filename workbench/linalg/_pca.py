"""Distributed PCA: centre through an allreduced mean, then the truncated SVD of :mod:`._svd`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.linalg._registry import Rows, routine, run
from workbench.linalg._svd import check_svd_args, present, shape_of, svd_block

__all__ = ["PCAResult", "pca"]


@dataclass
class PCAResult:
    """Principal axes and variances (numpy), and the scores (distributed, like U of the SVD)."""

    scores: Any
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray
    mean: np.ndarray
    method: str


@routine("pca")
def pca_routine(
    block: np.ndarray, comm: Any, *, k: int, whiten: bool, **svd_kw: Any
) -> tuple[Any, ...]:
    """Registered routine ``pca``: scores stay on the ranks."""
    import workbench as wb

    x = np.asarray(block, dtype=np.float64)
    colsum, count = wb.allreduce([x.sum(axis=0), np.array([float(x.shape[0])])], op="sum")
    m = int(count[0])
    mean = colsum / m
    centred = x - mean
    total = float(wb.allreduce(np.einsum("ij,ij->j", centred, centred), op="sum").sum())
    u, s, vt, used = svd_block(centred, comm, k=k, **svd_kw)
    dof = max(m - 1, 1)
    variance = s.astype(np.float64) ** 2 / dof
    scores = u * np.sqrt(dof) if whiten else u * s
    ratio = variance / (total / dof) if total > 0 else np.zeros_like(variance)
    return Rows(scores.astype(u.dtype, copy=False)), vt, variance, ratio, s, mean, used


def pca(
    A: Any,
    k: int,
    *,
    whiten: bool = False,
    method: str = "auto",
    n_oversamples: int = 10,
    n_iter: int = 2,
    random_state: int = 0,
    pool: Any = None,
) -> PCAResult:
    """Top-``k`` principal components of the rows of ``A``, computed on the engines.

    Scores are ``U·s`` (``U·√(m−1)`` with ``whiten=True``), distributed like U of
    :func:`truncated_svd`; the other fields are numpy arrays (sign convention of
    scikit-learn: the largest loading of each component is positive). ``method``,
    ``n_oversamples``, ``n_iter``, ``random_state`` and ``pool`` are those of
    :func:`truncated_svd`.
    """
    used, fallback = check_svd_args(shape_of(A), k, method, n_oversamples, n_iter)
    scores, vt, variance, ratio, s, mean, done = run(
        pca_routine,
        A,
        pool=pool,
        k=int(k),
        whiten=bool(whiten),
        method=used,
        m=shape_of(A)[0],
        fallback=fallback,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        random_state=random_state,
    )
    scores.source = f"pca ({done})"
    return PCAResult(present(scores, A), vt, variance, ratio, s, mean, done)
