"""Notebook views of the progress channel (ipywidgets, with a text fallback)."""

from workbench.widgets.rank_progress import (
    ProgressView,
    RankProgressWidget,
    TextProgress,
    make_progress_view,
)

__all__ = ["ProgressView", "RankProgressWidget", "TextProgress", "make_progress_view"]
