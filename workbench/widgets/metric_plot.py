"""Live charts of reported metrics, drawn as inline SVG (no plotting library needed).

One small chart per metric, one line per rank with a legend; a metric that falls over more
than two decades (a loss) gets a log scale, and counters (epoch, step: whole numbers that
only grow) get no chart unless asked for with :func:`chart_counters`. The widget's value is
replaced in place, so a long run never prints more output.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MetricPlot", "Series", "chart_counters", "is_counter", "svg_chart"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_W, _PAD_L, _PAD_R = 340, 44, 8
_PLOT_H = 110  # height of the plotting area
_MAX_POINTS = 400  # per line, after thinning
_MAX_METRICS = 4
_LOG_SPAN = 100.0  # max/min above which a positive metric is drawn on a log scale

_charted_counters: set[str] = set()


def chart_counters(*names: str) -> None:
    """Chart the metrics ``names`` even though they only count up (``epoch``, ``step``...).

    By default the live rank charts leave out such counters: their value is already in each
    rank's progress line. ``chart_counters()`` with no names goes back to that default.
    """
    _charted_counters.clear()
    _charted_counters.update(names)


@dataclass
class Series:
    """One thing drawn in a chart: ``points`` as a line, a step line or dots, named ``label``
    in the legend; ``titles`` (one per point) show on hover over dots."""

    label: str
    points: list[tuple[float, float]]
    style: Literal["line", "step", "points"] = "line"
    color: str | None = None
    titles: list[str] = field(default_factory=list)


def is_counter(values: Iterable[Sequence[float]]) -> bool:
    """True if every sequence in ``values`` holds whole numbers that never decrease."""
    seen = False
    for seq in values:
        for a, b in itertools.pairwise(seq):
            if b < a:
                return False
        for v in seq:
            if not (math.isfinite(v) and v == int(v)):
                return False
            seen = True
    return seen


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= _MAX_POINTS:
        return points
    stride = math.ceil(len(points) / _MAX_POINTS)
    return [*points[::stride], points[-1]]


def _nice(v: float) -> str:
    return f"{v:.3g}"


def _legend(series: list[Series], colors: list[str], y: float) -> tuple[str, int]:
    """The legend's SVG from ``y`` down, wrapped to the chart's width (at most two lines,
    then "+N more"), and the number of lines it takes."""
    parts, x, line = [], _PAD_L, 0
    for i, (s, color) in enumerate(zip(series, colors, strict=True)):
        width = 18 + 6 * len(s.label)
        if x + width > _W - _PAD_R and x > _PAD_L:
            if line == 1:
                parts.append(f'<text x="{x}" y="{y + 12 * line}">+{len(series) - i} more</text>')
                break
            x, line = _PAD_L, line + 1
        ly = y + 12 * line
        mark = (
            f'<circle cx="{x + 4}" cy="{ly - 3}" r="3" fill="{color}"/>'
            if s.style == "points"
            else f'<line x1="{x}" y1="{ly - 3}" x2="{x + 10}" y2="{ly - 3}" stroke="{color}" '
            'stroke-width="2"/>'
        )
        parts.append(f'<g class="workbench-legend-item">{mark}'
                     f'<text x="{x + 13}" y="{ly}">{html.escape(s.label)}</text></g>')  # fmt: skip
        x += width
    return '<g class="workbench-legend">' + "".join(parts) + "</g>", line + 1


def _as_series(lines: dict[int, list[tuple[float, float]]] | list[Series]) -> list[Series]:
    if isinstance(lines, dict):
        return [Series(f"rank {rank}", pts) for rank, pts in sorted(lines.items())]
    return lines


def svg_chart(
    name: str,
    lines: dict[int, list[tuple[float, float]]] | list[Series],
    *,
    x_label: str = "step",
    log: bool | None = None,
    legend: bool = True,
) -> str:
    """An SVG chart titled ``name`` of ``lines``: rank -> ``[(step, value)]`` (a line per
    rank, labelled "rank r") or a list of :class:`Series`. ``x_label`` names the x axis;
    ``log`` forces the y scale (None: log when positive values span over two decades)."""
    series = _as_series(lines)
    pts = [p for s in series for p in s.points if math.isfinite(p[1])]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if log is None:
        log = y0 > 0 and y1 / y0 > _LOG_SPAN
    log = log and y0 > 0

    def ty(y: float) -> float:
        return math.log10(y) if log else y

    ty0, ty1 = ty(y0), ty(y1)
    x1, ty1 = (x1 if x1 > x0 else x0 + 1), (ty1 if ty1 > ty0 else ty0 + 1)
    colors = [s.color or _COLORS[i % len(_COLORS)] for i, s in enumerate(series)]
    key, lines_used = _legend(series, colors, 26) if legend else ("", 0)
    top = 18 + 12 * lines_used + (2 if legend else 0)
    height = top + _PLOT_H + 16

    def sx(x: float) -> float:
        return _PAD_L + (x - x0) / (x1 - x0) * (_W - _PAD_L - _PAD_R)

    def sy(y: float) -> float:
        return top + _PLOT_H - (ty(y) - ty0) / (ty1 - ty0) * _PLOT_H

    body = []
    for s, color in zip(series, colors, strict=True):
        good = [p for p in _thin(s.points) if math.isfinite(p[1]) and (p[1] > 0 or not log)]
        if not good:
            continue
        label = html.escape(s.label)
        if s.style == "points":
            titles = s.titles or [f"{s.label}: {_nice(y)}" for _, y in good]
            body += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}" '
                f'fill-opacity="0.6"><title>{html.escape(t)}</title></circle>'
                for (x, y), t in zip(good, titles, strict=False)
            ]
            continue
        if s.style == "step":  # horizontal, then vertical: the value holds until the next
            good = [q for a, b in itertools.pairwise(good)
                    for q in (a, (b[0], a[1]))] + [good[-1]]  # fmt: skip
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}">'
            f"<title>{label}</title></polyline>"
        )
    title = html.escape(name) + (" (log scale)" if log else "")
    return (
        f'<svg class="workbench-plot" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" xmlns="http://www.w3.org/2000/svg" '
        f'style="font: 10px sans-serif; fill: var(--jp-ui-font-color1, #333)">'
        f'<text x="{_PAD_L}" y="11" font-weight="bold">{title}</text>'
        + key
        + f'<text x="{_PAD_L - 3}" y="{sy(y1) + 3:.0f}" text-anchor="end">{_nice(y1)}</text>'
        f'<text x="{_PAD_L - 3}" y="{sy(y0) + 3:.0f}" text-anchor="end">{_nice(y0)}</text>'
        f'<text x="{_PAD_L}" y="{height - 3}">{x0:g}</text>'
        f'<text x="{_W - _PAD_R}" y="{height - 3}" text-anchor="end">'
        f"{html.escape(x_label)} {x1:g}</text>"
        f'<rect x="{_PAD_L}" y="{top}" width="{_W - _PAD_L - _PAD_R}" height="{_PLOT_H}" '
        f'fill="none" stroke="#ccc"/>' + "".join(body) + "</svg>"
    )


class MetricPlot:
    """Charts of the numeric metrics in the ranks' histories, in one HTML widget."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.widget = w.HTML()
        self.widget.add_class("workbench-metric-plot")
        self.drawn: tuple[Any, ...] = ()

    def update(self, histories: dict[int, list[tuple[float, dict[str, float]]]]) -> bool:
        """Redraw if any rank's history in ``histories`` (rank -> ``[(step, metrics)]``)
        grew; True if the widget changed."""
        sizes = tuple((len(h), h[-1][0] if h else None) for h in histories.values())
        if sizes == self.drawn:
            return False
        self.drawn = sizes
        names: list[str] = []
        for hist in histories.values():
            for _, metrics in hist:
                names += [k for k in metrics if k not in names]
        charts = []
        for name in names:
            lines = {
                rank: [(s, m[name]) for s, m in hist if name in m]
                for rank, hist in histories.items()
            }
            if name not in _charted_counters and is_counter(
                [y for _, y in pts] for pts in lines.values()
            ):
                continue
            if sum(len(v) for v in lines.values()) >= 2:
                charts.append(svg_chart(name, lines))
            if len(charts) == _MAX_METRICS:
                break
        self.widget.value = "".join(charts)
        return True

    @property
    def value(self) -> Any:
        """The HTML currently shown."""
        return self.widget.value
