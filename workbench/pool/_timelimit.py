"""A Slurm job's time limit seen from the notebook: the time left, and one warning before
the end that also asks the engines to checkpoint.

How the warning reaches a running cell: the notebook already asks ``squeue`` about the job
every 2 s while a cell waits (to notice a job that ended); the same answer carries the time
left (``%L``), so watching the limit costs no extra query. When ``warn_before`` seconds or
less are left, the cell prints one line (``workbench: slurm job 12 ends in 4:59 (time
limit): ...``) and the pool sends its engines ``SIGUSR1`` through ipyparallel's control
channel (each engine's nanny delivers it); the handler the engines installed when the pool
connected sets a flag that :func:`workbench.pool.checkpoint_requested` reads and
``wb.train.fit(checkpoint=...)`` acts on at its next step. ``%wb status`` shows the time
left, and gives the warning if no cell did.

Why not ``sbatch --signal=USR1@300``: Slurm may send it up to a minute early, it fixes the
time at submission, and it goes to the launchers too (the batch shell, ``mpiexec``, hydra's
proxies), whose default action on ``SIGUSR1`` is to exit: it would end the job it warns
about. Watching from the notebook also follows a limit changed later (``scontrol update``).
"""

from __future__ import annotations

import time

from workbench.pool._slurm import format_duration, parse_duration

__all__ = ["DEFAULT_WARN_BEFORE", "TimeLeft"]

#: Seconds before the end of a Slurm pool's job when the notebook warns (``warn_before=``).
DEFAULT_WARN_BEFORE = 300.0


class TimeLeft:
    """The time left of one job, from ``squeue``'s answers, counted down between them."""

    def __init__(self, warn_before: float = DEFAULT_WARN_BEFORE) -> None:
        self.warn_before = float(warn_before)
        self.warned = False
        self._seen: tuple[float, float] | None = None  # (monotonic time, seconds left)

    def update(self, left: str | None) -> None:
        """Take the time left as ``squeue`` wrote it. An answer without one (no limit, or a
        job past its limit that Slurm has not ended yet: ``INVALID``) keeps the count-down
        of the last answer that had one."""
        seconds = parse_duration(left)
        if seconds is not None:
            self._seen = (time.monotonic(), seconds)

    def seconds(self) -> float | None:
        """Seconds left now, or None when unknown."""
        if self._seen is None:
            return None
        at, left = self._seen
        return max(0.0, left - (time.monotonic() - at))

    def due(self) -> bool:
        """True once, when ``warn_before`` seconds or less are left."""
        left = self.seconds()
        if self.warned or left is None or left > self.warn_before:
            return False
        self.warned = True
        return True

    def describe(self) -> str | None:
        """``4:59 (warning at 5:00)``: the time left and whether the warning went out; None
        when unknown."""
        left = self.seconds()
        if left is None:
            return None
        when = format_duration(self.warn_before)
        told = "warned, engines asked to checkpoint" if self.warned else f"warning at {when}"
        return f"{format_duration(left)} ({told})"
