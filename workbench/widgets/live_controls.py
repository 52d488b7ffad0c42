"""Widget controls that act while the cell that shows them is still running.

A kernel handles one request at a time on its main thread, so a click on a widget waits
behind the running cell: a Stop button under a blocking ``wb.sweep()`` would only act once
the sweep is over. ipykernel 7 runs *subshells* (Jupyter enhancement proposal 91): threads
with their own message loop. Routing a control's comm to a subshell of its own gets its
clicks handled at once, on that thread, while the cell blocks. Callbacks therefore run off
the main thread: they should only set a flag or put a request on a queue.

On a kernel without subshells nothing is routed (``live`` is False): the controls act when
the cell ends, and the caller says so to the user.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Any

from workbench._timeouts import SUBSHELL

__all__ = ["LiveControls"]

_log = logging.getLogger(__name__)


class LiveControls:
    """A subshell of the running kernel for some widgets' comms; :meth:`close` removes it."""

    def __init__(self) -> None:
        self._thread = _shell_channel_thread()
        self.subshell_id: str | None = None
        self._comms: list[Any] = []
        if self._thread is not None:
            try:
                self.subshell_id = self._on_channel_thread(self._thread.manager._create_subshell)
            except Exception:  # an ipykernel whose internals moved: controls act late
                _log.debug("no kernel subshell for live controls", exc_info=True)
                self._thread = None

    @property
    def live(self) -> bool:
        """True when routed controls act while the cell is still running."""
        return self.subshell_id is not None

    def route(self, *widgets: Any) -> None:
        """Have the messages the front end sends to ``widgets`` handled on the subshell."""
        if self.subshell_id is None:
            return
        sid = self.subshell_id
        for widget in widgets:
            comm = getattr(widget, "comm", None)
            if comm is not None:
                # ipykernel asks the comm where its front-end messages go (and would otherwise
                # follow the thread that last sent on it, the main one): pin the subshell.
                comm._reply_subshell_for = lambda _data, _default, sid=sid: sid
                self._comms.append(comm)

    def close(self) -> None:
        """Remove the subshell (the routed controls then act only between cells)."""
        sid, self.subshell_id = self.subshell_id, None
        for comm in self._comms:  # back to the main shell, before the subshell goes
            with contextlib.suppress(AttributeError):
                del comm._reply_subshell_for
        self._comms.clear()
        if sid is not None and self._thread is not None:
            with contextlib.suppress(Exception):
                self._on_channel_thread(lambda: self._thread.manager._delete_subshell(sid))

    def _on_channel_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the kernel's shell channel thread (where subshells are managed)."""
        done: cf.Future[Any] = cf.Future()

        def call() -> None:
            if not done.set_running_or_notify_cancel():
                return  # the caller gave up waiting: do nothing it would not know of
            try:
                done.set_result(fn())
            except BaseException as e:  # handed back to the caller
                done.set_exception(e)

        self._thread.io_loop.add_callback(call)
        try:
            return done.result(timeout=SUBSHELL)
        except cf.TimeoutError:
            if done.cancel():
                raise
            return done.result(timeout=SUBSHELL)  # it started just now: it ends soon


def _shell_channel_thread() -> Any:
    """The running kernel's shell channel thread when it supports subshells, else None."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    kernel = getattr(shell, "kernel", None)
    thread = getattr(kernel, "shell_channel_thread", None)
    if not getattr(kernel, "_supports_kernel_subshells", False) or thread is None:
        return None
    if not hasattr(thread, "io_loop") or not hasattr(thread.manager, "_create_subshell"):
        return None
    try:  # the kernel asks a comm where its messages go (ipykernel 7.x): needed for routing
        from ipykernel.comm.comm import BaseComm
    except ImportError:
        return None
    return thread if hasattr(BaseComm, "_reply_subshell_for") else None
