"""Wait for work on the engines: show rank-labelled output (:mod:`._output`), drive the
progress view, and turn timeouts, Ctrl-C, dead engines and remote errors into clear exceptions.

Both ``Pool.run`` and ``%%distributed`` go through :func:`wait_for`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from workbench._timeouts import INTERRUPT_GRACE
from workbench._util import format_ranks
from workbench.errors import (
    EngineDiedError,
    PoolTimeoutError,
    RankError,
    RankFailure,
    RanksInterrupted,
)
from workbench.pool._health import by_node
from workbench.pool._ipp import Failure, child_metadata, classify_failure, failure_details
from workbench.pool._output import RankOutput
from workbench.pool._status import EngineInfo
from workbench.pool._traceback import renumber_cells, running_cell_number
from workbench.progress import KEY, ProgressTracker

if TYPE_CHECKING:
    from ipyparallel.client.asyncresult import AsyncResult

__all__ = ["Engines", "wait_for"]

log = logging.getLogger(__name__)

_POLL = 0.05  # seconds between looks at the result
_DEATH_CHECK = 0.5  # seconds between checks for dead engines


class Engines(Protocol):
    """What :func:`wait_for` needs from the engines it waits on (a :class:`Pool` is one)."""

    engines: list[EngineInfo]

    def dead_ranks(self, ranks: Sequence[int] | None = None) -> dict[int, str]:
        """Ranks whose engine is gone, with why."""
        ...

    def interrupt(self, ranks: Sequence[int] | None = None, *, settle: Sequence[Any] = ()) -> None:
        """Send SIGINT to the engines of ``ranks`` (until ``settle`` is done, bounded)."""
        ...

    def time_warning(self) -> str | None:
        """A line to show once when the pool's Slurm job is about to end, else None."""
        ...


def _as_list(value: Any, n: int) -> list[Any]:
    return value if isinstance(value, list) else [value] * n


def _payloads(ar: AsyncResult, ranks: list[int]) -> dict[int, dict[str, Any]]:
    data = [md.get("data") for md in child_metadata(ar)]
    return {r: d[KEY] for r, d in zip(ranks, data, strict=False) if d and KEY in d}


def wait_for(
    ar: AsyncResult,
    pool: Engines,
    ranks: list[int],
    *,
    timeout: float | None = None,
    stream: bool = True,
    progress: bool = True,
) -> list[Any]:
    """Wait for ``ar`` (one child per rank, in ``ranks`` order) and return its results.

    Raises :class:`RankError` when ranks raised, :class:`PoolTimeoutError` past
    ``timeout`` (engines interrupted), :class:`EngineDiedError` when an engine died,
    and :class:`RanksInterrupted` (a ``KeyboardInterrupt``) after interrupting the engines
    on Ctrl-C.
    """
    from workbench.widgets import make_progress_view

    output = RankOutput(ranks) if stream else None
    tracker = ProgressTracker(ranks)
    view = make_progress_view() if progress else None
    start = time.monotonic()
    next_check = start + _DEATH_CHECK

    def tick(final: bool = False) -> None:
        if output:
            output.feed(child_metadata(ar), final=final)
        tracker.update(_payloads(ar, ranks))
        if view:  # views decide what to show before the first report ("starting…" or nothing)
            view.refresh(tracker)

    def finish(states: dict[int, str]) -> None:
        tick(final=True)
        tracker.finish(states)
        if view:
            view.close(tracker)

    try:
        while not ar.ready():
            ar.wait(_POLL)
            tick()
            now = time.monotonic()
            if timeout is not None and now - start > timeout and not ar.ready():
                stuck = _interrupt(ar, pool, ranks)
                finish(dict.fromkeys(ranks, "interrupted"))
                span = format_ranks(ranks)
                msg = f"ran past the timeout of {timeout:g} s; ranks {span} were interrupted"
                if stuck:
                    msg += (
                        f". Ranks {format_ranks(stuck)} did not stop within {INTERRUPT_GRACE:g} s "
                        "(blocked in MPI or C code?): run `%wb restart` to recover"
                    )
                raise PoolTimeoutError(msg)
            if now >= next_check and not ar.ready():
                next_check = now + _DEATH_CHECK
                warning = pool.time_warning()
                if warning:
                    print(warning, flush=True)
                dead = pool.dead_ranks(ranks)
                if dead:
                    stuck = _stop_survivors(ar, pool, ranks, dead)
                    finish({r: "failed" if r in dead else "interrupted" for r in ranks})
                    raise _died(dead, pool, stuck)
    except KeyboardInterrupt:
        stuck = _interrupt(ar, pool, ranks)
        finish(dict.fromkeys(ranks, "interrupted"))
        note = f"; ranks {format_ranks(stuck)} still busy, run `%wb restart`" if stuck else ""
        raise RanksInterrupted(f"interrupted ranks {format_ranks(ranks)}{note}") from None

    ar.wait_for_output(timeout=2.0)
    values = ar.get(timeout=0, return_exceptions=True)
    values = _as_list(values, len(ranks)) if len(ranks) == 1 else values
    cell = running_cell_number()
    raised = {r: v for r, v in zip(ranks, values, strict=False) if isinstance(v, Exception)}
    failures = [_failure(rank, v, cell) for rank, v in raised.items()]
    finish({r: "failed" if r in raised else "done" for r in ranks})
    died = {r: "its engine died while running the task" for r, v in raised.items()
            if classify_failure(v) is Failure.ENGINE_DIED}  # fmt: skip
    if died:  # ipyparallel noticed first (unregistration); say which processes are gone
        raise _died({**died, **pool.dead_ranks(ranks)}, pool, [])
    if failures:
        raise RankError(failures, size=len(ranks))
    return list(values)


