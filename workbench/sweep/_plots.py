"""``result.plot()``: the common views of a sweep as inline SVG, with no plotting library.

The charts are drawn by :func:`workbench.widgets.metric_plot.svg_chart` (the live views'
own charts): each finished trial's value with the best so far, each searched parameter
against the metric, the learning curves coloured by final state, and the Pareto front of
the first two objectives of a multi-objective sweep.
"""

from __future__ import annotations

import math
from typing import Any

from workbench.sweep._space import Choice, LogUniform
from workbench.trials import finished
from workbench.widgets.metric_plot import Series, svg_chart
from workbench.widgets.sweep_table import best_so_far, pareto_chart

__all__ = ["STATE_COLORS", "sweep_plots"]

STATE_COLORS = {"done": "#2ca02c", "pruned": "#ff7f0e", "failed": "#d62728"}
_MAX_PARAMS = 8  # parameter charts drawn, in space order


def _history(result: Any, name: str) -> str:
    done = finished(result.trials)
    if not done:
        return ""
    dots = Series(
        "finished trial",
        [(float(n), float(t.value or 0.0)) for n, t in enumerate(done, 1)],
        style="points",
        titles=[f"trial {t.id}: {name} {t.value:.4g}" for t in done],
    )
    best = Series(f"best {name}", best_so_far(done, result.mode), style="step", color="#2ca02c")
    return svg_chart(f"{name} of each finished trial", [dots, best], x_label="trials finished")


def _varying(result: Any) -> list[str]:
    if result.domains:
        return list(result.domains)
    names: list[str] = []
    for t in result.trials:
        names += [k for k in t.config if k not in names]
    return [k for k in names if len({repr(t.config.get(k)) for t in result.trials}) > 1]


def _parameter(result: Any, param: str, name: str) -> str:
    done = sorted(finished(result.trials), key=lambda t: t.id)
    values: list[Any] = [t.config.get(param) for t in done]
    if not done:
        return ""
    domain = result.domains.get(param)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if isinstance(domain, Choice) or not numeric:
        options = list(domain.options) if isinstance(domain, Choice) else []
        options += [v for v in dict.fromkeys(values) if v not in options]
        xs = [float(options.index(v)) for v in values]
        x_label = ", ".join(f"{i} {o}" for i, o in enumerate(options))
        x_label = f"{param}: {x_label}" if len(x_label) < 40 else f"{param} (option index)"
    elif isinstance(domain, LogUniform):
        xs, x_label = [math.log10(v) for v in values], f"log10 {param}"
    else:
        xs, x_label = [float(v) for v in values], param
    dots = Series(
        "finished trial",
        [(x, float(t.value or 0.0)) for x, t in zip(xs, done, strict=True)],
        style="points",
        titles=[
            f"trial {t.id}: {param}={v!r}, {name} {t.value:.4g}"
            for t, v in zip(done, values, strict=True)
        ],
    )
    return svg_chart(f"{name} against {param}", [dots], x_label=x_label, legend=False)


def _curves(result: Any, name: str) -> str:
    lines = []
    for t in result.trials:
        state = str(t.state)
        curve = result.curves.get(t.id)
        if curve and state in STATE_COLORS:
            lines.append(Series(f"trial {t.id} ({state})", curve, color=STATE_COLORS[state]))
    if sum(len(s.points) for s in lines) < 2:
        return ""
    key = ", ".join(f"{c} {s}" for s, c in
                    (("done", "green"), ("pruned", "orange"), ("failed", "red")))  # fmt: skip
    return svg_chart(f"{name} by step ({key})", lines, legend=False)


def sweep_plots(result: Any) -> Any:
    """See :meth:`SweepResult.plot`."""
    from IPython.display import HTML

    name = result.metric or "value"
    charts = [_history(result, name)]
    if result.metrics and len(result.metrics) >= 2:
        charts.insert(0, pareto_chart(result.trials, result.metrics))
    charts += [_parameter(result, p, name) for p in _varying(result)[:_MAX_PARAMS]]
    charts.append(_curves(result, name))
    body = "".join(c for c in charts if c)
    if not body:
        body = f"<i>sweep {result.name!r}: no finished trial to plot yet</i>"
    return HTML(f'<div class="workbench-sweep-plots">{body}</div>')
