"""Notebook views of the progress channel and of sweeps (ipywidgets, with a text fallback)."""

from workbench.widgets.metric_plot import MetricPlot, chart_counters, svg_chart
from workbench.widgets.rank_progress import (
    ProgressView,
    RankProgressWidget,
    TextProgress,
    make_progress_view,
)
from workbench.widgets.sweep_table import SweepWidget, TextSweepView, make_sweep_view

__all__ = [
    "MetricPlot",
    "ProgressView",
    "RankProgressWidget",
    "SweepWidget",
    "TextProgress",
    "TextSweepView",
    "chart_counters",
    "make_progress_view",
    "make_sweep_view",
    "svg_chart",
]
