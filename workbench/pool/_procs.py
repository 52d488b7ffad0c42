"""Processes of a pool on this machine: alive or not, their memory, waiting for them to exit."""

from __future__ import annotations

import contextlib
import socket

import psutil

from workbench.pool._status import EngineInfo

__all__ = ["alive", "family", "reap", "rss", "wait_gone"]


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def rss(e: EngineInfo) -> int | None:
    """Resident memory of a local engine, None for engines on other hosts."""
    if e.host != socket.gethostname():
        return None
    try:
        return int(psutil.Process(e.pid).memory_info().rss)
    except psutil.Error:
        return None


def wait_gone(engines: list[EngineInfo], timeout: float) -> None:
    """Wait (bounded) for local engine processes to exit; kill what is left."""
    here = socket.gethostname()
    procs = []
    for e in engines:
        if e.host == here:
            with contextlib.suppress(psutil.NoSuchProcess):  # already gone: nothing to wait for
                procs.append(psutil.Process(e.pid))
    reap(procs, timeout)


def family(pid: int | None) -> list[psutil.Process]:
    """Process ``pid`` and all its descendants on this machine (none if it is gone): the
    controller's schedulers, say, which outlive it when it is killed."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def reap(procs: list[psutil.Process], timeout: float) -> None:
    """Wait (bounded) for ``procs`` to exit; kill what is left."""
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):  # exited as we were about to kill it
            p.kill()
