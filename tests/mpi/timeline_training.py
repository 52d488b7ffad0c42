"""A recorded 2-rank training run (``WORKBENCH_TIMELINE`` set by the test): rank 1 is made
a straggler (it sleeps in every forward pass); a ``wb.timeline`` block around a few plain
allreduces writes its own trace. The test reads both files."""

from __future__ import annotations

import os
import time

import numpy as np
from _common import RANK, Failures

import workbench as wb
from workbench.train import MLP, fit

SLEEP = 0.02  # seconds rank 1 adds to each forward pass


class Slow(MLP):
    def loss_and_grad(self, X, y):  # type: ignore[no-untyped-def]
        if RANK == 1:
            with wb.timeline.span("slow data", {"sleep": SLEEP}):
                time.sleep(SLEEP)
        return super().loss_and_grad(X, y)


def _only_on_rank_0(trace: object) -> None:
    assert (trace is not None) == (RANK == 0), trace


def main() -> None:
    failures = Failures()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 16)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    fit(Slow([16, 32, 2]), X, y, epochs=2, batch_size=64, progress=False)
    with wb.timeline(os.environ["BLOCK_TRACE"]) as tl:
        for _ in range(3):
            wb.allreduce(np.ones(256, dtype=np.float32))
    failures.case("the block's trace is on rank 0 only", _only_on_rank_0, tl.trace)
    failures.finish("timeline training")


main()
