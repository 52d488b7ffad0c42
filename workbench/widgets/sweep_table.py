"""The live sweep view: trial table, counts by state, best-so-far and learning curves, controls.

In a Jupyter kernel with ipywidgets it is one widget updated in place (never reprinted);
elsewhere a text view prints a line when the counts change (at most every few seconds) and
a table at the end. The runner calls ``update(rows, curves, final=...)``; the Stop button
and the stop-trial action call ``on_stop()`` / ``on_stop_trial(id)`` set by the runner.
Those run while the sweep's cell is still running, on another thread (see
:mod:`workbench.widgets.live_controls`): the runner's callbacks only set a flag or queue.
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from workbench.widgets.live_controls import LiveControls
from workbench.widgets.metric_plot import svg_chart
from workbench.widgets.rank_progress import _in_widget_frontend

__all__ = ["SweepWidget", "TextSweepView", "best_so_far", "make_sweep_view", "shown_rows"]

_STATES = ("running", "queued", "pending", "done", "pruned", "failed")
_COLOR = {"running": "#1f77b4", "done": "#2ca02c", "pruned": "#ff7f0e", "failed": "#d62728"}
_MAX_ROWS = 40  # table rows drawn: running trials, the best, then the latest
_MAX_CURVES = 20  # learning curves drawn: the latest trials
_TABLE_CSS = ".workbench-sweep-table td, .workbench-sweep-table th {padding: 1px 8px}"


def _state(row: dict[str, Any]) -> str:
    """The row's state as plain text ("done", "running", ...). The runner may hand a ``str``
    enum: it compares equal to these strings, and its value is the text shown."""
    state = row["state"]
    return str(getattr(state, "value", state))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Trials per state, in a fixed order."""
    out = dict.fromkeys(_STATES, 0)
    for r in rows:
        state = _state(r)
        out[state] = out.get(state, 0) + 1
    return out


def best_so_far(rows: list[dict[str, Any]], mode: str) -> list[tuple[float, float]]:
    """``(n finished, best value)`` after each finished trial of ``rows``, in finishing
    order; ``mode`` is ``"max"`` or ``"min"``."""
    done = sorted(
        (r for r in rows if _state(r) == "done" and r.get("value") is not None),
        key=lambda r: r.get("finished") or 0.0,
    )
    points, best = [], None
    for n, r in enumerate(done, 1):
        v = r["value"]
        best = v if best is None else (max(best, v) if mode == "max" else min(best, v))
        points.append((float(n), best))
    return points


