"""A sortable table widget: a header per column (click to sort), a row per trial.

The rows live in the widget's model and the browser draws them (anywidget front end in
``trial_table.js``), so a live update sends the rows, not HTML, and the user's chosen sort
order and scroll position survive it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["TrialTable"]

_HERE = Path(__file__).parent


class TrialTable(anywidget.AnyWidget):
    """``columns``: ``[{"key", "label", "numeric", "title"}]``; ``rows``: ``[{"id", "state",
    "title", "cells": [[text, full text, sort key], ...]}]`` in column order; ``best``: the
    id of the row shown in bold; ``caption``: a line under the table."""

    _esm = _HERE / "trial_table.js"
    _css = _HERE / "trial_table.css"
    columns: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    rows: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    best = traitlets.Int(-1).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)

    def set(self, columns: list[dict[str, Any]], rows: list[dict[str, Any]], best: int,
            caption: str) -> None:  # fmt: skip
        """Replace the table's content in one message."""
        with self.hold_sync():
            self.columns, self.rows, self.best, self.caption = columns, rows, best, caption
