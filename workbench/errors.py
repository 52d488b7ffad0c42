"""Every exception workbench raises, under one root: :class:`WorkbenchError`.

``except workbench.errors.WorkbenchError`` catches anything the package raised on purpose.
Each class also keeps the built-in base that callers already rely on (bad input is still a
``ValueError`` or ``TypeError``, a lifecycle problem a ``RuntimeError``, a missing optional
package an ``ImportError``), so existing ``except ValueError`` code keeps working. The one
exception outside the family is :class:`RanksInterrupted`: Ctrl-C stays a
``KeyboardInterrupt``, which ``except Exception`` must not catch.

In a notebook these exceptions render as one line (or, for :class:`RankError`, the failing
rank's own traceback) instead of a trace through workbench's internals.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

__all__ = [
    "AllreduceAbortedError",
    "AllreduceMismatchError",
    "AllreduceTimeoutError",
    "CheckpointError",
    "ControllerGoneError",
    "DataFreedError",
    "EngineDiedError",
    "InvalidTypeError",
    "InvalidValueError",
    "MissingDataError",
    "MissingDependencyError",
    "MissingFileError",
    "NoPoolError",
    "PoolError",
    "PoolTimeoutError",
    "RankError",
    "RankFailure",
    "RanksInterrupted",
    "SetupError",
    "StateError",
    "WorkbenchError",
]


class WorkbenchError(Exception):
    """Root of every exception workbench raises."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class InvalidValueError(WorkbenchError, ValueError):
    """An argument or setting has the right type but a value that cannot work."""


class InvalidTypeError(WorkbenchError, TypeError):
    """An argument has the wrong type."""


class MissingDependencyError(WorkbenchError, ImportError):
    """An optional package is needed for this call; the message says what to install."""


class MissingFileError(WorkbenchError, FileNotFoundError):
    """A file or folder workbench needs is not there."""


class SetupError(WorkbenchError, RuntimeError):
    """The environment lacks something workbench needs (a command, an MPI feature, a file it
    points to); the message says how to provide it."""


class StateError(WorkbenchError, RuntimeError):
    """An object was used in a state that does not allow it (freed, replaced, out of order)."""


class DataFreedError(StateError):
    """Data placed on the engines was freed (or the engines restarted) and is used again."""


class MissingDataError(WorkbenchError, KeyError):
    """Engine side: no data under this key (freed, or the engines were restarted)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(WorkbenchError, RuntimeError):
    """Saving or loading a checkpoint failed on the rank that does the file work."""


class AllreduceAbortedError(WorkbenchError, RuntimeError):
    """A rank died while the others waited for it in an allreduce; the MPI job is broken."""


class AllreduceTimeoutError(WorkbenchError, TimeoutError):
    """An asynchronous allreduce did not finish within the wait's timeout."""


class AllreduceMismatchError(WorkbenchError, ValueError):
    """Ranks called the allreduce with different shapes, dtypes, ops or call order.

    Raised on every rank of the call, never a hang or a silently wrong result.
    """


class PoolError(WorkbenchError, RuntimeError):
    """A pool lifecycle problem: no pool, pool stopped, engines missing."""


class NoPoolError(PoolError):
    """No pool was given and none is running in this process."""


class ControllerGoneError(PoolError):
    """The pool's controller did not answer a request in time: it was stopped from elsewhere
    (another process, ipyparallel's own STOP button) or it died."""


@dataclass(frozen=True)
class RankFailure:
    """One rank's remote exception."""

    rank: int
    engine_id: int
    ename: str
    evalue: str
    traceback: str


class RankError(WorkbenchError, RuntimeError):
    """Code failed on one or more ranks.

    ``failures`` holds every failing rank, lowest rank first; the message and the
    rendered traceback show the first one in full and count the others.
    """

    def __init__(self, failures: list[RankFailure], size: int) -> None:
        self.failures = sorted(failures, key=lambda f: f.rank)
        self.size = size
        first = self.failures[0]
        others = self._others()
        tail = f"; {others}" if others else ""
        super().__init__(f"rank {first.rank} raised {first.ename}: {first.evalue}{tail}")

    @property
    def ranks(self) -> list[int]:
        """The failing ranks, sorted."""
        return [f.rank for f in self.failures]

    def _others(self) -> str:
        """``1 other rank failed: rank 1 (TypeError: ...)``, or empty when none did."""
        rest = self.failures[1:]
        if not rest:
            return ""
        shown = ", ".join(f"rank {f.rank} ({f.ename}: {_short(f.evalue)})" for f in rest[:3])
        more = f" and {len(rest) - 3} more" if len(rest) > 3 else ""
        plural = "s" if len(rest) > 1 else ""
        return f"{len(rest)} other rank{plural} failed: {shown}{more}"

    def _render_traceback_(self) -> list[str]:
        first = self.failures[0]
        head = f"[rank {first.rank}] {first.ename}: {first.evalue}"
        lines = [head, *first.traceback.rstrip().splitlines()] if first.traceback else [head]
        other = self._others()
        if other:
            lines.append(other)
        return lines


def _short(text: str, width: int = 80) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


class RanksInterrupted(KeyboardInterrupt):
    """Ctrl-C in the notebook interrupted the ranks of a running cell or call.

    Still a ``KeyboardInterrupt`` (``except Exception`` does not swallow it, and it is not a
    :class:`WorkbenchError` for that reason). A notebook shows it as one line; set
    ``WORKBENCH_DEBUG=1`` to see where the notebook process was when it was interrupted.
    """

    def _render_traceback_(self) -> list[str]:
        if os.environ.get("WORKBENCH_DEBUG"):
            return traceback.format_exception(self)
        return [f"workbench: {self}"]


class PoolTimeoutError(WorkbenchError, TimeoutError):
    """A cell or call ran past its timeout; the engines were interrupted."""


class EngineDiedError(PoolError):
    """Engine processes died (or their node was lost) while running work.

    ``ranks`` maps each dead rank to why we think so. ``by_node``, when given, says the same
    one clause per node, lost nodes first (``rank 3 on node2 (lost: ...)``: see
    :func:`workbench.pool._health.by_node`), so that a lost compute node reads as one; ``note``
    adds a sentence (e.g. which live ranks did not stop when interrupted). ``nodes`` maps each
    node named in ``by_node`` to its dead ranks (empty without it).
    """

    def __init__(
        self,
        ranks: dict[int, str],
        *,
        by_node: list[tuple[str, list[int], str]] | None = None,
        note: str = "",
    ) -> None:
        self.ranks = sorted(ranks)
        self.reasons = dict(ranks)
        self.nodes = {host: list(on_host) for host, on_host, _ in by_node or []}
        if by_node and len(self.ranks) == 1:
            head = "engine for " + by_node[0][2].replace(" (", " died (", 1)
        elif by_node:
            head = "engines died: " + "; ".join(clause for *_, clause in by_node)
        else:
            detail = "; ".join(f"rank {r}: {why}" for r, why in sorted(ranks.items()))
            head = f"engine for rank {self.ranks[0]} died ({detail})"
        super().__init__(
            f"{head}.{' ' + note if note else ''} The MPI job is broken: run `%wb restart` "
            "(or pool.restart()) to get a working pool."
        )
