"""Where each rank's time went, and which rank the others waited for.

Each rank's main thread is cut into *self time* (a span's time not covered by a span nested
in it) and classified: the waits inside collectives (``wait for peers``, ``check``, ``wait
for gradients``) are **waiting**; the rest of the allreduce (copies, the reduction itself)
is **communicating**; every other span (a training step's forward and backward, a trial, a
task, a cell) is **computing**; what no span covers is **idle**. The allreduces of other
threads (overlapped bucket reductions) are reported on their own.

A **straggler** is found two ways: per training step (``step`` spans), the rank whose step
took the longest once its waits are taken out; per collective (the n-th ``allreduce`` of
every rank's main thread), the rank that arrived last, and by how much after the first.
"""

from __future__ import annotations

import bisect
import html
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WAITS", "RankTime", "Straggler", "Summary", "summarize"]

#: Span names that are a rank waiting for the others.
WAITS = frozenset({"wait for peers", "check", "wait for gradients"})
_SHOWN = 10  # stragglers listed


@dataclass(frozen=True)
class RankTime:
    """One rank's time in milliseconds over the trace's window (see the module doc)."""

    rank: int
    name: str
    computing: float
    communicating: float
    waiting: float
    idle: float
    overlapped: float  # allreduce time on other threads (overlapped with the main thread)
    last_arrivals: int  # collectives this rank arrived at last
    slowest_steps: int  # training steps in which this rank computed longest


@dataclass(frozen=True)
class Straggler:
    """``rank`` held the others up in ``what`` (``step 12``, ``allreduce 40``): it was
    ``late_ms`` behind (see the module doc)."""

    what: str
    rank: int
    late_ms: float
    detail: str


@dataclass(frozen=True)
class Summary:
    """The summary of a trace: ``ranks`` (:class:`RankTime`), the worst ``stragglers``
    first, and ``window_ms``."""

    window_ms: float
    ranks: list[RankTime]
    stragglers: list[Straggler] = field(default_factory=list)

    @property
    def slowest(self) -> int | None:
        """The rank that held the others up longest in all (None when nobody did)."""
        held: dict[int, float] = {}
        for s in self.stragglers:
            held[s.rank] = held.get(s.rank, 0.0) + s.late_ms
        return max(held, key=lambda r: held[r]) if held else None

    def rows(self) -> list[list[str]]:
        """The per-rank table as text cells (header first)."""
        head = ["rank", "computing", "communicating", "waiting", "idle", "overlapped",
                "last to arrive", "slowest step"]  # fmt: skip
        out = [head]
        for r in self.ranks:
            pct = [_ms_pct(v, self.window_ms) for v in
                   (r.computing, r.communicating, r.waiting, r.idle)]  # fmt: skip
            out.append([r.name, *pct, f"{r.overlapped:.1f} ms", str(r.last_arrivals),
                        str(r.slowest_steps)])  # fmt: skip
        return out

    def __str__(self) -> str:
        rows = self.rows()
        widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
        lines = [f"timeline: {len(self.ranks)} ranks over {self.window_ms:.1f} ms"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]  # fmt: skip
        lines += self._straggler_lines()
        return "\n".join(lines)

    def _straggler_lines(self) -> list[str]:
        if not self.stragglers:
            return ["stragglers: none (no rank was waited for)"]
        lines = [f"stragglers (worst {min(len(self.stragglers), _SHOWN)}; rank "
                 f"{self.slowest} held the others up longest):"]  # fmt: skip
        lines += [f"  {s.what}: rank {s.rank}, {s.detail}" for s in self.stragglers[:_SHOWN]]
        return lines

    def _repr_html_(self) -> str:
        rows = self.rows()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in rows[1:]
        )
        notes = "<br>".join(html.escape(line) for line in self._straggler_lines())
        return (
            f'<div class="workbench-timeline-summary"><table><caption>time per rank over '
            f"{self.window_ms:.1f} ms</caption><thead><tr>{head}</tr></thead><tbody>{body}"
            f"</tbody></table><p>{notes}</p></div>"
        )


def _ms_pct(value: float, window: float) -> str:
    return f"{value:.1f} ms ({100 * value / window:.0f}%)" if window > 0 else f"{value:.1f} ms"


