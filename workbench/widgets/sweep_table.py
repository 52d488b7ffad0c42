"""The live sweep view: trial table, counts by state, best-so-far and learning curves, controls.

In a Jupyter kernel with ipywidgets it is one widget updated in place (never reprinted);
elsewhere a text view prints a line when the counts change (at most every few seconds) and
a table at the end. The runner calls ``update(trials, curves, final=...)`` with
:class:`~workbench.trials.Trial` records (the best one and the Pareto front are those of
:mod:`workbench.trials`, as the sweep's result picks them); the Stop button
and the stop-trial action call ``on_stop()`` / ``on_stop_trial(id)`` set by the runner.
Those run while the sweep's cell is still running, on another thread (see
:mod:`workbench.widgets.live_controls`): the runner's callbacks only set a flag or queue.
"""

from __future__ import annotations

import html
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from workbench.trials import Trial, TrialState, best, finished, front, scored
from workbench.widgets.live_controls import LiveControls
from workbench.widgets.metric_plot import Series, svg_chart
from workbench.widgets.rank_progress import _in_widget_frontend

__all__ = [
    "SweepWidget",
    "TextSweepView",
    "best_so_far",
    "make_sweep_view",
    "pareto_chart",
    "shown_rows",
]

_STATES = ("running", "queued", "pending", "done", "pruned", "failed")
_MAX_ROWS = 200  # table rows sent: running trials, the best, then the latest
_MAX_CURVES = 20  # learning curves drawn: the latest trials
_MAX_TEXT = 40  # characters of a cell shown; the whole value on hover


def _fmt(v: Any) -> str:
    return _cell(v)[0]


def _cell(v: Any) -> list[Any]:
    """``[text shown, full text, sort key]`` of a value: about 4 significant digits for
    floats (all of them on hover), strings as they are, anything else as JSON."""
    if v is None:
        return ["", "", None]
    if isinstance(v, bool):
        return [str(v), str(v), int(v)]
    if isinstance(v, int):
        return [str(v), str(v), v]
    if isinstance(v, float):
        return [f"{v:.4g}", repr(v), v if math.isfinite(v) else None]
    full = v if isinstance(v, str) else json.dumps(v, default=str)
    text = full if len(full) <= _MAX_TEXT else full[: _MAX_TEXT - 1] + "…"
    return [text, full, full]


def _param_names(rows: Sequence[Trial]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names += [k for k in r.config if k not in names]
    return names


def _numeric(rows: Sequence[Trial], param: str) -> bool:
    """True if every value ``param`` took is a number (its column is aligned right)."""
    values = [r.config.get(param) for r in rows]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in values if v is not None)  # fmt: skip


def counts(rows: Sequence[Trial]) -> dict[str, int]:
    """Trials per state, in a fixed order."""
    out = dict.fromkeys(_STATES, 0)
    for r in rows:
        state = str(r.state)
        out[state] = out.get(state, 0) + 1
    return out


def best_so_far(rows: Sequence[Trial], mode: str) -> list[tuple[float, float]]:
    """``(n finished, best value)`` after each finished trial of ``rows``, in finishing
    order; ``mode`` is ``"max"`` or ``"min"``."""
    points: list[tuple[float, float]] = []
    top: float | None = None
    for n, r in enumerate(finished(rows), 1):
        v = float(r.value or 0.0)  # finished trials have a value
        top = v if top is None else (max(top, v) if mode == "max" else min(top, v))
        points.append((float(n), top))
    return points


def shown_rows(rows: Sequence[Trial], mode: str) -> list[Trial]:
    """The rows worth a line: every running one, the five best (by ``mode``, ``"max"`` or
    ``"min"``), then the latest, by id."""
    sign = 1.0 if mode == "max" else -1.0
    running = [r for r in rows if r.state in (TrialState.RUNNING, TrialState.QUEUED)]
    five = sorted(finished(rows), key=lambda r: -sign * (r.value or 0.0))[:5]
    latest = sorted(rows, key=lambda r: -r.id)
    picked: dict[int, Trial] = {}
    for r in [*running, *five, *latest]:
        if len(picked) >= _MAX_ROWS:
            break
        picked.setdefault(r.id, r)
    return sorted(picked.values(), key=lambda r: r.id)


