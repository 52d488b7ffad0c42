"""Tensor fusion: many tensors of one dtype packed into one buffer, reduced once.

Tensors are grouped by dtype (in order of first appearance) and cut into batches of
at most ``fusion_bytes``; a tensor larger than that travels alone, unpacked.
Out-of-place results are views into the batch's own buffer (packed once, no
unpack); in-place results are packed into a reusable scratch buffer and unpacked. A batch
that ``cma`` reduces between the tensors themselves is not packed at all: its results are
:meth:`Batch.targets`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import typed

from workbench.comm import kernels
from workbench.comm._convert import Item
from workbench.comm.algorithms import Algorithm, scratch

__all__ = ["Batch", "plan"]

_FUSION_SLOT = 2  # scratch slot of the fusion buffer (algorithms use 0 and 1)


class Batch:
    """Tensors of one dtype reduced by one allreduce."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.dtype = items[0].src.dtype
        if len(items) == 1:
            self.size = items[0].src.size
        else:
            self.offsets = np.zeros(len(items) + 1, dtype=np.int64)
            np.cumsum([it.src.size for it in items], out=self.offsets[1:])
            self.size = int(self.offsets[-1])
        self.nbytes = self.size * self.dtype.itemsize
        self.buf: np.ndarray | None = None

    @property
    def fused(self) -> bool:
        return len(self.items) > 1

    def packed(self) -> np.ndarray:
        """This batch's input as one flat array (packs the tensors when fused)."""
        if not self.fused:
            return self.items[0].src
        if self.buf is None:
            if all(it.dst is None for it in self.items):  # results will be views into buf
                self.buf = np.empty(self.size, dtype=self.dtype)
            else:
                self.buf = scratch(self.dtype, self.size, _FUSION_SLOT)
            kernels.pack_flat(self.buf, typed.List([it.src for it in self.items]), self.offsets)
        return self.buf

    def pack_into(self, dst: np.ndarray) -> None:
        """Copy this batch's input into the flat ``dst`` (one numba pass when fused)."""
        if self.fused:
            kernels.pack_flat(dst, typed.List([it.src for it in self.items]), self.offsets)
        else:
            np.copyto(dst, self.items[0].src)

    def take_result(self, src: np.ndarray, *, own: bool = False) -> None:
        """Copy the reduced flat ``src`` out to the results (unpacked in one pass when fused;
        out-of-place results of a fused batch are views into one array: ``src`` itself when
        ``own``, the batch's own buffer, else a copy of it)."""
        if not self.fused:
            it = self.items[0]
            if it.dst is None:
                it.dst = src.copy()
            else:
                np.copyto(it.dst, src)
            return
        if all(it.dst is None for it in self.items):
            flat = src if own else src.copy()
            for k, it in enumerate(self.items):
                it.dst = flat[self.offsets[k] : self.offsets[k + 1]]
            return
        for it in self.items:
            if it.dst is None:
                it.dst = np.empty_like(it.src)
        kernels.unpack_flat(src, typed.List([it.dst for it in self.items]), self.offsets)

    def targets(self) -> list[np.ndarray]:
        """The arrays the results go to, allocated where the caller gave none (views of one
        new array when it gave none at all)."""
        if all(it.dst is None for it in self.items):
            flat = np.empty(self.size, dtype=self.dtype)
            for k, it in enumerate(self.items):
                it.dst = flat[self.offsets[k] : self.offsets[k + 1]]
        for it in self.items:
            if it.dst is None:
                it.dst = np.empty_like(it.src)
        return [it.dst for it in self.items]  # type: ignore[misc]  # (all set above)

    def run(self, op: str, comm: Any, algo: Algorithm, rows: np.ndarray | None = None) -> None:
        """Reduce (or, with ``rows`` gathered by the check, combine locally) and scatter back."""
        base = "sum" if op == "mean" else op
        if not self.fused:
            it = self.items[0]
            if it.dst is None:
                it.dst = np.empty_like(it.src)
            target, src = it.dst, it.src
        else:
            target = self.packed()
            src = None
        if rows is not None:
            kernels.reduce_rows(target, rows, kernels.OP_CODES[base], 1)
        else:
            algo.reduce(target, base, comm, src=src)
        if op == "mean" and target.size:
            kernels.divide_by(target, comm.Get_size())
        if self.fused:
            self.take_result(target, own=True)


def plan(items: list[Item], fusion_bytes: int) -> list[Batch]:
    """Group ``items`` by dtype and cut each group into batches of at most ``fusion_bytes``."""
    if len(items) == 1:
        return [Batch(items)]
    groups: dict[np.dtype, list[Item]] = {}
    for it in items:
        groups.setdefault(it.src.dtype, []).append(it)
    batches: list[Batch] = []
    for group in groups.values():
        current: list[Item] = []
        used = 0
        for it in group:
            nb = it.src.nbytes
            if current and used + nb > fusion_bytes:
                batches.append(Batch(current))
                current, used = [], 0
            current.append(it)
            used += nb
        if current:
            batches.append(Batch(current))
    return batches
