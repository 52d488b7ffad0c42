"""Recursive halving-doubling (Rabenseifner) allreduce.

Reduce-scatter by recursive halving, then allgather by recursive doubling:
``2 log2 p`` messages per rank and ``2 (p - 1) / p`` of the data. For ``p`` not a
power of two, the standard fix-up folds the first ``2 r`` ranks pairwise
(``r = p - 2**floor(log2 p)``): even ranks hand their data to the odd neighbour
before and receive the result after.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.comm.algorithms._base import (
    ELEMENTWISE,
    Algorithm,
    block_bounds,
    scratch,
    take_input,
)

__all__ = ["RHDAlgorithm", "rhd_allreduce"]

_TAG = 0x5248


def rhd_allreduce(buf: np.ndarray, op: str, comm: Any) -> None:
    """In-place recursive halving-doubling allreduce of ``buf`` over ``comm`` with ``op``."""
    p, rank = comm.Get_size(), comm.Get_rank()
    n = buf.size
    if p == 1 or n == 0:
        return
    combine = ELEMENTWISE[op]
    p2 = 1 << (p.bit_length() - 1)
    rem = p - p2

    # Fix-up in: fold ranks 0..2*rem-1 pairwise into the odd one.
    if rank < 2 * rem:
        if rank % 2 == 0:
            comm.Send(buf, rank + 1, _TAG)
            comm.Recv(buf, rank + 1, _TAG)
            return
        tmp = scratch(buf.dtype, n)
        comm.Recv(tmp, rank - 1, _TAG)
        combine(buf, tmp)
        vrank = rank // 2
    else:
        vrank = rank - rem

    def real(v: int) -> int:
        return v * 2 + 1 if v < rem else v + rem

    bounds = block_bounds(n, p2)
    lo, hi = 0, p2  # blocks this rank is responsible for
    half_max = -(-n // 2) + 1
    tmp = scratch(buf.dtype, half_max)
    dist = p2 // 2
    while dist >= 1:  # reduce-scatter, recursive halving
        partner = real(vrank ^ dist)
        mid = (lo + hi) // 2
        if vrank & dist:
            keep, give = (mid, hi), (lo, mid)
        else:
            keep, give = (lo, mid), (mid, hi)
        klo, khi = bounds[keep[0]], bounds[keep[1]]
        glo, ghi = bounds[give[0]], bounds[give[1]]
        recv = tmp[: khi - klo]
        comm.Sendrecv(buf[glo:ghi], partner, _TAG, recv, partner, _TAG)
        combine(buf[klo:khi], recv)
        lo, hi = keep
        dist //= 2
    dist = 1
    while dist < p2:  # allgather, recursive doubling
        partner = real(vrank ^ dist)
        size = hi - lo
        other = (lo - size, lo) if vrank & dist else (hi, hi + size)
        comm.Sendrecv(
            buf[bounds[lo] : bounds[hi]],
            partner,
            _TAG,
            buf[bounds[other[0]] : bounds[other[1]]],
            partner,
            _TAG,
        )
        lo, hi = min(lo, other[0]), max(hi, other[1])
        dist *= 2

    # Fix-up out: hand the result back to the folded even rank.
    if rank < 2 * rem:
        comm.Send(buf, rank - 1, _TAG)


class RHDAlgorithm(Algorithm):
    """Rabenseifner's reduce-scatter/allgather, latency ``O(log p)``."""

    name = "rhd"
    team_safe = True
    single_node = False
    shortcuts = False

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """See :meth:`Algorithm.reduce <workbench.comm.algorithms.Algorithm.reduce>`."""
        take_input(buf, src)
        rhd_allreduce(buf, op, comm)