def pareto_chart(rows: Sequence[Trial], metrics: dict[str, str]) -> str:
    """A scatter of the first two of ``metrics`` (name -> "max"/"min") over the done
    ``rows`` (their ``values``): the Pareto front (over every metric) in colour, the
    dominated trials faded."""
    names = list(metrics)[:2]
    if len(names) < 2:
        return ""
    pairs = scored(rows, list(metrics))  # (trial, its value of each metric)
    if not pairs:
        return ""
    on_front = {t.id for t in front(rows, metrics)}
    y, x = names
    ix, iy = list(metrics).index(x), list(metrics).index(y)
    series = []
    for label, on, color in (("dominated", False, "#c7c7c7"), ("Pareto front", True, "#1f77b4")):
        picked = [(t, v) for t, v in pairs if (t.id in on_front) == on]
        titles = [
            f"trial {t.id}: "
            + ", ".join(f"{m} {_fmt(val)}" for m, val in zip(metrics, v, strict=True))
            for t, v in picked
        ]
        xy = [(v[ix], v[iy]) for _, v in picked]
        series.append(Series(label, xy, style="points", color=color, titles=titles))
    arrows = {"max": "higher is better", "min": "lower is better"}
    return svg_chart(
        f"{y} ({arrows[metrics[y]]}) against {x}: Pareto front",
        series,
        x_label=f"{x} ({arrows[metrics[x]]})",
    )


def _summary(
    rows: Sequence[Trial], metric: str | None, mode: str, metrics: dict[str, str] | None = None
) -> str:
    c = counts(rows)
    text = ", ".join(f"{n} {s}" for s, n in c.items() if n)
    if metrics and len(metrics) > 1:
        n_front = len(front(rows, metrics))
        return f"{len(rows)} trials ({text or 'none yet'}); {n_front} on the Pareto front"
    top = best(rows, mode)
    shown = f"; best {metric or 'value'} {_fmt(top.value)} (trial {top.id})" if top else ""
    return f"{len(rows)} trials ({text or 'none yet'}){shown}"


def _exploit_text(e: dict[str, Any]) -> str:
    changed = ", ".join(
        f"{k} {_fmt(e['old'].get(k))} -> {_fmt(v)}" for k, v in e["new"].items()
        if e["old"].get(k) != v
    )  # fmt: skip
    return f"copied trial {e['from']} at step {e['step']:g}: {changed or 'same config'}"


def table_content(
    rows: Sequence[Trial],
    metric: str | None,
    mode: str,
    metrics: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, str]:
    """``(columns, rows, best id, caption)`` of the trial table (see
    :class:`~workbench.widgets.trial_table.TrialTable`): id, state, one column per
    parameter, step, the metric (and every other of ``metrics``, name -> "max"/"min"),
    the best report, ranks and failures; with population-based training, ``from``: the
    trial whose checkpoint it last copied, at which step (the whole lineage in the row's
    hover title)."""
    others = [m for m in (metrics or {}) if m != metric]
    pbt = any(r.lineage for r in rows)
    params = _param_names(rows)
    name = metric or "value"
    columns: list[dict[str, Any]] = [
        {"key": "id", "label": "trial", "numeric": True},
        {"key": "state", "label": "state"},
        *({"key": f"config.{p}", "label": p, "numeric": _numeric(rows, p),
           "title": f"parameter {p}"} for p in params),
        {"key": "step", "label": "step", "numeric": True, "title": "last step reported"},
        {"key": "value", "label": name, "numeric": True,
         "title": f"{name} of the trial: what the sweep ranks trials by"},
        *({"key": f"values.{m}", "label": m, "numeric": True,
           "title": f"{m} of the trial (objective)"} for m in others),
        {"key": "best", "label": "best report", "numeric": True,
         "title": f"the trial's best {name} at any reported step"},
        {"key": "ranks", "label": "ranks"},
        {"key": "failures", "label": "fail", "numeric": True, "title": "failed attempts"},
    ]  # fmt: skip
    if pbt:
        title = "PBT: the trial whose checkpoint it copied last, @ the step copied"
        columns.append({"key": "from", "label": "from", "title": title})
    body = []
    for r in shown_rows(rows, mode):
        state = str(r.state)
        cells = [_cell(r.id), [state, state, _STATES.index(state)]]
        cells += [_cell(r.config.get(p)) for p in params]
        cells += [_cell(r.step), _cell(r.value)]
        cells += [_cell((r.values or {}).get(m)) for m in others]
        cells.append(_cell(r.best))
        cells.append(_cell(",".join(map(str, r.ranks or [])) or None))
        cells.append(_cell(r.failures or None))
        title = (r.error or "")[-400:]
        if pbt:
            lineage = r.lineage or []
            last = lineage[-1] if lineage else None
            cells.append(_cell(None if last is None else f"{last['from']}@{last['step']:g}"))
            title = "\n".join([*map(_exploit_text, lineage), title]).strip()
        body.append({"id": r.id, "state": state, "cells": cells, "title": title})
    more = len(rows) - len(body)
    caption = f"{more} more trials in result.to_pandas()" if more > 0 else ""
    top = best(rows, mode)
    return columns, body, -1 if top is None else top.id, caption


