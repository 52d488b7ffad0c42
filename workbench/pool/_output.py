"""What the ranks print, shown in the notebook process.

Each whole line a rank writes to stdout or stderr is shown as ``[rank r] line``:

* in a terminal, a script or a plain IPython shell, printed as it arrives, to this
  process's stdout or stderr (lines of different ranks interleave as they come);
* in a notebook front end (a Jupyter kernel), shown in one display updated in place at
  most every :data:`LIVE_INTERVAL` seconds (the last :data:`LIVE_LINES` lines while the work
  runs) and, when the work ends, replaced by the whole output grouped by rank in rank order,
  stderr lines marked.

Rich outputs of the ranks (``display(fig)``) are published as they arrive, in both cases.
"""

from __future__ import annotations

import html
import itertools
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

__all__ = [
    "LIVE_INTERVAL",
    "LIVE_LINES",
    "DisplayedLines",
    "Line",
    "PrintedLines",
    "RankOutput",
    "in_notebook",
    "render",
]

LIVE_INTERVAL = 0.2  # seconds between updates of the live display
LIVE_LINES = 200  # lines the live display re-sends; the rest are counted
_STREAMS = ("stdout", "stderr")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Like JupyterLab's own stream outputs: no margin, code font size, stderr on its error colour.
_PRE_STYLE = "margin: 0; padding-left: 1ch; font-size: var(--jp-code-font-size)"
_STDERR_STYLE = "background-color: var(--jp-rendermime-error-background, #fdd)"


class Line(NamedTuple):
    """One whole line a rank wrote to ``stream`` (``"stdout"`` or ``"stderr"``)."""

    rank: int
    stream: str
    text: str

    def labelled(self) -> str:
        """The line as shown: ``[rank r] text``."""
        return f"[rank {self.rank}] {self.text}"


def in_notebook() -> bool:
    """True in a Jupyter kernel (a ZMQ shell), where a display can be updated in place."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and any(
        cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__
    )


class LineSink(Protocol):
    """Where :class:`RankOutput` sends the lines."""

    def add(self, lines: list[Line], *, final: bool) -> None:
        """Show ``lines`` (new since the last call); ``final`` once, when the work ended."""
        ...


class PrintedLines:
    """Print each line as it arrives, to this process's stdout or stderr."""

    def add(self, lines: list[Line], *, final: bool) -> None:
        """Write ``lines`` now, consecutive lines of one rank and stream in one write."""
        for (_, name), run in itertools.groupby(lines, key=lambda x: (x.rank, x.stream)):
            stream = sys.stdout if name == "stdout" else sys.stderr
            stream.write("".join(f"{line.labelled()}\n" for line in run))
            stream.flush()


def render(lines: Sequence[Line], *, skipped: int = 0) -> dict[str, str]:
    """A display bundle of ``lines``: text/plain, and text/html with stderr lines marked.

    ``skipped`` earlier lines are counted in a first line instead of shown.
    """
    head = [f"… {skipped} earlier line{'s' if skipped != 1 else ''}"] if skipped else []
    plain = "\n".join([*head, *(line.labelled() for line in lines)])
    rows = [html.escape(h) for h in head]
    for line in lines:
        text = html.escape(_ANSI.sub("", line.labelled()))
        if line.stream == "stderr":
            text = f'<span class="workbench-stderr" style="{_STDERR_STYLE}">{text}</span>'
        rows.append(text)
    body = "\n".join(rows)
    pre = f'<pre class="workbench-rank-output" style="{_PRE_STYLE}">{body}</pre>'
    return {"text/plain": plain, "text/html": pre}


class DisplayedLines:
    """One display updated in place: the latest lines live (in arrival order), then the
    whole output grouped by rank in rank order (each rank's lines in their own order).
    ``interval``: seconds between live updates, by ``clock`` (default ``time.monotonic``)."""

    def __init__(
        self,
        *,
        interval: float = LIVE_INTERVAL,
        live_lines: int = LIVE_LINES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.live_lines = live_lines
        self.lines: list[Line] = []
        self.handle: Any = None
        self.shown = 0  # how many of self.lines the live display has shown
        self.last = 0.0  # clock() at the last live update

    def add(self, lines: list[Line], *, final: bool) -> None:
        """Keep ``lines``; update the display if it is due (always when ``final``)."""
        self.lines += lines
        if final:
            if self.lines:
                self._show(render(sorted(self.lines, key=lambda x: x.rank)))
            return
        now = self.clock()
        if len(self.lines) == self.shown or (
            self.handle is not None and now - self.last < self.interval
        ):
            return
        tail = self.lines[-self.live_lines :]
        self._show(render(tail, skipped=len(self.lines) - len(tail)))
        self.shown, self.last = len(self.lines), now

    def _show(self, bundle: dict[str, str]) -> None:
        from IPython.display import display

        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


class RankOutput:
    """Cut each rank's stdout and stderr into whole lines for a :class:`LineSink`, and publish
    the ranks' rich outputs.

    ``notebook`` chooses the sink: :class:`DisplayedLines` when true, :class:`PrintedLines`
    when false, by :func:`in_notebook` when None.
    """

    def __init__(self, ranks: list[int], *, notebook: bool | None = None) -> None:
        self.ranks = ranks
        self.offsets = {(r, n): 0 for r in ranks for n in _STREAMS}
        self.partial = {(r, n): "" for r in ranks for n in _STREAMS}
        self.outputs = dict.fromkeys(ranks, 0)
        use_display = in_notebook() if notebook is None else notebook
        self.sink: LineSink = DisplayedLines() if use_display else PrintedLines()

    def feed(self, metadata: list[dict[str, Any]], *, final: bool = False) -> None:
        """Show what is new in each rank's ``metadata`` (one per rank, in ``ranks`` order);
        ``final`` when the work ended: a last line without its newline is shown too."""
        self.sink.add(self._lines(metadata, final), final=final)
        self._displays(metadata)

    def _lines(self, metadata: list[dict[str, Any]], final: bool) -> list[Line]:
        lines: list[Line] = []
        for name in _STREAMS:
            for rank, md in zip(self.ranks, metadata, strict=False):
                key = (rank, name)
                new = (md.get(name) or "")[self.offsets[key] :]
                self.offsets[key] += len(new)
                parts = (self.partial[key] + new).split("\n")
                last = parts.pop()  # after the last newline: a partial line, or ""
                self.partial[key] = "" if final else last
                if final and last:
                    parts.append(last)
                lines += (Line(rank, name, text) for text in parts)
        return lines

    def _displays(self, metadata: list[dict[str, Any]]) -> None:
        for rank, md in zip(self.ranks, metadata, strict=False):
            outs = md.get("outputs") or []
            for content in outs[self.outputs[rank] :]:
                _publish(content)
            self.outputs[rank] = len(outs)


def _publish(content: dict[str, Any]) -> None:
    try:
        from IPython.display import publish_display_data
    except ImportError:
        return
    publish_display_data(data=content.get("data", {}), metadata=content.get("metadata", {}))