def summarize(trace: Any) -> Summary:
    """The :class:`Summary` of a :class:`~workbench.timeline.Trace`."""
    events = trace.events
    if not events:
        return Summary(0.0, [])
    start = min(e["ts"] for e in events)
    window = (max(e["ts"] + e["dur"] for e in events) - start) / 1e3
    names = trace.names()
    by_rank: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_rank.setdefault(int(e["pid"]), []).append(e)
    mains = {rank: [e for e in evs if e["tid"] == 0] for rank, evs in by_rank.items()}
    stragglers = _step_stragglers(mains) + _arrival_stragglers(mains)
    late = Counter(s.rank for s in stragglers if s.what.startswith("allreduce"))
    slow = Counter(s.rank for s in stragglers if s.what.startswith("step"))
    ranks = []
    for rank in sorted(by_rank):
        kinds = _self_times(mains[rank], window * 1e3)
        other = sum(e["dur"] for e in by_rank[rank] if e["tid"] != 0 and e["name"] == "allreduce")
        ranks.append(RankTime(rank, names.get(rank, f"rank {rank}"), kinds["computing"],
                              kinds["communicating"], kinds["waiting"], kinds["idle"],
                              other / 1e3, late[rank], slow[rank]))  # fmt: skip
    stragglers.sort(key=lambda s: -s.late_ms)
    return Summary(window, ranks, stragglers)


def _self_times(events: list[dict[str, Any]], window_us: float) -> dict[str, float]:
    """Milliseconds of self time of one thread's spans per kind, and idle."""
    out = {"computing": 0.0, "communicating": 0.0, "waiting": 0.0, "idle": 0.0}
    stack: list[list[Any]] = []  # [end, event, time of children]
    covered = 0.0

    def close(item: list[Any]) -> None:
        e = item[1]
        own = max(e["dur"] - item[2], 0.0)
        kind = "waiting" if e["name"] in WAITS else (
            "communicating" if e.get("cat") == "comm" else "computing")  # fmt: skip
        out[kind] += own / 1e3

    for e in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        while stack and stack[-1][0] <= e["ts"]:
            close(stack.pop())
        if stack:
            stack[-1][2] += e["dur"]
        else:
            covered += e["dur"]
        stack.append([e["ts"] + e["dur"], e, 0.0])
    while stack:
        close(stack.pop())
    out["idle"] = max(window_us - covered, 0.0) / 1e3
    return out


def _step_stragglers(mains: dict[int, list[dict[str, Any]]]) -> list[Straggler]:
    """Per training step on every rank: the rank that computed longest (waits taken out)."""
    computed: dict[int, dict[int, float]] = {}  # step -> rank -> ms
    for rank, evs in mains.items():
        waits = sorted((e["ts"], e["dur"]) for e in evs if e["name"] in WAITS)
        starts = [w[0] for w in waits]
        for e in evs:
            if e["name"] != "step" or "step" not in e.get("args", {}):
                continue
            lo = bisect.bisect_left(starts, e["ts"])
            hi = bisect.bisect_right(starts, e["ts"] + e["dur"])
            waited = sum(d for _, d in waits[lo:hi])
            computed.setdefault(int(e["args"]["step"]), {})[rank] = (e["dur"] - waited) / 1e3
    out = []
    for step, per_rank in sorted(computed.items()):
        if len(per_rank) < len(mains) or len(per_rank) < 2:
            continue  # not a step of every rank
        rank = max(per_rank, key=lambda r: per_rank[r])
        others = statistics.median(v for r, v in per_rank.items() if r != rank)
        out.append(Straggler(f"step {step}", rank, per_rank[rank] - others,
                             f"computed {per_rank[rank]:.2f} ms, the others "
                             f"{others:.2f} ms (median)"))  # fmt: skip
    return out


def _arrival_stragglers(mains: dict[int, list[dict[str, Any]]]) -> list[Straggler]:
    """Per collective (the n-th allreduce of every main thread): the last rank to arrive."""
    calls = {
        rank: [e["ts"] for e in evs if e["name"] == "allreduce"] for rank, evs in mains.items()
    }
    if len(calls) < 2:
        return []
    n = min(len(v) for v in calls.values())
    out = []
    for k in range(n):
        arrived = {rank: ts[k] for rank, ts in calls.items()}
        rank = max(arrived, key=lambda r: arrived[r])
        late = (arrived[rank] - min(arrived.values())) / 1e3
        out.append(Straggler(f"allreduce {k + 1}", rank, late,
                             f"arrived {late:.2f} ms after the first"))  # fmt: skip
    return out