def _history_chart(rows: Sequence[Trial], metric: str | None, mode: str) -> str:
    """Each finished trial as a dot, x = its place in finishing order, with the best so far
    as a step line."""
    done = finished(rows)
    if len(done) < 2:
        return ""
    name = metric or "value"
    dots = Series(
        "finished trial",
        [(float(n), float(r.value or 0.0)) for n, r in enumerate(done, 1)],
        style="points",
        titles=[f"trial {r.id}: {name} {_fmt(r.value)}" for r in done],
    )
    line = Series(f"best {name}", best_so_far(rows, mode), style="step", color="#2ca02c")
    return svg_chart(f"{name} of each finished trial", [dots, line], x_label="trials finished")


class SweepWidget:
    """ipywidgets view of a sweep, built on the first update and then changed in place.

    ``metric`` names the objective's value (``mode``: ``"max"`` or ``"min"``); with
    ``controls`` a Stop button and a stop-trial picker are shown. ``metrics`` (name ->
    "max"/"min") are the objectives of a multi-objective sweep: their columns and the
    Pareto front are shown too.
    """

    def __init__(
        self,
        metric: str | None,
        mode: str,
        *,
        controls: bool = True,
        metrics: dict[str, str] | None = None,
    ) -> None:
        self.metric, self.mode, self.controls = metric, mode, controls
        self.metrics = dict(metrics) if metrics and len(metrics) > 1 else None
        self.on_stop: Callable[[], None] | None = None
        self.on_stop_trial: Callable[[int], None] | None = None
        self.box: Any = None
        self.best_value: float | None = None
        self.rows: list[Trial] = []  # as last shown
        self.stop_requested = False
        self.live: LiveControls | None = None
        self._lock = threading.Lock()

    def _build(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        from workbench.widgets.trial_table import TrialTable

        self.header = w.HTML()
        self.table = TrialTable()
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
        rows: Sequence[Trial],
        curves: dict[int, list[tuple[float, float]]],
        *,
        final: bool = False,
    ) -> None:
        """Redraw the table, the counts and the charts from the trials ``rows`` and
        ``curves``; ``final`` disables the controls (the sweep is over)."""
        if self.box is None:
            self._build()
        self.rows = list(rows)
        curve = best_so_far(rows, self.mode)
        self.best_value = curve[-1][1] if curve else None
        state = "finished" if final else ("stopping" if self.stop_requested else "running")
        self.header.value = f"<b>sweep</b> ({state}) &middot; " + html.escape(
            _summary(rows, self.metric, self.mode, self.metrics)
        )
        self.table.set(*table_content(rows, self.metric, self.mode, self.metrics))
        charts = [_history_chart(rows, self.metric, self.mode)]
        if self.metrics:
            charts.insert(0, pareto_chart(rows, self.metrics))
        recent = sorted(t for t, c in curves.items() if c)[-_MAX_CURVES:]
        lines = [Series(f"trial {t}", curves[t]) for t in recent]
        if sum(len(s.points) for s in lines) >= 2:
            charts.append(svg_chart(f"{self.metric or 'value'} by trial", lines))
        self.chart.value = "".join(charts)
        if self.controls:
            running = tuple((f"trial {r.id}", r.id) for r in rows if r.state == TrialState.RUNNING)
            if running != tuple(self.trial_pick.options):  # new options reset the choice
                chosen = self.trial_pick.value
                self.trial_pick.options = running
                if chosen in {i for _, i in running}:
                    self.trial_pick.value = chosen
            if final:
                with self._lock:  # grey, and saying why: an orange button looks pressable
                    self.stop_button.disabled = self.stop_trial_button.disabled = True
                    self.stop_button.button_style = ""
                    self.stop_button.description = "Stopped" if self.stop_requested else "Finished"
                self.close()

    def close(self) -> None:
        """Release the controls' subshell (the sweep is over); the widget stays shown."""
        if self.live is not None:
            self.live.close()
            self.live = None


