"""Exceptions raised on the notebook side, rendered without package-internal tracebacks."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EngineDiedError",
    "PoolError",
    "PoolTimeoutError",
    "RankError",
    "RankFailure",
]


class PoolError(RuntimeError):
    """A pool lifecycle problem: no pool, pool stopped, engines missing."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class RankFailure:
    """One rank's remote exception."""

    rank: int
    engine_id: int
    ename: str
    evalue: str
    traceback: str


class RankError(RuntimeError):
    """Code failed on one or more ranks.

    ``failures`` holds every failing rank, lowest rank first; the message and the
    rendered traceback show the first one in full and count the others.
    """

    def __init__(self, failures: list[RankFailure], size: int) -> None:
        self.failures = sorted(failures, key=lambda f: f.rank)
        self.size = size
        first = self.failures[0]
        super().__init__(f"rank {first.rank} raised {first.ename}: {first.evalue}{self._others()}")

    @property
    def ranks(self) -> list[int]:
        """The failing ranks, sorted."""
        return [f.rank for f in self.failures]

    def _others(self) -> str:
        rest = self.failures[1:]
        if not rest:
            return ""
        ranks = ", ".join(str(f.rank) for f in rest)
        names = sorted({f.ename for f in rest})
        plural = "s" if len(rest) > 1 else ""
        kinds = ", ".join(names)
        return f" (and {len(rest)} other rank{plural} of {self.size} failed: {ranks}; {kinds})"

    def _render_traceback_(self) -> list[str]:
        first = self.failures[0]
        head = f"[rank {first.rank}] {first.ename}: {first.evalue}"
        lines = [head, *first.traceback.rstrip().splitlines()] if first.traceback else [head]
        other = self._others()
        if other:
            lines.append(other.strip(" ()").capitalize())
        return lines


class PoolTimeoutError(TimeoutError):
    """A cell or call ran past its timeout; the engines were interrupted."""

    def _render_traceback_(self) -> list[str]:
        return [f"PoolTimeoutError: {self}"]


class EngineDiedError(PoolError):
    """An engine process died while it was running work."""

    def __init__(self, ranks: dict[int, str]) -> None:
        self.ranks = sorted(ranks)
        detail = "; ".join(f"rank {r}: {why}" for r, why in sorted(ranks.items()))
        super().__init__(
            f"engine for rank {self.ranks[0]} died ({detail}). "
            "The MPI job is broken: run `%wb restart` (or pool.restart()) to get a working pool."
        )
