"""A pool's guard: stops what the pool started when the process that started it dies.

A pool that is not detached belongs to the process that started it: ipyparallel stops it at
that process's exit, but not when the process is killed (``SIGKILL``, ``SIGTERM``, a kernel
restarted by force) — its controller stayed orphaned for hours and its Slurm job stayed
queued. So each such pool gets a small process of its own, in a session of its own, that
waits for one of two things: the pool's cluster file goes away (the pool was stopped: the
guard exits), or its starter dies while the file is there (the guard stops the controller,
the engines and their Slurm job through the file, as ``workbench pool stop FILE`` would).

Run as ``python -m workbench.pool._guard STARTER_PID CLUSTER_FILE``;
:func:`workbench.pool._launch.start_cluster` starts it.
"""

from __future__ import annotations

import os
import sys
import time

__all__ = ["main"]

_POLL = 0.5  # seconds between two looks at the starter and the cluster file
_APPEAR = 600.0  # seconds the cluster file may take to appear (a start that waits in a queue)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main(argv: list[str]) -> int:
    """Watch starter ``argv[0]`` and cluster file ``argv[1]``; see the module docstring."""
    starter, cluster_file = int(argv[0]), argv[1]
    seen = False
    deadline = time.monotonic() + _APPEAR
    while True:
        exists = os.path.exists(cluster_file)
        seen = seen or exists
        if seen and not exists:
            return 0  # the pool was stopped
        if not _alive(starter):
            break
        if not seen and time.monotonic() > deadline:
            return 0  # never started
        time.sleep(_POLL)
    if not exists:
        # the starter died before the file was written: give a start in progress a moment
        time.sleep(2 * _POLL)
        if not os.path.exists(cluster_file):
            return 0
    from workbench.pool._launch import stop_file  # (here: the guard waits light)

    stop_file(cluster_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
