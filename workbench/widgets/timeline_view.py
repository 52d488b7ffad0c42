"""A zoomable timeline: a row per rank (and per thread of it), spans as boxes.

The spans live in the widget's model as flat numbers and the browser draws them on a canvas
(anywidget front end in ``timeline_view.js``): the wheel zooms around the pointer, a drag
pans, a double click shows everything again, hovering a span tells its name, rank, duration
and details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["TimelineView"]

_HERE = Path(__file__).parent


class TimelineView(anywidget.AnyWidget):
    """``rows``: ``[{"label", "lanes"}]`` top to bottom; ``spans``: flat
    ``[row, start us, duration us, name index, lane, detail index]`` six numbers per span
    (detail index -1: none); ``names`` and ``details``: the texts they index;
    ``caption``: a line under the timeline."""

    _esm = _HERE / "timeline_view.js"
    _css = _HERE / "timeline_view.css"
    rows: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    spans: traitlets.List[float] = traitlets.List().tag(sync=True)
    names: traitlets.List[str] = traitlets.List().tag(sync=True)
    details: traitlets.List[str] = traitlets.List().tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
