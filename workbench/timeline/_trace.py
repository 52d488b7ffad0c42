"""Per-rank records merged into one trace in the Chrome trace event format.

The format (``{"traceEvents": [...]}``; complete events ``"ph": "X"`` with ``ts``/``dur`` in
microseconds, metadata events ``"ph": "M"`` naming processes and threads) is what Perfetto
(ui.perfetto.dev) and ``chrome://tracing`` open. A rank is a process (``pid`` = rank, named
``rank R (host)``), each of its threads a track inside it.

Clocks: every record carries its ``CLOCK_MONOTONIC`` reading and the wall clock read with
it. Ranks on the host of the lowest rank share its monotonic clock and are placed exactly;
a rank on another host is shifted by the difference of the two hosts' wall-minus-monotonic
offsets, so its precision is that of the hosts' clock synchronisation (NTP/PTP).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench._spans import Record
from workbench.errors import InvalidValueError
from workbench.timeline._summary import Summary, summarize

__all__ = ["Trace", "merge"]


class Trace:
    """A merged timeline: ``events`` in the Chrome trace event format (see the module doc).

    ``trace.save(path)`` writes it; ``trace.summary()`` tells compute from waiting per rank
    and finds stragglers; ``wb.timeline.show(trace)`` draws it in the notebook.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
            raise InvalidValueError(
                "a timeline is a Chrome trace: a JSON object with a 'traceEvents' list"
            )
        self.data = data

    @property
    def events(self) -> list[dict[str, Any]]:
        """The complete events (``"ph": "X"``), in time order."""
        return [e for e in self.data["traceEvents"] if e.get("ph") == "X"]

    @property
    def ranks(self) -> list[int]:
        """The ranks (process ids of the trace) that recorded something or are named."""
        return sorted({int(e["pid"]) for e in self.data["traceEvents"] if "pid" in e})

    def names(self) -> dict[int, str]:
        """Rank -> its track's name (``rank R (host)``)."""
        return {
            int(e["pid"]): e["args"]["name"]
            for e in self.data["traceEvents"]
            if e.get("ph") == "M" and e.get("name") == "process_name"
        }

    def threads(self) -> dict[tuple[int, int], str]:
        """(rank, thread id) -> thread name."""
        return {
            (int(e["pid"]), int(e["tid"])): e["args"]["name"]
            for e in self.data["traceEvents"]
            if e.get("ph") == "M" and e.get("name") == "thread_name"
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace as JSON to ``path`` (folders created); returns the path."""
        out = Path(path).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(self.data, separators=(",", ":")))
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trace:
        """The trace saved at ``path``."""
        try:
            data = json.loads(Path(path).expanduser().read_text())
        except FileNotFoundError:
            raise InvalidValueError(f"no timeline at {os.fspath(path)!r}") from None
        except json.JSONDecodeError as e:
            raise InvalidValueError(f"{os.fspath(path)!r} is not a JSON trace: {e}") from None
        return cls(data)

    def summary(self) -> Summary:
        """Per rank: computing, communicating, waiting for other ranks, idle; and the
        stragglers (see :mod:`workbench.timeline._summary`)."""
        return summarize(self)

    def __repr__(self) -> str:
        n = len(self.events)
        return f"<Trace: {len(self.ranks)} ranks, {n} spans>"


def _offsets(records: Sequence[Record]) -> list[int]:
    """Nanoseconds to add to each record's monotonic times to place it on the first one's
    clock (see the module doc)."""
    ref = records[0]
    ref_skew = ref.wall_ns - ref.monotonic_ns
    return [
        0 if rec.host == ref.host else (rec.wall_ns - rec.monotonic_ns) - ref_skew
        for rec in records
    ]


def merge(records: Sequence[Record], meta: dict[str, Any] | None = None) -> Trace:
    """One trace from the records of several ranks (each with ``rank`` set)."""
    if not records:
        raise InvalidValueError("no records to merge: nothing was recorded")
    records = sorted(records, key=lambda r: -1 if r.rank is None else r.rank)
    offsets = _offsets(records)
    origin = min(rec.began + off for rec, off in zip(records, offsets, strict=True))
    events: list[dict[str, Any]] = []
    dropped = {}
    for k, (rec, off) in enumerate(zip(records, offsets, strict=True)):
        rank = k if rec.rank is None else rec.rank
        events.append(_meta("process_name", rank, 0, f"rank {rank} ({rec.host})"))
        events.append(_meta("process_sort_index", rank, 0, rank, key="sort_index"))
        tids = _thread_ids(rec)
        for ident, tid in tids.items():
            events.append(_meta("thread_name", rank, tid, rec.threads.get(ident, str(ident))))
        for t0, t1, name, cat, ident, args in rec.spans:
            event = {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": round((t0 + off - origin) / 1e3, 3),
                "dur": round(max(t1 - t0, 0) / 1e3, 3),
                "pid": rank,
                "tid": tids[ident],
            }
            if args:
                event["args"] = args
            events.append(event)
        if rec.dropped:
            dropped[rank] = rec.dropped
    events.sort(key=lambda e: (e.get("ph") != "M", e.get("ts", 0.0), -e.get("dur", 0.0)))
    other = {
        "producer": "workbench",
        "ranks": len(records),
        "hosts": sorted({rec.host for rec in records}),
        "clock": "CLOCK_MONOTONIC; ranks on other hosts than the first aligned by wall clock",
        "dropped_spans": dropped,
        **(meta or {}),
    }
    return Trace({"traceEvents": events, "displayTimeUnit": "ms", "otherData": other})


def _thread_ids(rec: Record) -> dict[int, int]:
    """Small thread ids for a record's threads: the main thread 0, then by first span."""
    order: list[int] = []
    for ident in rec.threads:
        if rec.threads[ident] == "MainThread":
            order.insert(0, ident)
        else:
            order.append(ident)
    return {ident: k for k, ident in enumerate(order)}


def _meta(name: str, pid: int, tid: int, value: Any, key: str = "name") -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {key: value}}
