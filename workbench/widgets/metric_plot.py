"""A live line plot of reported metrics, drawn as inline SVG (no plotting library needed).

One small chart per metric, one line per rank; the widget's value is replaced in place,
so a long run never prints more output.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["MetricPlot", "svg_chart"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_W, _H, _PAD = 320, 140, 34
_MAX_POINTS = 400  # per line, after thinning
_MAX_METRICS = 4


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= _MAX_POINTS:
        return points
    stride = math.ceil(len(points) / _MAX_POINTS)
    return [*points[::stride], points[-1]]


def svg_chart(name: str, lines: dict[int, list[tuple[float, float]]]) -> str:
    """An SVG line chart of ``lines`` (rank -> [(step, value)]) titled ``name``."""
    pts = [p for line in lines.values() for p in line if math.isfinite(p[1])]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(x: float) -> float:
        return _PAD + (x - x0) / (x1 - x0) * (_W - _PAD - 6)

    def sy(y: float) -> float:
        return _H - 18 - (y - y0) / (y1 - y0) * (_H - 36)

    body = []
    for i, (rank, line) in enumerate(sorted(lines.items())):
        good = [p for p in _thin(line) if math.isfinite(p[1])]
        if not good:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        color = _COLORS[i % len(_COLORS)]
        body.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}">'
            f"<title>rank {rank}</title></polyline>"
        )
    title = html.escape(name)
    return (
        f'<svg class="workbench-plot" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'xmlns="http://www.w3.org/2000/svg" style="font: 10px sans-serif">'
        f'<text x="{_PAD}" y="11" font-weight="bold">{title}</text>'
        f'<text x="2" y="{sy(y1) + 3:.0f}">{y1:.3g}</text>'
        f'<text x="2" y="{sy(y0) + 3:.0f}">{y0:.3g}</text>'
        f'<text x="{_PAD}" y="{_H - 4}">{x0:g}</text>'
        f'<text x="{_W - 6}" y="{_H - 4}" text-anchor="end">step {x1:g}</text>'
        f'<rect x="{_PAD}" y="{sy(y1):.1f}" width="{_W - _PAD - 6}" height="{sy(y0) - sy(y1):.1f}" '
        f'fill="none" stroke="#ccc"/>' + "".join(body) + "</svg>"
    )


class MetricPlot:
    """Charts of every numeric metric in the ranks' histories, in one HTML widget."""

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
        for name in names[:_MAX_METRICS]:
            lines = {
                rank: [(s, m[name]) for s, m in hist if name in m]
                for rank, hist in histories.items()
            }
            if sum(len(v) for v in lines.values()) >= 2:
                charts.append(svg_chart(name, lines))
        self.widget.value = "".join(charts)
        return True

    @property
    def value(self) -> Any:
        """The HTML currently shown."""
        return self.widget.value
