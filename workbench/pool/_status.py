"""Who the engines are and how they are doing: the rows ``pool.status()`` shows."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench._util import format_ranks
from workbench.errors import InvalidValueError

__all__ = ["EngineInfo", "PoolStatus", "checked_ranks", "engine_rows", "gone_message"]

_COLUMNS = ["rank", "engine", "host", "pid", "state", "memory"]


@dataclass(frozen=True)
class EngineInfo:
    """Who an engine is: its MPI rank, ipyparallel id, host and process id."""

    rank: int
    engine_id: int
    host: str
    pid: int


def engine_rows(
    engines: list[EngineInfo],
    dead: dict[int, str],
    unreachable: dict[int, str],
    busy: set[int],
    *,
    memory: Callable[[EngineInfo], int | None],
) -> list[dict[str, Any]]:
    """A status row per engine: rank, engine id, host, pid, state (``dead`` and
    ``unreachable`` by rank, ``busy`` by engine id, else ``idle``) and the memory of live
    ones (``memory(engine)``)."""
    rows = []
    for e in engines:
        state = "dead" if e.rank in dead else ("busy" if e.engine_id in busy else "idle")
        state = "unreachable" if e.rank in unreachable else state
        rows.append({"rank": e.rank, "engine_id": e.engine_id, "host": e.host, "pid": e.pid,
                     "state": state,
                     "memory": memory(e) if state in ("busy", "idle") else None})  # fmt: skip
    return rows


def _mib(nbytes: int | None) -> str:
    return "?" if nbytes is None else f"{nbytes / 2**20:.0f} MiB"


@dataclass(frozen=True, repr=False)
class PoolStatus:
    """``pool.status()``: one row per rank; prints as a table (HTML in a notebook)."""

    rows: list[dict[str, Any]]
    cluster_file: str
    data: list[str] = dataclasses.field(default_factory=list)
    backend: str = "local"
    log_file: str = ""  # where the pool's cluster logs (Pool.log_file)
    engine_output: list[str] = dataclasses.field(default_factory=list)  # ipyparallel's files
    #: What needs saying about the pool: the time left of a Slurm job (and its warning),
    #: ranks unreachable or dead and why, grouped by node.
    notes: list[str] = dataclasses.field(default_factory=list)

    def _where(self) -> str:
        """``local pool``, ``slurm job 12 pool``, ``inside allocation 12 (...), a step of it``."""
        return self.backend if self.backend.startswith("inside") else f"{self.backend} pool"

    def _files(self) -> list[str]:
        """The lines naming the pool's log file and the engines' output files."""
        lines = [f"log: {self.log_file}"] if self.log_file else []
        if self.engine_output:
            lines.append(f"engine output: {', '.join(self.engine_output)}")
        return lines

    @property
    def nodes(self) -> dict[str, list[int]]:
        """The ranks on each host, hosts in the order of their lowest rank."""
        groups: dict[str, list[int]] = {}
        for r in sorted(self.rows, key=lambda r: r["rank"]):
            groups.setdefault(r["host"], []).append(r["rank"])
        return groups

    def _ordered(self) -> list[dict[str, Any]]:
        """The rows grouped by host (hosts in the order of :attr:`nodes`), by rank within."""
        order = {host: i for i, host in enumerate(self.nodes)}
        return sorted(self.rows, key=lambda r: (order[r["host"]], r["rank"]))

    def _cells(self) -> list[list[str]]:
        """One list of cells per row; on several hosts, each host named on its first row."""
        several = len(self.nodes) > 1
        cells, previous = [], None
        for r in self._ordered():
            host = "" if several and r["host"] == previous else r["host"]
            previous = r["host"]
            cells.append([str(r["rank"]), str(r["engine_id"]), host, str(r["pid"]), r["state"],
                          _mib(r["memory"])])  # fmt: skip
        return cells

    def _nodes_line(self) -> list[str]:
        """``2 nodes: node1 (ranks 0, 1, 2), node2 (rank 3)``; nothing on one host."""
        if len(self.nodes) < 2:
            return []
        parts = [
            f"{host} (rank{'s' if len(ranks) > 1 else ''} {format_ranks(ranks)})"
            for host, ranks in self.nodes.items()
        ]
        return [f"{len(self.nodes)} nodes: {', '.join(parts)}"]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(_COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        lines += self._nodes_line()
        lines += self.notes
        lines.append(f"{self._where()}, cluster file: {self.cluster_file}")
        lines += [f"data: {d}" for d in self.data]
        lines += self._files()
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
        span = {host: len(ranks) for host, ranks in self.nodes.items()}
        body = ""
        for r, row in zip(self._ordered(), self._cells(), strict=True):
            tds = [f"<td>{html.escape(v)}</td>" for v in row]
            if len(span) > 1:  # each host once, over its ranks' rows
                tds[2] = (
                    f'<td rowspan="{span[r["host"]]}">{html.escape(row[2])}</td>' if row[2] else ""
                )
            body += "<tr>" + "".join(tds) + "</tr>"
        notes = [*self._nodes_line(), *self.notes]
        notes.append(f"{self._where()}, cluster file: {self.cluster_file}")
        notes += [f"data: {d}" for d in self.data] + self._files()
        small = "<br>".join(f"<small>{html.escape(n)}</small>" for n in notes)
        return f"<table><tr>{head}</tr>{body}</table>{small}"


def checked_ranks(ranks: Sequence[int] | None, size: int) -> list[int]:
    """``ranks`` sorted and without repeats (default: all of a pool of ``size``);
    :class:`InvalidValueError` for ranks the pool does not have."""
    if ranks is None:
        return list(range(size))
    bad = [r for r in ranks if not 0 <= r < size]
    if bad or not ranks:
        raise InvalidValueError(
            f"ranks {list(ranks)} are not in this pool of {size} (0..{size - 1})"
        )
    return sorted(set(ranks))


def gone_message(cluster_id: str, why: str) -> str:
    """What a pool found gone says, and what to do next."""
    return (
        f"pool {cluster_id} is gone: {why}. `%wb stop` (pool.stop()) cleans up what is left; "
        "`%wb start` starts a new pool"
    )
