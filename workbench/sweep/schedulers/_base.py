"""The scheduler interface: should a running trial go on after this report?

One module per implementation (FIFO, ASHA, median stopping) behind :class:`Scheduler`;
:func:`get_scheduler` turns ``None``, a name or a Scheduler into one.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InvalidValueError

__all__ = ["CONTINUE", "STOP", "Scheduler", "get_scheduler"]

CONTINUE = "continue"
STOP = "stop"


class Scheduler:
    """Decides on every reported metric value; sees every trial's end.

    ``milestones`` are the steps where a trial waits for the decision before going on
    (ASHA's rungs); at other steps decisions are applied at the trial's next report.
    """

    milestones: tuple[float, ...] = ()
    metric: str = ""
    mode: str = "max"

    def setup(self, *, metric: str, mode: str) -> None:
        """Bind to a sweep's metric and mode (called once, first)."""
        self.metric, self.mode = metric, mode

    def score(self, value: float) -> float:
        """``value`` turned so that higher is better."""
        return value if self.mode == "max" else -value

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        """Trial ``trial_id`` reported ``value`` at ``step``: CONTINUE or STOP."""
        return CONTINUE

    def on_complete(self, trial_id: int, state: str, value: float | None) -> None:
        """Trial ``trial_id`` ended in ``state`` (done, pruned, failed)."""

    def forget(self, trial_id: int) -> None:
        """Drop what trial ``trial_id`` reported: it runs again from the start."""

    def restore(self, trials: list[dict[str, Any]], reports: dict[int, list[Any]]) -> None:
        """Replay the finished trials of a resumed sweep (decisions are not re-applied)."""
        for t in trials:
            for step, value in reports.get(t["id"], []):
                self.on_report(t["id"], step, value)
            self.on_complete(t["id"], t["state"], t["value"])


def get_scheduler(scheduler: Any) -> Scheduler:
    """A :class:`Scheduler` from None/"fifo", "asha", "median" or a Scheduler."""
    from workbench.sweep.schedulers._asha import ASHA
    from workbench.sweep.schedulers._fifo import FIFO
    from workbench.sweep.schedulers._median import MedianStopping

    if isinstance(scheduler, Scheduler):
        return scheduler
    named = {None: FIFO, "fifo": FIFO, "none": FIFO, "asha": ASHA, "median": MedianStopping}
    if isinstance(scheduler, (str, type(None))) and scheduler in named:
        return named[scheduler]()
    raise InvalidValueError(
        f"unknown scheduler {scheduler!r}: use None/'fifo', 'asha', 'median', or an instance "
        "such as workbench.sweep.ASHA(max_resource=...)"
    )
