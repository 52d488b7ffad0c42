"""The one module that touches ipykernel's private state: kernel subshells for live controls.

ipykernel 7 runs subshells (Jupyter enhancement proposal 91) but offers code running in the
kernel no public way to create one or to send a comm's front-end messages to one (only a
client can, through ``create_subshell_request`` on the control channel). Everything
workbench needs for that is read here, so an ipykernel upgrade that renames an attribute is
one file's work. Each function says which private name it reads; when one is gone the answer
is "no subshell" (:func:`subshell_host` gives None, :func:`pin_comm` False): the widgets then
work as on a kernel without subshells, their clicks handled between cells.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import sys
from collections.abc import Callable
from typing import Any

from workbench._timeouts import SUBSHELL

__all__ = ["SubshellHost", "pin_comm", "subshell_host", "unpin_comm"]

_log = logging.getLogger(__name__)

#: The method of ipykernel's ``BaseComm`` that the shell channel thread asks where a
#: ``comm_msg`` from the front end goes (a subshell id, or None for the main shell).
_ROUTE = "_reply_subshell_for"


class SubshellHost:
    """The running kernel's shell channel thread, where its subshells are created and deleted.

    Calls ``thread.manager._create_subshell`` and ``._delete_subshell`` (what the kernel runs
    for a client's ``create_subshell_request`` / ``delete_subshell_request``) on that thread,
    through its ``io_loop``.
    """

    def __init__(self, thread: Any) -> None:
        self._thread = thread

    def create(self) -> str | None:
        """A new subshell's id; None (logged at debug) when the kernel could not make one."""
        try:
            sid = self._on_channel_thread(self._thread.manager._create_subshell)
        except Exception:  # internals moved, or the channel thread did not answer in time
            _log.debug("no kernel subshell for live controls", exc_info=True)
            return None
        return sid if isinstance(sid, str) else None

    def delete(self, subshell_id: str) -> bool:
        """Stop and forget subshell ``subshell_id``; False (logged at debug) when that failed
        (its thread then idles until the kernel exits)."""
        manager = self._thread.manager
        try:
            self._on_channel_thread(lambda: manager._delete_subshell(subshell_id))
        except Exception:
            _log.debug("kernel subshell %s not deleted", subshell_id, exc_info=True)
            return False
        return True

    def _on_channel_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the shell channel thread (where subshells are managed); its result."""
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


def subshell_host(shell: Any = None) -> SubshellHost | None:
    """The :class:`SubshellHost` of ``shell``'s kernel (default: the running IPython), or
    None when there is no kernel or it cannot route comms to subshells.

    Reads ``kernel._supports_kernel_subshells``, ``kernel.shell_channel_thread`` with its
    ``io_loop`` and ``manager._create_subshell``, and ipykernel's
    ``BaseComm._reply_subshell_for`` (ipykernel 7.x asks a comm where its messages go).
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython else None
    kernel = getattr(shell, "kernel", None)
    thread = getattr(kernel, "shell_channel_thread", None)
    if not getattr(kernel, "_supports_kernel_subshells", False) or thread is None:
        return None
    manager = getattr(thread, "manager", None)
    if not hasattr(thread, "io_loop") or not hasattr(manager, "_create_subshell"):
        return None
    try:
        from ipykernel.comm.comm import BaseComm
    except ImportError:
        return None
    return SubshellHost(thread) if hasattr(BaseComm, _ROUTE) else None


def pin_comm(comm: Any, subshell_id: str) -> bool:
    """Have the kernel hand the front end's messages for ``comm`` to ``subshell_id``; False
    (nothing changed) when ``comm`` is not a comm ipykernel asks for a route.

    Overrides ``comm._reply_subshell_for`` on this instance: without it, ipykernel follows
    the thread that last sent on the comm (the main one, while a cell updates the widget).
    """
    if not callable(getattr(comm, _ROUTE, None)):
        return False
    setattr(comm, _ROUTE, lambda _data, _default: subshell_id)
    return True


def unpin_comm(comm: Any) -> None:
    """Undo :func:`pin_comm`: the comm's messages go where ipykernel itself sends them."""
    if _ROUTE in getattr(comm, "__dict__", {}):
        delattr(comm, _ROUTE)
