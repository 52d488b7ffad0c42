"""A Slurm pool's job seen from the notebook: whether it ended (and why), its time left and the
one warning before its time limit (:class:`~workbench.pool._timelimit.TimeLeft`).

The pool asks :meth:`JobWatch.ended` each time it looks for dead ranks (every 0.5 s while a
cell waits); ``squeue`` is asked at most every 2 s, and the same answer carries the time left,
so watching the limit costs no extra query. A local pool has a watch too, with no job: it
never ends and never warns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from workbench.pool._slurm import format_duration, job_info
from workbench.pool._timelimit import DEFAULT_WARN_BEFORE, TimeLeft

__all__ = ["JobWatch"]

_ASK_EVERY = 2.0  # seconds between two squeue queries about the job


class JobWatch:
    """The Slurm job of a pool (``job_id()`` gives its id, None for a local pool).

    ``final`` holds, once the job is over, why each rank died (set by the pool when it
    classified them: a lost node, then the ranks that exited after it), so the answer stays
    the same while Slurm forgets the job.
    """

    def __init__(
        self, job_id: Callable[[], str | None], warn_before: float = DEFAULT_WARN_BEFORE
    ) -> None:
        self._job_id = job_id
        self.time_left = TimeLeft(warn_before)
        self.final: dict[int, str] | None = None
        self._checked: tuple[float, str | None] = (-1e9, None)

    @property
    def id(self) -> str | None:
        """The job id, or None for a pool without a Slurm job."""
        return self._job_id()

    @property
    def warn_before(self) -> float:
        """Seconds before the time limit when the pool warns (once); settable."""
        return self.time_left.warn_before

    @warn_before.setter
    def warn_before(self, seconds: float) -> None:
        self.time_left.warn_before = float(seconds)

    def ended(self, *, fresh: bool = False) -> str | None:
        """Why the job is over (``slurm job 12 is cancelled``, ``... reached its time
        limit``), or None while it runs and for a pool without a job. Asks Slurm at most
        every 2 s (``fresh``: now), which also updates :attr:`time_left`."""
        job = self.id
        if job is None:
            return None
        now = time.monotonic()
        if fresh or now - self._checked[0] >= _ASK_EVERY:
            info = job_info(job)
            state = str(info["job_state"])
            if state == "RUNNING":
                self.time_left.update(info["time_left"])
            why = None
            if state not in ("RUNNING", "UNKNOWN"):  # (COMPLETING: its processes are going)
                left = self.time_left.seconds()  # (Slurm may forget a job within seconds)
                at_limit = state == "TIMEOUT" or (left is not None and left < 30)
                why = f"slurm job {job} " + (
                    "reached its time limit" if at_limit else f"is {state.lower()}"
                )
            self._checked = (now, why)
        return self._checked[1]

    def warning(self) -> str | None:
        """Once, when the running job has ``warn_before`` seconds or less left: the line to
        show (``workbench: slurm job 12 ends in 4:59 (time limit): save your work``);
        else None."""
        if self.id is None or self.time_left.warned or self.ended():
            return None
        if not self.time_left.due():
            return None
        left = format_duration(self.time_left.seconds() or 0.0)
        return f"workbench: slurm job {self.id} ends in {left} (time limit): save your work"

    def reset(self) -> None:
        """A new job (the pool restarted): forget what was known of the old one."""
        self.time_left = TimeLeft(self.warn_before)
        self.final = None
        self._checked = (-1e9, None)
