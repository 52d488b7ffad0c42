"""Ring allreduce: reduce-scatter then allgather around a ring of ranks.

Each rank sends ``2 (p - 1) / p`` of the message, the bandwidth optimum. Blocks are
cut into segments of ``WORKBENCH_SEGMENT_BYTES``; receiving segment ``j + 1``
overlaps with reducing segment ``j`` (double-buffered scratch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from workbench.comm import _config
from workbench.comm.algorithms._base import (
    ELEMENTWISE,
    Algorithm,
    block_bounds,
    scratch,
    take_input,
)

__all__ = ["RingAlgorithm", "ring_allreduce"]

_TAG = 0x5752


def ring_allreduce(buf: np.ndarray, op: str, comm: Any, segment_bytes: int) -> None:
    """In-place ring allreduce of ``buf`` over ``comm`` with ``op``, pipelined in segments
    of ``segment_bytes``."""
    p, r = comm.Get_size(), comm.Get_rank()
    n = buf.size
    if p == 1 or n == 0:
        return
    combine = ELEMENTWISE[op]
    bounds = block_bounds(n, p)
    seg = max(1, segment_bytes // buf.itemsize)
    largest = max(bounds[k + 1] - bounds[k] for k in range(p))
    nseg = max(1, -(-largest // seg))  # same on every rank, so segments pair up
    seg = -(-largest // nseg)
    bufs = (scratch(buf.dtype, seg, 0), scratch(buf.dtype, seg, 1))
    right, left = (r + 1) % p, (r - 1) % p

    def piece(block: int, j: int) -> tuple[int, int]:
        lo = min(bounds[block] + j * seg, bounds[block + 1])
        return lo, min(lo + seg, bounds[block + 1])

    # Reduce-scatter: after step s, block (r - s - 1) holds s + 2 contributions.
    for step in range(p - 1):
        sb, rb = (r - step) % p, (r - step - 1) % p
        sends = []
        recv = None
        for j in range(nseg + 1):
            if j < nseg:  # post segment j, then reduce segment j - 1 while it travels
                slo, shi = piece(sb, j)
                rlo, rhi = piece(rb, j)
                sends.append(comm.Isend(buf[slo:shi], right, _TAG))
                nxt = comm.Irecv(bufs[j % 2][: rhi - rlo], left, _TAG)
            if recv is not None:
                recv.Wait()
                plo, phi = piece(rb, j - 1)
                combine(buf[plo:phi], bufs[(j - 1) % 2][: phi - plo])
            recv = nxt if j < nseg else None
        MPI.Request.Waitall(sends)
    # Allgather: rank r owns the reduced block (r + 1); pass blocks around the ring.
    for step in range(p - 1):
        sb, rb = (r + 1 - step) % p, (r - step) % p
        send = buf[bounds[sb] : bounds[sb + 1]]
        comm.Sendrecv(send, right, _TAG, buf[bounds[rb] : bounds[rb + 1]], left, _TAG)


class RingAlgorithm(Algorithm):
    """Ring reduce-scatter + allgather over point-to-point messages; ``segment_bytes``
    overrides ``WORKBENCH_SEGMENT_BYTES``."""

    name = "ring"
    team_safe = True
    single_node = False
    shortcuts = False

    def __init__(self, segment_bytes: int | None = None) -> None:
        self.segment_bytes = segment_bytes

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """See :meth:`Algorithm.reduce <workbench.comm.algorithms.Algorithm.reduce>`."""
        take_input(buf, src)
        seg = self.segment_bytes or _config.settings().segment_bytes
        ring_allreduce(buf, op, comm, seg)
