"""``%%distributed --timeline PATH``: a cell run on the ranks with the timeline recorded.

The engines record from just before the cell to just after it; their records come back
through the pool (not MPI: a cell that failed or broke a collective still gives its
timeline) and are merged here, in the notebook.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from workbench.timeline._record import begin_cell, end_cell, remember
from workbench.timeline._trace import Trace, merge

__all__ = ["run_recorded"]


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


def _collect(pool: Any, path: str | os.PathLike[str], ranks: Sequence[int] | None) -> Trace:
    records = pool.apply(end_cell, ranks=ranks, timeout=60, stream=False, progress=False)
    trace = remember(merge(records, {"cell": True}))
    out = trace.save(path)
    print(f"workbench: timeline of {len(records)} ranks ({len(trace.events)} spans) written "
          f"to {out}; wb.timeline.show() draws it")  # fmt: skip
    return trace
