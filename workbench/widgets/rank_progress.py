"""Live rank progress: one bar per rank with its latest metrics and the elapsed time,
and a live chart of each numeric metric.

In a Jupyter kernel with ipywidgets the view is a widget updated in place; in a
terminal, a plain script or without ipywidgets it prints a compact line now and then.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any, Protocol

from workbench.progress import ProgressTracker, RankProgress
from workbench.widgets.metric_plot import MetricPlot

__all__ = ["ProgressView", "RankProgressWidget", "TextProgress", "make_progress_view"]

_STYLE = {"running": "info", "done": "success", "failed": "danger", "interrupted": "warning"}


class ProgressView(Protocol):
    """What the execution loop needs of a view."""

    def refresh(self, tracker: ProgressTracker) -> None:
        """Show what ``tracker`` knows now (called often, while work runs)."""
        ...

    def close(self, tracker: ProgressTracker) -> None:
        """Show ``tracker``'s final state (called once, when the work ended)."""
        ...


def _in_widget_frontend() -> bool:
    """True in a Jupyter kernel (ZMQ shell) where ipywidgets can be imported."""
    shell_mod = sys.modules.get("IPython")
    if shell_mod is None:
        return False
    shell = shell_mod.get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # no widgets: the text view
        return False
    return True


def make_progress_view(*, widgets: bool | None = None) -> ProgressView:
    """The best view for where this runs (``widgets`` forces the choice)."""
    use = _in_widget_frontend() if widgets is None else widgets
    return RankProgressWidget() if use else TextProgress()


def _elapsed(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}" if m else f"{s:.1f} s"


_STARTING_AFTER = 1.0  # seconds without a report before "starting..." shows


class RankProgressWidget:
    """ipywidgets view, updated in place: a header, a bar per rank and the metric charts.

    It appears on the first report, or after a second without one (showing "starting…"
    while ranks import and compile), so short silent calls leave no output behind.
    """

    def __init__(self) -> None:
        self.box: Any = None
        self.header: Any = None
        self.rows: dict[int, tuple[Any, Any]] = {}
        self.plot: MetricPlot | None = None

    def _build(self, tracker: ProgressTracker) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.header = w.HTML()
        rows = []
        for rank in tracker.ranks:
            bar = w.FloatProgress(min=0.0, max=1.0, value=0.0, bar_style="info")
            bar.layout.width = "40%"
            text = w.HTML()
            self.rows[rank] = (bar, text)
            row = w.HBox([w.Label(f"rank {rank}", layout=w.Layout(width="5em")), bar, text])
            row.add_class("workbench-rank-row")
            rows.append(row)
        self.plot = MetricPlot()
        self.box = w.VBox([self.header, *rows, self.plot.widget])
        self.box.add_class("workbench-progress")
        display(self.box)

    def refresh(self, tracker: ProgressTracker) -> None:
        """Redraw from the tracker (nothing until a report, or a second has passed)."""
        if self.box is None:
            if not tracker.seen and tracker.elapsed < _STARTING_AFTER:
                return
            self._build(tracker)
        states = tracker.ranks.values()
        done = sum(s.state == "done" for s in states)
        running = any(s.state == "running" for s in states)
        waiting = " &middot; starting… (imports, compiling)" if running and not tracker.seen else ""
        self.header.value = (
            f"<b>workbench</b> &middot; elapsed {_elapsed(tracker.elapsed)}"
            f" &middot; {done}/{len(tracker.ranks)} ranks done{waiting}"
        )
        for rank, state in tracker.ranks.items():
            bar, text = self.rows[rank]
            self._paint(bar, text, state)
        if self.plot is not None:
            self.plot.update({r: s.history for r, s in tracker.ranks.items()})

    @staticmethod
    def _paint(bar: Any, text: Any, state: RankProgress) -> None:
        frac = state.fraction
        if frac is None:  # unknown total: full bar once reporting, empty before
            frac = 1.0 if state.seq else 0.0
        bar.bar_style = "info" if state.state == "running" else _STYLE[state.state]
        if state.state != "running" and (state.total is None or not state.seq):
            frac = 1.0 if state.state == "done" else frac
        bar.value = frac
        if state.seq:
            label = html.escape(state.describe())
        else:
            label = "starting… (compiling)" if state.state == "running" else "no progress reported"
        if state.state != "running":
            label += f" &middot; {state.state}"
        text.value = f"<code>{label}</code>"

    def close(self, tracker: ProgressTracker) -> None:
        """Final paint from ``tracker``: bars green, red (failed) or orange (interrupted).
        A view that only ever said "starting…" (the work reported nothing) is removed."""
        if not tracker.seen:
            if self.box is not None:
                self.box.close()
                self.box = None
            return
        self.refresh(tracker)


class TextProgress:
    """Text fallback: one line with every rank, at most every ``interval`` seconds, written
    to ``stream`` (default ``sys.stdout``)."""

    def __init__(self, stream: Any = None, interval: float = 2.0) -> None:
        self.stream = stream
        self.interval = interval
        self.last = 0.0

    def _line(self, tracker: ProgressTracker) -> str:
        parts = [f"r{s.rank} {s.describe()}" for s in tracker.ranks.values() if s.seq]
        return f"[progress {_elapsed(tracker.elapsed)}] " + " | ".join(parts)

    def refresh(self, tracker: ProgressTracker) -> None:
        """Print a line from ``tracker`` when due."""
        now = time.monotonic()
        if tracker.seen and now - self.last >= self.interval:
            self.last = now
            print(self._line(tracker), file=self.stream or sys.stdout, flush=True)

    def close(self, tracker: ProgressTracker) -> None:
        """Print ``tracker``'s final line if anything was reported."""
        if tracker.seen:
            states = {s.state for s in tracker.ranks.values()}
            print(
                f"{self._line(tracker)} [{', '.join(sorted(states))}]",
                file=self.stream or sys.stdout,
                flush=True,
            )
