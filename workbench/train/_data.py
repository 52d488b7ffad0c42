"""Each rank's part of the data: a static shard, or a per-epoch sampler of global batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from workbench.errors import InvalidValueError
from workbench.train._params import resolve_comm

__all__ = ["ShardSampler", "rank_and_size", "shard"]


def rank_and_size(rank: int | None, size: int | None, comm: Any) -> tuple[int, int]:
    """``(rank, size)`` from the arguments, filling what is None from ``comm``."""
    if rank is None or size is None:
        c = resolve_comm(comm)
        rank = c.Get_rank() if rank is None else rank
        size = c.Get_size() if size is None else size
    if not (isinstance(size, (int, np.integer)) and size >= 1):
        raise InvalidValueError(f"size must be a positive number of ranks, got {size!r}")
    if not (isinstance(rank, (int, np.integer)) and 0 <= rank < size):
        raise InvalidValueError(f"rank must be in 0..{size - 1} for size {size}, got {rank!r}")
    return int(rank), int(size)


def shard(
    X: Any,
    y: Any = None,
    rank: int | None = None,
    size: int | None = None,
    *,
    seed: int | None = None,
    comm: Any = None,
) -> Any:
    """This rank's disjoint part of ``X`` (and ``y``): ``(X_part, y_part)`` or ``X_part``.

    Rows are split into ``size`` contiguous parts whose lengths differ by at most one;
    with ``seed`` they are shuffled first with a permutation every rank agrees on.
    ``rank``/``size`` default to those of ``comm`` (``MPI.COMM_WORLD``).
    """
    rank, size = rank_and_size(rank, size, comm)
    n = len(X)
    if y is not None and len(y) != n:
        raise InvalidValueError(
            f"X has {n} rows but y has {len(y)}; they must have the same length"
        )
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    bounds = np.linspace(0, n, size + 1).round().astype(np.int64)
    idx = np.sort(order[bounds[rank] : bounds[rank + 1]])
    part = np.asarray(X)[idx]
    return part if y is None else (part, np.asarray(y)[idx])


class ShardSampler:
    """Indices of this rank's share of each global mini-batch, reshuffled every epoch.

    An epoch is a permutation of ``range(n)`` seeded by ``(seed, epoch)`` (the same on
    every rank), cut into global batches of ``batch_size`` (the last partial batch is
    dropped); rank ``r`` of ``size`` takes the ``r``-th of ``size`` equal slices of each
    batch, so ranks see disjoint samples and their mean gradients average to the
    gradient of the whole batch. Call :meth:`set_epoch` before iterating each epoch.
    ``rank``/``size`` default to those of ``comm`` (``MPI.COMM_WORLD``).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int | None = None,
        size: int | None = None,
        comm: Any = None,
    ) -> None:
        self.rank, self.size = rank_and_size(rank, size, comm)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size % self.size:
            lo = batch_size - batch_size % self.size
            raise InvalidValueError(
                f"global batch_size {batch_size} does not split evenly over {self.size} ranks; "
                f"use a multiple of {self.size} (e.g. {lo or self.size} or {lo + self.size})"
            )
        if batch_size > n:
            raise InvalidValueError(f"batch_size {batch_size} is larger than the {n} samples")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), seed
        self.local_batch = self.batch_size // self.size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Steps per epoch."""
        return self.n // self.batch_size

    def global_batches(self) -> np.ndarray:
        """All ranks' indices of this epoch, shape ``(steps, batch_size)``."""
        perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return perm[: len(self) * self.batch_size].reshape(len(self), self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        lo = self.rank * self.local_batch
        for batch in self.global_batches():
            yield batch[lo : lo + self.local_batch]
