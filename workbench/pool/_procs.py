"""Processes of a pool on this machine: alive or not, their memory, waiting for them to exit,
and the shared-memory segments MPI processes killed on this machine left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

import psutil

from workbench.pool._status import EngineInfo

__all__ = ["alive", "family", "reap", "remove_stale_segments", "rss", "wait_gone"]

log = logging.getLogger("workbench.pool")

SHM = "/dev/shm"
_STALE_AFTER = 60.0  # seconds: a segment being set up is mapped long before that


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
    controller's schedulers, say."""
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


def remove_stale_segments(folder: str = SHM, min_age: float = _STALE_AFTER) -> list[str]:
    """Remove MPICH's shared-memory segments (``mpich_*`` in ``/dev/shm``) of this user that
    no process has open or mapped and that are older than ``min_age`` seconds; return
    their paths.

    MPI processes that are killed (a crashed or killed rank, a stopped pool's engines)
    leave them behind, and MPICH names a job's segment after a hash that repeats once
    process ids wrap around: a new job then finds the stale segment and aborts in
    ``MPI_Init`` ("Internal error"). Called before local engines start and after a pool
    stops.
    """
    try:
        names = [n for n in os.listdir(folder) if n.startswith("mpich_")]
    except OSError:  # no /dev/shm (not Linux): nothing of the kind
        return []
    now, uid, candidates = time.time(), os.getuid(), {}
    for name in names:
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):  # removed meanwhile by its job
            st = os.stat(path)
            if st.st_uid == uid and now - st.st_mtime > min_age:
                candidates[path] = st.st_ino
    if not candidates:
        return []
    used = _shm_in_use(folder)
    removed = []
    for path, inode in candidates.items():
        if inode not in used:
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile by its job
                os.remove(path)
                removed.append(path)
    if removed:
        log.debug("removed %d stale MPI shared-memory segments: %s", len(removed), removed)
    return removed


def _shm_in_use(folder: str) -> set[int]:
    """Inodes of the files in ``folder`` some process (of those this user may inspect) has
    mapped or open."""
    prefix, used = folder.rstrip("/") + "/", set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as f:  # gone, not ours
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith(prefix):
                    used.add(int(fields[4]))
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(prefix):
                        used.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
    return used