class TextSweepView:
    """Text fallback: a line when the counts change (at most every ``interval`` s), a table last.

    ``metric``/``mode``/``metrics`` as for :class:`SweepWidget`; lines go to ``stream``
    (default stdout).
    """

    def __init__(
        self,
        metric: str | None,
        mode: str,
        *,
        stream: Any = None,
        interval: float = 2.0,
        metrics: dict[str, str] | None = None,
    ) -> None:
        self.metric, self.mode, self.stream, self.interval = metric, mode, stream, interval
        self.metrics = dict(metrics) if metrics and len(metrics) > 1 else None
        self.on_stop: Callable[[], None] | None = None
        self.on_stop_trial: Callable[[int], None] | None = None
        self.last_line = ""
        self.last_time = 0.0

    def update(
        self,
        rows: Sequence[Trial],
        curves: dict[int, list[tuple[float, float]]],
        *,
        final: bool = False,
    ) -> None:
        """Print the summary line of the trials ``rows`` when it changed and is due; the
        table when ``final`` (``curves`` are not drawn in text)."""
        out = self.stream or sys.stdout
        line = _summary(rows, self.metric, self.mode, self.metrics)
        now = time.monotonic()
        if final or (line != self.last_line and now - self.last_time >= self.interval):
            self.last_line, self.last_time = line, now
            print(f"[sweep] {line}", file=out, flush=True)
        if final:
            columns, body, _, caption = table_content(rows, self.metric, self.mode, self.metrics)
            keep = [i for i, c in enumerate(columns) if c["key"] not in ("ranks", "failures")]
            table = [[columns[i]["label"] for i in keep]]
            table += [[row["cells"][i][0] for i in keep] for row in body]
            widths = [max(len(texts[i]) for texts in table) for i in range(len(keep))]
            for texts in table:
                cells = [
                    v.rjust(w) if columns[i].get("numeric") else v.ljust(w)
                    for i, v, w in zip(keep, texts, widths, strict=True)
                ]
                print("  ".join(cells).rstrip(), file=out)
            if caption:
                print(caption, file=out)
            out.flush()


def make_sweep_view(
    metric: str | None,
    mode: str,
    *,
    widgets: bool | None = None,
    controls: bool = True,
    metrics: dict[str, str] | None = None,
) -> SweepWidget | TextSweepView:
    """A widget in a notebook front end (or when ``widgets=True``), text otherwise, showing
    ``metric`` (best by ``mode``) and, for a multi-objective sweep, every one of
    ``metrics`` with the Pareto front; ``controls`` adds the widget's stop buttons."""
    use = _in_widget_frontend() if widgets is None else widgets
    if use:
        return SweepWidget(metric, mode, controls=controls, metrics=metrics)
    return TextSweepView(metric, mode, metrics=metrics)
