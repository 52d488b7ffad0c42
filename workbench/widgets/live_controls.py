"""Widget controls that act while the cell that shows them is still running.

A kernel handles one request at a time on its main thread, so a click on a widget waits
behind the running cell: a Stop button under a blocking ``wb.sweep()`` would only act once
the sweep is over. ipykernel 7 runs *subshells* (Jupyter enhancement proposal 91): threads
with their own message loop. Routing a control's comm to a subshell of its own gets its
clicks handled at once, on that thread, while the cell blocks. Callbacks therefore run off
the main thread: they should only set a flag or put a request on a queue.

On a kernel without subshells nothing is routed (``live`` is False): the controls act when
the cell ends, and the caller says so to the user. What this needs of ipykernel's internals
is in :mod:`workbench.widgets._ipykernel`.
"""

from __future__ import annotations

from typing import Any

from workbench.widgets._ipykernel import pin_comm, subshell_host, unpin_comm

__all__ = ["LiveControls"]


class LiveControls:
    """A subshell of the running kernel for some widgets' comms; :meth:`close` removes it.

    ``shell`` is the IPython shell whose kernel is used (default: the running one).
    """

    def __init__(self, shell: Any = None) -> None:
        self._host = subshell_host(shell)
        self.subshell_id = None if self._host is None else self._host.create()
        self._comms: list[Any] = []

    @property
    def live(self) -> bool:
        """True when routed controls act while the cell is still running."""
        return self.subshell_id is not None

    def route(self, *widgets: Any) -> None:
        """Have the messages the front end sends to ``widgets`` handled on the subshell."""
        if self.subshell_id is None:
            return
        for widget in widgets:
            comm = getattr(widget, "comm", None)  # None once a widget is closed
            if comm is not None and pin_comm(comm, self.subshell_id):
                self._comms.append(comm)

    def close(self) -> None:
        """Remove the subshell (the routed controls then act only between cells)."""
        sid, self.subshell_id = self.subshell_id, None
        for comm in self._comms:  # back to the main shell, before the subshell goes
            unpin_comm(comm)
        self._comms.clear()
        if sid is not None and self._host is not None:
            self._host.delete(sid)
