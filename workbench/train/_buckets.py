"""Gradient buckets: groups of parameters reduced by one ``allreduce_async`` each.

Parameters are grouped last-first (the order in which backward produces their
gradients) into buckets of at most ``bucket_bytes``, as PyTorch DDP does with
``bucket_cap_mb``. With overlap, a bucket is launched as soon as all its gradients
are ready, always in bucket order so every rank submits the same sequence of calls;
:meth:`Reducer.wait` launches what is left and waits for everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from workbench._util import parse_bytes
from workbench.comm import allreduce_async
from workbench.errors import StateError

__all__ = ["DEFAULT_BUCKET_BYTES", "ENV_BUCKET", "Reducer", "bucket_bytes_setting", "plan_buckets"]

ENV_BUCKET = "WORKBENCH_BUCKET_BYTES"
DEFAULT_BUCKET_BYTES = 25 << 20  # PyTorch DDP's default bucket_cap_mb


def bucket_bytes_setting(bucket_bytes: int | str | None) -> int:
    """``bucket_bytes``, else ``WORKBENCH_BUCKET_BYTES``, else 25 MiB; ValueError if not > 0."""
    if bucket_bytes is not None:
        return parse_bytes("bucket_bytes", bucket_bytes)
    raw = os.environ.get(ENV_BUCKET)
    return DEFAULT_BUCKET_BYTES if raw is None else parse_bytes(ENV_BUCKET, raw)


def plan_buckets(nbytes: Sequence[int], bucket_bytes: int) -> list[list[int]]:
    """Parameter indices grouped last-first into buckets of at most ``bucket_bytes``, given
    each parameter's size in ``nbytes``.

    A parameter larger than ``bucket_bytes`` gets a bucket of its own.
    """
    buckets: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in reversed(range(len(nbytes))):
        if current and used + nbytes[i] > bucket_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append(i)
        used += nbytes[i]
    if current:
        buckets.append(current)
    return buckets


class Reducer:
    """Averages gradients bucket by bucket on the shared allreduce.

    ``grads(indices)`` returns the gradient arrays/tensors of those parameters; they
    are reduced in place with ``op="mean"`` on team ``team`` of ``comm``, in buckets of
    at most ``bucket_bytes`` planned from the parameter sizes ``nbytes``; with ``overlap``
    a bucket starts as soon as its last gradient is ready.
    """

    def __init__(
        self,
        nbytes: Sequence[int],
        grads: Callable[[list[int]], list[Any]],
        *,
        bucket_bytes: int,
        overlap: bool,
        comm: Any,
        team: str,
    ) -> None:
        self.buckets = plan_buckets(nbytes, bucket_bytes)
        self.bucket_nbytes = [sum(nbytes[i] for i in b) for b in self.buckets]
        self.owner = {i: k for k, b in enumerate(self.buckets) for i in b}
        self.grads = grads
        self.overlap = overlap
        self.comm = comm
        self.team = team
        self._reset()

    def _reset(self) -> None:
        self.pending = [len(b) for b in self.buckets]
        self.next = 0
        self.handles: list[Any] = []
        self.started = False  # a gradient was reported since the last wait()

    def ready(self, index: int) -> None:
        """Gradient ``index`` is final: launch every bucket that is complete, in order."""
        k = self.owner[index]
        if self.pending[k] == 0:
            raise StateError(
                f"the gradient of parameter {index} became ready twice before step(): call "
                "step() after every backward pass (gradient accumulation is not supported)"
            )
        self.pending[k] -= 1
        self.started = True
        if self.overlap:
            while self.next < len(self.buckets) and self.pending[self.next] == 0:
                self._launch()

    def _launch(self) -> None:
        k = self.next
        tensors = self.grads(self.buckets[k])
        if self.comm.Get_size() == 1:  # the mean over one rank is the gradient itself
            self.next += 1
            return
        self.handles.append(
            allreduce_async(
                tensors,
                "mean",
                team=self.team,
                comm=self.comm,
                out=tensors,
                fusion_bytes=max(self.bucket_nbytes[k], 1),
            )
        )
        self.next += 1

    def wait(self) -> None:
        """Launch the buckets not launched yet, wait for all; re-raise the first error."""
        try:
            while self.next < len(self.buckets):
                self._launch()
            error: BaseException | None = None
            for h in self.handles:
                try:
                    h.wait()
                except BaseException as exc:  # wait for the rest: keep the team in step
                    error = error or exc
            if error is not None:
                raise error
        finally:
            self._reset()
