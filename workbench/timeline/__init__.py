"""See where the time goes: a timeline of every rank's allreduces, training steps, trials,
joblib tasks and cells, in the Chrome trace format that Perfetto opens.

Three ways to record, each giving one merged trace (a track per rank, one row per thread):

* ``%%distributed --timeline trace.json``: the cell on every rank (the notebook merges);
* ``with wb.timeline.pool("trace.json"):`` in the notebook: whatever the pool's engines do
  meanwhile (a sweep's trials, joblib tasks, several cells);
* ``with wb.timeline("trace.json") as tl:`` on every rank (in a ``%%distributed`` cell or
  a script under ``mpiexec``): the block; rank 0 merges and writes, ``tl.trace`` there;
* ``WORKBENCH_TIMELINE=trace.json`` in the environment of an MPI job: the whole run,
  written by rank 0 at exit.

Then ``wb.timeline.show()`` draws the last trace (or a path) in the notebook with its
summary: per rank, time computing, communicating, waiting for other ranks and idle, and
the stragglers (:meth:`Trace.summary`). ``wb.timeline.span("load data")`` marks a block
of your own code on the timeline.

Recording costs under a microsecond per span (measured in ``benchmarks/training.py
--timeline``), and nothing but one flag read when off.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from workbench import _spans
from workbench.timeline._record import Recording, last, remember
from workbench.timeline._summary import RankTime, Straggler, Summary
from workbench.timeline._trace import Trace, merge

__all__ = [
    "RankTime",
    "Recording",
    "Straggler",
    "Summary",
    "Trace",
    "last",
    "load",
    "merge",
    "pool",
    "show",
    "span",
    "summary",
]


def pool(path: str | os.PathLike[str] | None = None, *, pool: Any = None) -> Any:
    """``with wb.timeline.pool(path):`` in the notebook: every engine of ``pool`` (default:
    the current pool) records while the block runs; the merged trace is written to ``path``
    (when given) at its end, also when it raises, and :func:`show` draws it."""
    from workbench.timeline._cells import PoolRecording

    return PoolRecording(path, pool)


def span(name: str, args: dict[str, Any] | None = None) -> Any:
    """``with wb.timeline.span("load data"):`` puts the block on the timeline (category
    ``user``) while one is recorded; free otherwise."""
    return _spans.span(name, "user", args)


def load(path: str | os.PathLike[str]) -> Trace:
    """The trace saved at ``path`` (it becomes the one :func:`show` draws by default)."""
    return remember(Trace.load(path))


def _resolve(trace: Trace | str | os.PathLike[str] | None) -> Trace:
    from workbench.errors import InvalidValueError

    if trace is None:
        found = last()
        if found is None:
            raise InvalidValueError(
                "no timeline recorded yet: run a cell with `%%distributed --timeline "
                "trace.json`, or pass the path of a saved trace: wb.timeline.show('trace.json')"
            )
        return found
    if isinstance(trace, Trace):
        return trace
    return load(trace)


def show(trace: Trace | str | os.PathLike[str] | None = None) -> Any:
    """Draw ``trace`` (default: the last one recorded here; or a saved trace's path) in the
    notebook: ranks as rows, zoom with the wheel, drag to pan, a span's details on hover;
    its :func:`summary` below. Returns the widget."""
    from workbench.timeline._show import show as draw

    return draw(_resolve(trace))


def summary(trace: Trace | str | os.PathLike[str] | None = None) -> Summary:
    """Per rank: computing, communicating, waiting and idle time, and the stragglers of
    ``trace`` (as :func:`show`)."""
    return _resolve(trace).summary()


class _Module(types.ModuleType):
    """``wb.timeline`` is this module, and calling it starts a recording block."""

    def __call__(
        self, path: str | os.PathLike[str] | None = None, *, comm: Any = None
    ) -> Recording:
        """``with wb.timeline(path):`` records the block on every rank of ``comm``
        (default ``COMM_WORLD``); rank 0 merges the ranks' spans into ``.trace`` and
        writes ``path`` when given. Collective: every rank enters and leaves the block."""
        return Recording(path, comm=comm)


sys.modules[__name__].__class__ = _Module
