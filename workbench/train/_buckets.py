"""Gradient buckets in symmetric memory, each averaged in place by one ``allreduce_async``.

Parameters are grouped last-first (the order in which backward produces their gradients)
into buckets of at most ``bucket_bytes`` and one dtype, as PyTorch DDP does with
``bucket_cap_mb``. The buckets of a dtype are consecutive ranges of one symmetric buffer
(:func:`workbench.comm.empty`, allocated collectively when the optimizer is built) and the
model's gradients are views into them (DDP's ``gradient_as_bucket_view``): backward
writes straight into the buckets, and a bucket is averaged with no pack at all,
``allreduce_async(bucket, "mean", out=bucket)``, on the zero-copy path.

A gradient the model replaced by another array is copied back into its bucket (and the
view put back) before the bucket is reduced; one that no longer fits (another shape or
dtype) makes every rank raise a mismatch. A dtype symmetric buffers do not hold keeps
private gradients, reduced as a fused list. With overlap, a bucket is launched as soon as
all its gradients are ready, always in bucket order so every rank submits the same
sequence of calls; :meth:`Reducer.wait` launches what is left and waits for everything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from workbench._util import parse_bytes
from workbench.comm import allreduce_async, empty
from workbench.errors import AllreduceMismatchError, InvalidValueError, StateError
from workbench.train._params import layout_differences

__all__ = [
    "DEFAULT_BUCKET_BYTES",
    "ENV_BUCKET",
    "Bucket",
    "GradSource",
    "Reducer",
    "bucket_bytes_setting",
    "make_buckets",
    "plan_buckets",
]

ENV_BUCKET = "WORKBENCH_BUCKET_BYTES"
DEFAULT_BUCKET_BYTES = 4 << 20  # chosen by measurement: docs/training.md

Layout = list[tuple[tuple[int, ...], Any, int]]  # per parameter: shape, numpy dtype or None, bytes


def bucket_bytes_setting(bucket_bytes: int | str | None) -> int:
    """``bucket_bytes``, else ``WORKBENCH_BUCKET_BYTES``, else the default; ValueError if
    not > 0."""
    if bucket_bytes is not None:
        return parse_bytes("bucket_bytes", bucket_bytes)
    raw = os.environ.get(ENV_BUCKET)
    return DEFAULT_BUCKET_BYTES if raw is None else parse_bytes(ENV_BUCKET, raw)


def plan_buckets(
    nbytes: Sequence[int], bucket_bytes: int, kinds: Sequence[Any] | None = None
) -> list[list[int]]:
    """Parameter indices grouped last-first into buckets of at most ``bucket_bytes``, given
    each parameter's size in ``nbytes``; with ``kinds`` (e.g. dtypes) a bucket holds one kind.

    A parameter larger than ``bucket_bytes`` gets a bucket of its own. Buckets come in the
    order backward completes them (their smallest index, descending).
    """
    open_: dict[Any, tuple[list[int], int]] = {}
    buckets: list[list[int]] = []
    for i in reversed(range(len(nbytes))):
        kind = None if kinds is None else kinds[i]
        current, used = open_.get(kind, ([], 0))
        if current and used + nbytes[i] > bucket_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append(i)
        open_[kind] = (current, used + nbytes[i])
    buckets += [b for b, _ in open_.values() if b]
    buckets.sort(key=min, reverse=True)
    return buckets


@dataclass
class Bucket:
    """Parameters ``indices`` (last first), ``nbytes`` in all. ``flat`` is their range of a
    symmetric buffer and ``views`` each gradient's view in it; ``flat`` None: private
    gradients, reduced as a fused list."""

    indices: list[int]
    nbytes: int
    flat: np.ndarray | None = None
    views: list[np.ndarray] = field(default_factory=list)


def make_buckets(layout: Layout, bucket_bytes: int, comm: Any) -> list[Bucket]:
    """The buckets of parameters described by ``layout``, each dtype's buckets laid out in
    one symmetric buffer on ``comm`` (collective: every rank passes the same layout)."""
    dtypes = [d for _, d, _ in layout]
    nbytes = [n for _, _, n in layout]
    buckets = [
        Bucket(b, sum(nbytes[i] for i in b)) for b in plan_buckets(nbytes, bucket_bytes, dtypes)
    ]
    for dtype in dict.fromkeys(d for d in dtypes if d is not None):
        members = [b for b in buckets if dtypes[b.indices[0]] == dtype]
        sizes = [math.prod(layout[i][0]) for b in members for i in b.indices]
        try:
            buf = empty(sum(sizes), dtype, comm=comm)
        except TypeError:  # not a dtype symmetric buffers hold (same on every rank)
            continue
        pos = 0
        for b in members:
            start = pos
            for i in b.indices:
                n = math.prod(layout[i][0])
                b.views.append(buf[pos : pos + n].reshape(layout[i][0]))
                pos += n
            b.flat = buf[start:pos]
    return buckets


class GradSource(Protocol):
    """A model's gradients as the :class:`Reducer` sees them (numpy model or torch)."""

    def layout(self) -> Layout:
        """Shape, numpy dtype (None if it has none) and bytes of every parameter."""
        ...

    def grad(self, index: int) -> Any:
        """Gradient ``index`` as it is (for buckets with private gradients)."""
        ...

    def bind(self, index: int, view: np.ndarray) -> None:
        """Make gradient ``index`` the bucket view ``view`` (keeping its value)."""
        ...

    def ensure(self, index: int) -> bool:
        """Gradient ``index`` is its bucket view again (copied there if the model replaced
        it); False when the replacement no longer fits the view."""
        ...

    def describe(self) -> str:
        """This rank's gradients' shapes and dtypes, one line."""
        ...


