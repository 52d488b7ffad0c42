"""What a person sees while a pool starts: a line saying what is launched, then the engines
registering (or a Slurm job queueing) as it happens.

In a Jupyter kernel the changing line is one output updated in place (an IPython display
handle); in a terminal or a plain script each change is a new line, without ``\\r`` tricks.
Nothing is shown with ``show=False``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["StartFeedback"]


def _in_kernel() -> bool:
    """True in a Jupyter kernel, where output can be updated in place."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


class StartFeedback:
    """Lines for one pool start, each prefixed ``workbench:``.

    :meth:`say` prints a line that stays; :meth:`state` shows the current state (``"1/2
    engines registered"``), only when it changed: in a notebook by updating one output, else
    as a new line.
    """

    def __init__(self, *, show: bool = True, in_place: bool | None = None) -> None:
        self.show = show
        self.in_place = _in_kernel() if in_place is None else in_place
        self._last: str | None = None
        self._handle: Any = None

    def say(self, text: str) -> None:
        """Print ``text`` as a line of its own."""
        if self.show:
            print(f"workbench: {text}", flush=True)

    def state(self, text: str) -> None:
        """Show ``text`` as the current state, if it differs from the last one shown."""
        if not self.show or text == self._last:
            return
        self._last = text
        line = f"workbench: {text}"
        if not self.in_place:
            print(line, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": line}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
