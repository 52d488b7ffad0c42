"""Asynchronous allreduce in thread teams.

Each team name owns a duplicate of the communicator and one worker thread that
processes its submissions in FIFO order, so two teams (say gradients of two model
parts) aggregate concurrently while the caller keeps computing. Every rank must
submit the same sequence of calls to a team.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Callable
from typing import Any

from mpi4py import MPI

from workbench import _timeouts
from workbench.comm._checks import comm_state
from workbench.comm._topology import topology
from workbench.errors import AllreduceTimeoutError, InvalidValueError, SetupError

__all__ = ["AllreduceHandle", "is_team_comm", "require_thread_multiple", "submit", "team_comm"]

# Handles of the teams' communicators. Creating communicators or RMA windows from several
# threads at once can deadlock MPI's context-id agreement across ranks (seen with MPICH:
# one rank's team "a" waits for the other's while that one holds the id mask for team "b"),
# so everything a team needs is created on the caller's thread, in program order, and
# ``auto`` never picks a window-based algorithm on a team communicator.
_team_handles: set[int] = set()


def is_team_comm(comm: Any) -> bool:
    """True when ``comm`` is a communicator owned by an ``allreduce_async`` team."""
    return comm.handle in _team_handles


_LEVELS = {
    MPI.THREAD_SINGLE: "THREAD_SINGLE",
    MPI.THREAD_FUNNELED: "THREAD_FUNNELED",
    MPI.THREAD_SERIALIZED: "THREAD_SERIALIZED",
    MPI.THREAD_MULTIPLE: "THREAD_MULTIPLE",
}


class AllreduceHandle:
    """The pending result of :func:`allreduce_async` submitted to team ``team``."""

    def __init__(self, team: str) -> None:
        self.team = team
        self._event = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """True once the reduction finished (successfully or not)."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """The result; re-raises the worker's exception; TimeoutError after ``timeout`` s."""
        if not self._event.wait(timeout):
            raise AllreduceTimeoutError(
                f"allreduce_async on team {self.team!r} has not finished after {timeout}s; "
                "call wait() again, or check that every rank submitted the same calls"
            )
        if self._error is not None:
            raise self._error
        return self._result

    def _finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._event.set()


class _Team:
    def __init__(self, name: str, base: Any) -> None:
        self.name = name
        self.comm = base.Dup()  # collective over base: every rank creates the team together
        self.comm.Set_name(f"workbench team {name!r}")
        _team_handles.add(self.comm.handle)
        # the check's side communicator and the node topology, made here, not in the thread
        comm_state(self.comm)
        topology(self.comm)
        self.jobs: queue.SimpleQueue[tuple[AllreduceHandle, Callable[[Any], Any]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(
            target=self._work, name=f"workbench-allreduce-{name}", daemon=True
        )
        self.thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            handle, fn = job
            try:
                handle._finish(fn(self.comm))
            except BaseException as exc:
                handle._finish(error=exc)

    def stop(self, timeout: float) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)


_lock = threading.Lock()
_teams: dict[tuple[str, int], _Team] = {}


def require_thread_multiple() -> None:
    """RuntimeError unless MPI runs with ``MPI_THREAD_MULTIPLE``."""
    level = MPI.Query_thread()
    if level != MPI.THREAD_MULTIPLE:
        raise SetupError(
            "allreduce_async runs each team in its own thread and needs MPI initialised with "
            f"THREAD_MULTIPLE, but this process has {_LEVELS.get(level, level)}. Leave "
            "mpi4py.rc.thread_level at its default 'multiple' (set it before importing "
            "mpi4py.MPI) and use an MPI library built with thread support"
        )


def team_comm(team: str, base: Any) -> _Team:
    """The team ``team`` on ``base`` (created, collectively, on first use)."""
    if not isinstance(team, str) or not team:
        raise InvalidValueError(f"team must be a non-empty string, not {team!r}")
    key = (team, base.handle)
    with _lock:
        t = _teams.get(key)
        if t is None:
            t = _teams[key] = _Team(team, base)
    return t


def submit(team: str, base: Any, fn: Callable[[Any], Any]) -> AllreduceHandle:
    """Queue ``fn(team_comm)`` on team ``team`` of communicator ``base``; returns its handle."""
    require_thread_multiple()
    t = team_comm(team, base)
    handle = AllreduceHandle(team)
    t.jobs.put((handle, fn))
    return handle


def _stop_all(timeout: float = _timeouts.EXIT_CLEANUP) -> None:
    """At exit: end every team's thread, waiting at most ``timeout`` s for each."""
    with _lock:
        teams = list(_teams.values())
        _teams.clear()
    for t in teams:
        t.stop(timeout)


atexit.register(_stop_all)
