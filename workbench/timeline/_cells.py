"""The timeline of a pool's engines, recorded from the notebook: ``%%distributed --timeline
PATH`` (a cell) and ``with wb.timeline.pool(PATH):`` (whatever runs on the engines meanwhile:
a sweep's trials, joblib tasks, several cells).

The engines record from the start to the end; their records come back through the pool
(not MPI: work that failed or broke a collective still gives its timeline) and are merged
here, in the notebook.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from workbench.timeline._record import begin_cell, end_cell, remember
from workbench.timeline._trace import Trace, merge

__all__ = ["PoolRecording", "run_recorded"]


class PoolRecording:
    """``with wb.timeline.pool(path):`` in the notebook: every engine of ``pool`` (default:
    the current one) records while the block runs; at its end the merged trace is written
    to ``path`` (when given), kept as :attr:`trace` and drawn by ``wb.timeline.show()``.
    It is written also when the block raises."""

    def __init__(self, path: str | os.PathLike[str] | None = None, pool: Any = None) -> None:
        from workbench.pool import require

        self.pool = require(pool)
        self.path = path
        self.trace: Trace | None = None

    def __enter__(self) -> PoolRecording:
        self.pool.apply(begin_cell, timeout=60, stream=False, progress=False)
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if error is None:
            self.trace = _collect(self.pool, self.path, None)
            return
        try:
            self.trace = _collect(self.pool, self.path, None)
        except Exception as e:  # the block's error is the one to see; say what was lost
            print(f"workbench: the timeline was not written ({type(e).__name__}: {e})")


def run_recorded(
    pool: Any,
    cell: str,
    path: str | os.PathLike[str],
    *,
    ranks: Sequence[int] | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> Trace:
    """Run ``cell`` on ``ranks`` of ``pool`` (``pool.execute``) with the timeline recorded;
    the merged trace is written to ``path`` also when the cell raises (then re-raised)."""
    pool.apply(begin_cell, ranks=ranks, timeout=60, stream=False, progress=False)
    try:
        pool.execute(cell, ranks=ranks, timeout=timeout, progress=progress)
    except BaseException:
        try:
            _collect(pool, path, ranks)
        except Exception as e:  # the cell's error is the one to see; say what was lost
            print(f"workbench: the timeline was not written ({type(e).__name__}: {e})")
        raise
    return _collect(pool, path, ranks)


def _collect(pool: Any, path: str | os.PathLike[str] | None, ranks: Sequence[int] | None) -> Trace:
    records = pool.apply(end_cell, ranks=ranks, timeout=60, stream=False, progress=False)
    trace = remember(merge(records))
    where = "recorded" if path is None else f"written to {trace.save(path)}"
    print(f"workbench: timeline of {len(records)} ranks ({len(trace.events)} spans) {where}; "
          "wb.timeline.show() draws it")  # fmt: skip
    return trace