def _died(dead: dict[int, str], pool: Engines, stuck: list[int]) -> EngineDiedError:
    """The error naming the dead ranks by node, and the live ones that did not stop."""
    hosts = {e.rank: e.host for e in pool.engines}
    note = ""
    if stuck:
        s = "s" if len(stuck) > 1 else ""
        note = (
            f"Rank{s} {format_ranks(stuck)} did not stop when interrupted (blocked in MPI with "
            "a dead peer)."
        )
    return EngineDiedError(dead, by_node=by_node(dead, hosts), note=note)


def _stop_survivors(
    ar: AsyncResult, pool: Engines, ranks: list[int], dead: dict[int, str]
) -> list[int]:
    """Interrupt the ranks still alive after others died (the MPI job is broken: those in a
    collective with a dead peer would wait for ever); return those that did not stop
    within ``INTERRUPT_GRACE`` (blocked in MPI: ``%wb restart`` ends them)."""
    alive = [r for r in ranks if r not in dead]
    if not alive:
        return []
    children = dict(zip(ranks, _as_list(ar.metadata, len(ranks)), strict=False))

    def running() -> list[int]:
        return [r for r in alive if not (children.get(r) or {}).get("completed")]

    if not running():
        return []
    try:
        pool.interrupt(running())
    except Exception:  # a broken pool may refuse even that: the error names them, says restart
        log.debug("interrupting the surviving ranks %s failed", running(), exc_info=True)
        return running()
    deadline = time.monotonic() + INTERRUPT_GRACE
    while running() and time.monotonic() < deadline:
        ar.wait(_POLL)
        children = dict(zip(ranks, _as_list(ar.metadata, len(ranks)), strict=False))
    return running()


def _interrupt(ar: AsyncResult, pool: Engines, ranks: list[int]) -> list[int]:
    """SIGINT every rank still working; return the ranks that did not stop in time."""
    pool.interrupt(ranks, settle=[ar])
    if ar.ready():
        return []
    return [
        r
        for r, md in zip(ranks, _as_list(ar.metadata, len(ranks)), strict=False)
        if not md.get("completed")
    ]


def _failure(rank: int, exc: BaseException, cell: int | None) -> RankFailure:
    """``rank``'s exception, its traceback naming notebook cell ``cell`` (or no number)."""
    ename, evalue, trace, eid = failure_details(exc)
    return RankFailure(rank, eid, ename, evalue, renumber_cells(trace, cell))
