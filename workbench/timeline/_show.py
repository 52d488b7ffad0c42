"""``wb.timeline.show()``: the trace drawn in the notebook, its summary under it."""

from __future__ import annotations

import json
from typing import Any

from workbench.timeline._trace import Trace

__all__ = ["MAX_DRAWN", "show", "view_data"]

#: Spans sent to the browser at most (the longest are kept; the file has them all).
MAX_DRAWN = 200_000


def view_data(trace: Trace) -> dict[str, Any]:
    """The :class:`~workbench.widgets.timeline_view.TimelineView` traits of ``trace``: a
    row per (rank, thread) with spans, nested spans on lanes below their parent."""
    events = trace.events
    shown = events
    if len(events) > MAX_DRAWN:
        shown = sorted(events, key=lambda e: -e["dur"])[:MAX_DRAWN]
    names_of = trace.names()
    thread_names = trace.threads()
    by_row: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in shown:
        by_row.setdefault((int(e["pid"]), int(e["tid"])), []).append(e)
    rows: list[dict[str, Any]] = []
    spans: list[float] = []
    names: list[str] = []
    details: list[str] = []
    name_index: dict[str, int] = {}
    for k, key in enumerate(sorted(by_row)):
        rank, tid = key
        label = names_of.get(rank, f"rank {rank}")
        if tid:  # a thread of the rank above: indented
            thread = thread_names.get(key, f"thread {tid}")
            label = "  " + thread.replace("workbench-allreduce-", "allreduce team ")
        stack: list[float] = []  # ends of the open spans
        lanes = 1
        for e in sorted(by_row[key], key=lambda e: (e["ts"], -e["dur"])):
            while stack and stack[-1] <= e["ts"]:
                stack.pop()
            lane = len(stack)
            stack.append(e["ts"] + e["dur"])
            lanes = max(lanes, lane + 1)
            n = name_index.setdefault(e["name"], len(name_index))
            if n == len(names):
                names.append(e["name"])
            detail = -1
            if e.get("args"):
                detail = len(details)
                details.append(json.dumps(e["args"], default=str)[:300])
            spans += [k, e["ts"], e["dur"], n, lane, detail]
        rows.append({"label": label, "lanes": lanes})
    caption = f"{len(trace.ranks)} ranks, {len(events)} spans"
    if len(shown) < len(events):
        caption += f" ({len(shown)} longest drawn)"
    caption += "; wheel: zoom, drag: pan, double click: all"
    return {"rows": rows, "spans": spans, "names": names, "details": details,
            "caption": caption}  # fmt: skip


def show(trace: Trace) -> Any:
    """Display and return the timeline of ``trace`` with its summary table under it."""
    import ipywidgets
    from IPython.display import display

    from workbench.widgets.timeline_view import TimelineView

    view = TimelineView(**view_data(trace))
    table = ipywidgets.HTML(trace.summary()._repr_html_())
    box = ipywidgets.VBox([view, table])
    display(box)
    return box
