"""Numba kernels of feature selection: sufficient statistics of a row block, nothing else.

Pure functions on arrays (no MPI, no Python objects), compiled once and cached on disk.
Each takes one block of rows that is in memory; orchestration in
:mod:`workbench.select._univariate` merges blocks and ranks (through ``wb.allreduce``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "bin_codes",
    "class_moments",
    "co_moments",
    "column_range",
    "contingency_counts",
    "mutual_info_from_counts",
]


@njit(cache=True, nogil=True)
def class_moments(x, codes, n_classes):  # pragma: no cover - compiled
    """Per class: row counts, column sums and sums of squared deviations from the class mean.

    ``x`` is (n, d) float64, ``codes`` (n,) int64 in ``[0, n_classes)``. Returns
    ``counts`` (k,), ``sums`` (k, d), ``m2`` (k, d); two passes over the block, so the
    squares are centred (no cancellation).
    """
    n, d = x.shape
    counts = np.zeros(n_classes, np.float64)
    sums = np.zeros((n_classes, d), np.float64)
    m2 = np.zeros((n_classes, d), np.float64)
    for i in range(n):
        c = codes[i]
        counts[c] += 1.0
        for j in range(d):
            sums[c, j] += x[i, j]
    means = np.zeros((n_classes, d), np.float64)
    for c in range(n_classes):
        if counts[c] > 0:
            for j in range(d):
                means[c, j] = sums[c, j] / counts[c]
    for i in range(n):
        c = codes[i]
        for j in range(d):
            t = x[i, j] - means[c, j]
            m2[c, j] += t * t
    return counts, sums, m2


@njit(cache=True, nogil=True)
def co_moments(x, y):  # pragma: no cover - compiled
    """Column sums and centred second moments of ``x`` (n, d) against a target ``y`` (n,).

    Returns ``sx`` (d,), ``sy``, ``m2x`` (d,), ``m2y``, ``cxy`` (d,) where ``m2x`` and
    ``cxy`` are sums of ``(x - mean_x)**2`` and ``(x - mean_x) * (y - mean_y)``.
    """
    n, d = x.shape
    sx = np.zeros(d, np.float64)
    sy = 0.0
    for i in range(n):
        sy += y[i]
        for j in range(d):
            sx[j] += x[i, j]
    m2x = np.zeros(d, np.float64)
    cxy = np.zeros(d, np.float64)
    m2y = 0.0
    if n == 0:
        return sx, sy, m2x, m2y, cxy
    mx = sx / n
    my = sy / n
    for i in range(n):
        ty = y[i] - my
        m2y += ty * ty
        for j in range(d):
            tx = x[i, j] - mx[j]
            m2x[j] += tx * tx
            cxy[j] += tx * ty
    return sx, sy, m2x, m2y, cxy


@njit(cache=True, nogil=True)
def column_range(x):  # pragma: no cover - compiled
    """Per column minimum and maximum of ``x`` (n, d); +inf / -inf for an empty block."""
    n, d = x.shape
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    for i in range(n):
        for j in range(d):
            v = x[i, j]
            if v < lo[j]:
                lo[j] = v
            if v > hi[j]:
                hi[j] = v
    return lo, hi


@njit(cache=True, nogil=True, inline="always")
def _bin(v, lo, width, n_bins):  # pragma: no cover - compiled
    if width <= 0:
        return 0
    b = int(np.floor((v - lo) / width * n_bins))
    return min(max(b, 0), n_bins - 1)


@njit(cache=True, nogil=True)
def bin_codes(x, lo, hi, n_bins):  # pragma: no cover - compiled
    """Equal-width bin of every value: ``floor((x - lo) / (hi - lo) * n_bins)`` in ``[0, n_bins)``.

    A constant column (``hi == lo``) falls in bin 0.
    """
    n, d = x.shape
    out = np.zeros((n, d), np.int64)
    for i in range(n):
        for j in range(d):
            out[i, j] = _bin(x[i, j], lo[j], hi[j] - lo[j], n_bins)
    return out


@njit(cache=True, nogil=True)
def contingency_counts(x, codes, lo, hi, n_bins, n_classes):  # pragma: no cover - compiled
    """Histogram ``counts[j, bin, class]`` of every column of ``x`` against the class
    ``codes`` (``0..n_classes-1``), with ``n_bins`` equal bins between ``lo`` and ``hi``."""
    n, d = x.shape
    counts = np.zeros((d, n_bins, n_classes), np.int64)
    width = hi - lo
    for i in range(n):
        c = codes[i]
        for j in range(d):
            counts[j, _bin(x[i, j], lo[j], width[j], n_bins), c] += 1
    return counts


@njit(cache=True, nogil=True)
def mutual_info_from_counts(counts):  # pragma: no cover - compiled
    """Plug-in mutual information (nats) of each column's (bin x class) table in ``counts``.

    The same arithmetic as ``sklearn.metrics.mutual_info_score`` on the table: terms
    below machine epsilon are dropped and the sum is clipped at 0.
    """
    d, n_bins, n_classes = counts.shape
    out = np.zeros(d, np.float64)
    eps = np.finfo(np.float64).eps
    for j in range(d):
        pi = np.zeros(n_bins, np.int64)
        pj = np.zeros(n_classes, np.int64)
        for b in range(n_bins):
            for c in range(n_classes):
                pi[b] += counts[j, b, c]
                pj[c] += counts[j, b, c]
        if np.count_nonzero(pi) <= 1 or np.count_nonzero(pj) <= 1:
            continue
        total = 0
        for b in range(n_bins):
            total += pi[b]
        log_total = np.log(float(total))
        mi = 0.0
        for b in range(n_bins):
            for c in range(n_classes):
                v = counts[j, b, c]
                if v == 0:
                    continue
                nm = v / total
                log_outer = -np.log(float(pi[b] * pj[c])) + log_total + log_total
                term = nm * (np.log(float(v)) - log_total) + nm * log_outer
                if abs(term) >= eps:
                    mi += term
        out[j] = max(mi, 0.0)
    return out
