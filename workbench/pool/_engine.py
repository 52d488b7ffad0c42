"""Code that runs on the engines when a pool connects (kept tiny: it is shipped by value)."""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["bootstrap", "call_and_flush"]


def bootstrap() -> dict[str, Any]:
    """Define ``comm``, ``rank``, ``size`` in the engine namespace; return who this engine is."""
    from IPython import get_ipython
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    shell = get_ipython()
    if shell is not None:
        shell.user_ns.update(comm=comm, rank=comm.rank, size=comm.size)
        # a %%distributed cell's last throttled progress report leaves before its reply
        from workbench.progress import flush

        if flush not in shell.events.callbacks["post_execute"]:
            shell.events.register("post_execute", flush)
    return {
        "rank": comm.rank,
        "size": comm.size,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def memory_rss() -> int:
    """Resident memory of this engine in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def call_and_flush(names: dict[str, Any] | None, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` for ``pool.run``, after defining the notebook ``names`` it needs (see
    :mod:`workbench.pool._globals`); its last progress report leaves before the result."""
    from workbench.progress import flush

    if names:
        from workbench.pool._globals import bind

        bind(names)
    try:
        return fn(*args, **kwargs)
    finally:
        flush()
