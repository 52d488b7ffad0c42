"""Who the engines are and how they are doing: the rows ``pool.status()`` shows."""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from typing import Any

__all__ = ["EngineInfo", "PoolStatus"]

_COLUMNS = ["rank", "engine", "host", "pid", "state", "memory"]


@dataclass(frozen=True)
class EngineInfo:
    """Who an engine is: its MPI rank, ipyparallel id, host and process id."""

    rank: int
    engine_id: int
    host: str
    pid: int


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

    def _files(self) -> list[str]:
        """The lines naming the pool's log file and the engines' output files."""
        lines = [f"log: {self.log_file}"] if self.log_file else []
        if self.engine_output:
            lines.append(f"engine output: {', '.join(self.engine_output)}")
        return lines

    def _cells(self) -> list[list[str]]:
        return [
            [str(r["rank"]), str(r["engine_id"]), r["host"], str(r["pid"]), r["state"],
             _mib(r["memory"])]
            for r in self.rows
        ]  # fmt: skip

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(_COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        lines.append(f"{self.backend} pool, cluster file: {self.cluster_file}")
        lines += [f"data: {d}" for d in self.data]
        lines += self._files()
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in self._cells()
        )
        data = "".join(f"<br><small>data: {d}</small>" for d in self.data)
        files = "".join(f"<br><small>{html.escape(f)}</small>" for f in self._files())
        return (
            f"<table><tr>{head}</tr>{body}</table>"
            f"<small>{self.backend} pool, cluster file: {self.cluster_file}</small>{data}{files}"
        )
