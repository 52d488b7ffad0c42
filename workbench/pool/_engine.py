"""Code that runs on the engines when a pool connects (kept tiny: it is shipped by value)."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

__all__ = [
    "CHECKPOINT_SIGNAL",
    "bootstrap",
    "call_and_flush",
    "checkpoint_requested",
    "checkpoint_requests",
]

#: What the notebook sends the engines when their Slurm job ends soon (see ``_timelimit``).
CHECKPOINT_SIGNAL = signal.SIGUSR1
_checkpoint = {"received": 0, "cleared": 0}


def _on_checkpoint_signal(signum: int, frame: Any) -> None:
    _checkpoint["received"] += 1


def checkpoint_requests() -> int:
    """How many times the notebook asked this engine to checkpoint (each warning that the
    pool's Slurm job ends soon counts once). Ranks get the signal at slightly different
    moments: compare counts (e.g. the max over ranks), not a flag, to act once per request."""
    return _checkpoint["received"]


def checkpoint_requested(*, clear: bool = False) -> bool:
    """True on an engine once the notebook warned that the pool's Slurm job ends soon
    (``warn_before`` seconds before its time limit) and the request was not cleared: a long
    loop should save its state. ``clear=True`` marks the requests so far as handled.
    ``wb.train.fit(checkpoint=...)`` uses :func:`checkpoint_requests` instead, agreeing on
    the step with the other ranks."""
    requested = _checkpoint["received"] > _checkpoint["cleared"]
    if clear:
        _checkpoint["cleared"] = _checkpoint["received"]
    return requested


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
        # (bootstrap runs in the engine's main thread, where handlers can be installed)
        signal.signal(CHECKPOINT_SIGNAL, _on_checkpoint_signal)
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
