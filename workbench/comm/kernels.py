"""Numba kernels of the allreduce: pure functions on arrays, nothing else.

Every elementwise reduction the package performs runs here. Kernels take
contiguous 1-D arrays (``dst``/``src``) or a 2-D stack of ``rows`` (one row per
rank), are compiled once per dtype on first use and cached on disk
(``cache=True``). No MPI, no Python objects.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "address",
    "combine",
    "combine_into",
    "divide_by",
    "pack_flat",
    "reduce_into_last",
    "reduce_max",
    "reduce_min",
    "reduce_rows",
    "reduce_sum",
    "reduce_to_all",
    "unpack_flat",
]

#: Operation codes of :func:`reduce_to_all` and :func:`reduce_into_last`, and by op name.
OP_SUM, OP_MAX, OP_MIN, OP_MEAN = 0, 1, 2, 3
OP_CODES = {"sum": OP_SUM, "max": OP_MAX, "min": OP_MIN, "mean": OP_MEAN}
_CHUNK = 4096  # elements per column chunk of reduce_to_all (stays in the L1/L2 cache)


@njit(cache=True, nogil=True)
def address(a):  # pragma: no cover - compiled
    """``a.ctypes.data`` at a fifth of its cost from Python (numpy builds a ctypes object
    for it: 1.2 µs an array, which a list of 200 tensors pays 400 times a call)."""
    return a.ctypes.data


@njit(cache=True, nogil=True)
def reduce_sum(dst, src):  # pragma: no cover - compiled
    """dst[i] += src[i]."""
    for i in range(dst.size):
        dst[i] += src[i]


@njit(cache=True, nogil=True)
def reduce_max(dst, src):  # pragma: no cover - compiled
    """dst[i] = max(dst[i], src[i])."""
    for i in range(dst.size):
        if src[i] > dst[i]:
            dst[i] = src[i]


@njit(cache=True, nogil=True)
def reduce_min(dst, src):  # pragma: no cover - compiled
    """dst[i] = min(dst[i], src[i])."""
    for i in range(dst.size):
        if src[i] < dst[i]:
            dst[i] = src[i]


@njit(cache=True, nogil=True)
def combine(dst, src, op):  # pragma: no cover - compiled
    """dst[i] = dst[i] (op) src[i] for ``op`` OP_SUM, OP_MAX or OP_MIN."""
    if op == OP_MAX:
        for i in range(dst.size):
            if src[i] > dst[i]:
                dst[i] = src[i]
    elif op == OP_MIN:
        for i in range(dst.size):
            if src[i] < dst[i]:
                dst[i] = src[i]
    else:
        for i in range(dst.size):
            dst[i] += src[i]


@njit(cache=True, nogil=True)
def combine_into(dst, a, b, op):  # pragma: no cover - compiled
    """dst[i] = a[i] (op) b[i] over ``dst.size`` elements (``dst`` may be ``a``)."""
    if op == OP_MAX:
        for i in range(dst.size):
            dst[i] = b[i] if b[i] > a[i] else a[i]  # (as combine does, NaN included)
    elif op == OP_MIN:
        for i in range(dst.size):
            dst[i] = b[i] if b[i] < a[i] else a[i]
    else:
        for i in range(dst.size):
            dst[i] = a[i] + b[i]


@njit(cache=True, nogil=True)
def reduce_rows(dst, rows, op, divisor):  # pragma: no cover - compiled
    """dst[i] = rows[0, i] (op) rows[1, i] (op) ... over ``dst.size`` elements, rows combined
    in row order (every rank reducing the same rows gets the same bits); ``op`` is one of
    the ``OP_*`` codes and the mean is the sum divided by ``divisor``."""
    n = dst.size
    first = rows[0]
    for i in range(n):
        dst[i] = first[i]
    for r in range(1, rows.shape[0]):
        combine(dst, rows[r, :n], OP_SUM if op == OP_MEAN else op)
    if op == OP_MEAN:
        for i in range(n):
            dst[i] = dst[i] / divisor


@njit(cache=True, nogil=True)
def divide_by(dst, divisor):  # pragma: no cover - compiled
    """dst[i] /= divisor (the mean is the sum divided by the number of ranks)."""
    for i in range(dst.size):
        dst[i] = dst[i] / divisor


@njit(cache=True, nogil=True)
def pack_flat(buf, arrays, offsets):  # pragma: no cover - compiled
    """Copy flat ``arrays[k]`` into ``buf[offsets[k]:offsets[k + 1]]`` (fusion)."""
    for k in range(len(arrays)):
        buf[offsets[k] : offsets[k + 1]] = arrays[k]


@njit(cache=True, nogil=True)
def unpack_flat(buf, arrays, offsets):  # pragma: no cover - compiled
    """Copy ``buf[offsets[k]:offsets[k + 1]]`` back into flat ``arrays[k]``."""
    for k in range(len(arrays)):
        arrays[k][:] = buf[offsets[k] : offsets[k + 1]]


@njit(cache=True, nogil=True)
def reduce_into_last(rows, lo, hi, op, divisor):  # pragma: no cover - compiled
    """Reduce columns ``lo:hi`` of the first ``p - 1`` rows of ``rows`` (one per rank) into
    the last row: one rank's share of the staged allreduce. ``op`` and ``divisor`` as in
    :func:`reduce_to_all`."""
    p = rows.shape[0] - 1
    dst = rows[p]
    for i in range(lo, hi):
        dst[i] = rows[0, i]
    for r in range(1, p):
        row = rows[r]
        if op == OP_MAX:
            for i in range(lo, hi):
                if row[i] > dst[i]:
                    dst[i] = row[i]
        elif op == OP_MIN:
            for i in range(lo, hi):
                if row[i] < dst[i]:
                    dst[i] = row[i]
        else:
            for i in range(lo, hi):
                dst[i] += row[i]
    if op == OP_MEAN:
        for i in range(lo, hi):
            dst[i] = dst[i] / divisor


@njit(cache=True, nogil=True)
def reduce_to_all(rows, lo, hi, op, divisor):  # pragma: no cover - compiled
    """Reduce columns ``lo:hi`` of the stacked ``rows`` (one per rank) and write the
    result into every row: one rank's share of the zero-copy allreduce.

    ``op`` is one of the ``OP_*`` codes; the mean is the sum divided by ``divisor``. Rows
    are combined in row order, so every element is computed the same way on any rank.
    Works through the columns in cache-sized chunks, each loop contiguous (vectorised).
    """
    p = rows.shape[0]
    acc = np.empty(min(_CHUNK, max(hi - lo, 1)), dtype=rows.dtype)
    for start in range(lo, hi, _CHUNK):
        m = min(_CHUNK, hi - start)
        first = rows[0, start : start + m]
        for i in range(m):
            acc[i] = first[i]
        for r in range(1, p):
            row = rows[r, start : start + m]
            if op == OP_MAX:
                for i in range(m):
                    if row[i] > acc[i]:
                        acc[i] = row[i]
            elif op == OP_MIN:
                for i in range(m):
                    if row[i] < acc[i]:
                        acc[i] = row[i]
            else:
                for i in range(m):
                    acc[i] += row[i]
        if op == OP_MEAN:
            for i in range(m):
                acc[i] = acc[i] / divisor
        for r in range(p):
            row = rows[r, start : start + m]
            for i in range(m):
                row[i] = acc[i]