class Reducer:
    """Averages the gradients of ``source`` bucket by bucket on the shared allreduce.

    Buckets of at most ``bucket_bytes`` (see :func:`make_buckets`; collective over ``comm``)
    are reduced with ``op="mean"`` on team ``team`` of ``comm``; with ``overlap`` a bucket
    starts as soon as its last gradient is ready.
    """

    def __init__(
        self, source: GradSource, *, bucket_bytes: int, overlap: bool, comm: Any, team: str
    ) -> None:
        self.source = source
        self.buckets = make_buckets(source.layout(), bucket_bytes, comm)
        for b in self.buckets:
            if b.flat is not None:
                for i, view in zip(b.indices, b.views, strict=True):
                    source.bind(i, view)
        self.owner = {i: k for k, b in enumerate(self.buckets) for i in b.indices}
        self.overlap = overlap
        self.comm = comm
        self.team = team
        self._reset()

    @property
    def symmetric(self) -> bool:
        """Whether every bucket lives in symmetric memory (no private gradients)."""
        return all(b.flat is not None for b in self.buckets)

    def _reset(self) -> None:
        self.pending = [len(b.indices) for b in self.buckets]
        self.next = 0
        self.handles: list[Any] = []
        self.refused: list[int] = []  # gradients of this rank that no longer fit their bucket
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

    def _payload(self, b: Bucket) -> Any:
        """What to reduce for bucket ``b``: its symmetric range, or its private gradients."""
        if b.flat is None:
            return [self.source.grad(i) for i in b.indices]
        refused = [i for i in b.indices if not self.source.ensure(i)]
        if refused:  # a call no other rank makes: every rank raises a mismatch, none hangs
            self.refused += refused
            return b.flat[:0]
        return b.flat

    def _launch(self) -> None:
        b = self.buckets[self.next]
        self.next += 1
        x = self._payload(b)
        if self.comm.Get_size() == 1:  # the mean over one rank is the gradient itself
            return
        self.handles.append(
            allreduce_async(
                x, "mean", team=self.team, comm=self.comm, out=x, fusion_bytes=max(b.nbytes, 1)
            )
        )

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
            if isinstance(error, AllreduceMismatchError):  # raised on every rank: agree why
                lines = layout_differences(self.source.describe(), self.comm)
                if lines is not None:
                    raise AllreduceMismatchError(
                        f"DistributedOptimizer: the gradients differ between ranks "
                        f"(communicator size {self.comm.Get_size()}):\n{lines}\nEvery rank "
                        "must produce gradients of its parameters' shapes and dtypes; this "
                        "step was not applied (the next one works once they match)."
                    ) from error
            if error is not None:
                raise error
            if self.refused:
                raise InvalidValueError(
                    f"gradient(s) {sorted(self.refused)} no longer have their parameters' "
                    f"shapes and dtypes: [{self.source.describe()}]; this step was not applied"
                )
        finally:
            self._reset()