def shown_rows(rows: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """The rows worth a line: every running one, the five best (by ``mode``, ``"max"`` or
    ``"min"``), then the latest, by id."""
    sign = 1.0 if mode == "max" else -1.0
    running = [r for r in rows if _state(r) in ("running", "queued")]
    scored = [r for r in rows if _state(r) == "done" and r.get("value") is not None]
    best = sorted(scored, key=lambda r: -sign * r["value"])[:5]
    latest = sorted(rows, key=lambda r: -r["id"])
    picked: dict[int, dict[str, Any]] = {}
    for r in [*running, *best, *latest]:
        if len(picked) >= _MAX_ROWS:
            break
        picked.setdefault(r["id"], r)
    return sorted(picked.values(), key=lambda r: r["id"])


def _summary(rows: list[dict[str, Any]], metric: str | None, mode: str) -> str:
    c = counts(rows)
    text = ", ".join(f"{n} {s}" for s, n in c.items() if n)
    curve = best_so_far(rows, mode)
    best = f"; best {metric or 'value'} {curve[-1][1]:.4g}" if curve else ""
    return f"{len(rows)} trials ({text or 'none yet'}){best}"


class SweepWidget:
    """ipywidgets view of a sweep, built on the first update and then changed in place.

    ``metric`` names the objective's value (``mode``: ``"max"`` or ``"min"``); with
    ``controls`` a Stop button and a stop-trial picker are shown.
    """

    def __init__(self, metric: str | None, mode: str, *, controls: bool = True) -> None:
        self.metric, self.mode, self.controls = metric, mode, controls
        self.on_stop: Callable[[], None] | None = None
        self.on_stop_trial: Callable[[int], None] | None = None
        self.box: Any = None
        self.best_value: float | None = None
        self.rows: list[dict[str, Any]] = []
        self.stop_requested = False
        self.live: LiveControls | None = None
        self._lock = threading.Lock()

    def _build(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.header = w.HTML()
        self.table = w.HTML()
        self.chart = w.HTML()
        children = [self.header, self.table, self.chart]
        if self.controls:
            self.stop_button = w.Button(description="Stop sweep", button_style="warning")
            self.stop_button.on_click(self._stop)
            self.trial_pick = w.Dropdown(options=[], description="trial")
            self.stop_trial_button = w.Button(description="Stop trial")
            self.stop_trial_button.on_click(self._stop_trial)
            row = [self.stop_button, self.trial_pick, self.stop_trial_button]
            self.live = LiveControls()
            self.live.route(*row)
            if not self.live.live:  # an older kernel handles clicks only between cells
                row.append(w.HTML("<i>these act when the cell ends; Interrupt stops now</i>"))
            children.append(w.HBox(row))
        self.box = w.VBox(children)
        self.box.add_class("workbench-sweep")
        display(self.box)

    def _stop(self, _button: Any = None) -> None:
        with self._lock:  # a click is handled on another thread than the final update
            if self.stop_button.disabled:
                return
            self.stop_button.description = "Stopping..."
            self.stop_button.disabled = True
            self.stop_requested = True
        if self.on_stop is not None:
            self.on_stop()

    def _stop_trial(self, _button: Any = None) -> None:
        if self.on_stop_trial is not None and self.trial_pick.value is not None:
            self.on_stop_trial(int(self.trial_pick.value))

    def update(
        self,
        rows: list[dict[str, Any]],
        curves: dict[int, list[tuple[float, float]]],
        *,
        final: bool = False,
    ) -> None:
        """Redraw the table, the counts and the charts from ``rows`` and ``curves``; ``final``
        disables the controls (the sweep is over)."""
        if self.box is None:
            self._build()
        self.rows = [dict(r) for r in rows]
        curve = best_so_far(rows, self.mode)
        self.best_value = curve[-1][1] if curve else None
        state = "finished" if final else ("stopping" if self.stop_requested else "running")
        self.header.value = (
            f"<b>sweep</b> ({state}) &middot; {html.escape(_summary(rows, self.metric, self.mode))}"
        )
        self.table.value = self._table(rows)
        charts = []
        if len(curve) >= 2:
            charts.append(svg_chart(f"best {self.metric or 'value'} so far", {0: curve}))
        recent = sorted(t for t, c in curves.items() if c)[-_MAX_CURVES:]
        lines = {t: curves[t] for t in recent}
        if sum(len(v) for v in lines.values()) >= 2:
            charts.append(svg_chart(f"{self.metric} by trial", lines))
        self.chart.value = "".join(charts)
        if self.controls:
            running = tuple((f"trial {r['id']}", r["id"]) for r in rows if _state(r) == "running")
            if running != tuple(self.trial_pick.options):  # new options reset the choice
                chosen = self.trial_pick.value
                self.trial_pick.options = running
                if chosen in {i for _, i in running}:
                    self.trial_pick.value = chosen
            if final:
                with self._lock:
                    self.stop_button.disabled = self.stop_trial_button.disabled = True
                    if self.stop_requested:
                        self.stop_button.description = "Stopped"
                self.close()

    def close(self) -> None:
        """Release the controls' subshell (the sweep is over); the widget stays shown."""
        if self.live is not None:
            self.live.close()
            self.live = None

    def _table(self, rows: list[dict[str, Any]]) -> str:
        head = ["id", "state", "config", "step", self.metric or "value", "best", "ranks", "fail"]
        lines = []
        for r in shown_rows(rows, self.mode):
            color = _COLOR.get(_state(r), "#777")
            cells = [
                str(r["id"]),
                f'<span style="color:{color}">{html.escape(_state(r))}</span>',
                html.escape(json.dumps(r["config"]))[:120],
                _fmt(r.get("step")),
                _fmt(r.get("value")),
                _fmt(r.get("best")),
                html.escape(",".join(map(str, r.get("ranks") or []))),
                str(r.get("failures") or ""),
            ]
            title = html.escape((r.get("error") or "")[-400:], quote=True)
            lines.append(
                f'<tr title="{title}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
            )
        more = len(rows) - len(lines)
        note = f"<caption>{more} more trials in result.to_pandas()</caption>" if more > 0 else ""
        header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        return (
            f"<style>{_TABLE_CSS}</style>"
            f'<table class="workbench-sweep-table">{note}<tr>{header}</tr>{"".join(lines)}</table>'
        )


class TextSweepView:
    """Text fallback: a line when the counts change (at most every ``interval`` s), a table last.

    ``metric``/``mode`` as for :class:`SweepWidget`; lines go to ``stream`` (default stdout).
    """

    def __init__(
        self, metric: str | None, mode: str, *, stream: Any = None, interval: float = 2.0
    ) -> None:
        self.metric, self.mode, self.stream, self.interval = metric, mode, stream, interval
        self.on_stop: Callable[[], None] | None = None
        self.on_stop_trial: Callable[[int], None] | None = None
        self.last_line = ""
        self.last_time = 0.0

    def update(
        self,
        rows: list[dict[str, Any]],
        curves: dict[int, list[tuple[float, float]]],
        *,
        final: bool = False,
    ) -> None:
        """Print the summary line of ``rows`` when it changed and is due; the table when
        ``final`` (``curves`` are not drawn in text)."""
        out = self.stream or sys.stdout
        line = _summary(rows, self.metric, self.mode)
        now = time.monotonic()
        if final or (line != self.last_line and now - self.last_time >= self.interval):
            self.last_line, self.last_time = line, now
            print(f"[sweep] {line}", file=out, flush=True)
        if final:
            head = f"{'id':>4}  {'state':8} {'step':>6} {self.metric or 'value':>10}  config"
            print(head, file=out)
            for r in shown_rows(rows, self.mode):
                print(
                    f"{r['id']:>4}  {_state(r):8} {_fmt(r.get('step')):>6} "
                    f"{_fmt(r.get('value')):>10}  {json.dumps(r['config'])}",
                    file=out,
                )
            out.flush()


def make_sweep_view(
    metric: str | None, mode: str, *, widgets: bool | None = None, controls: bool = True
) -> SweepWidget | TextSweepView:
    """A widget in a notebook front end (or when ``widgets=True``), text otherwise, showing
    ``metric`` (best by ``mode``); ``controls`` adds the widget's stop buttons."""
    use = _in_widget_frontend() if widgets is None else widgets
    return SweepWidget(metric, mode, controls=controls) if use else TextSweepView(metric, mode)
