"""No scheduler: every trial runs to its end."""

from __future__ import annotations

from workbench.sweep._state import CONTINUE
from workbench.sweep.schedulers._base import Scheduler

__all__ = ["FIFO"]


class FIFO(Scheduler):
    """Let every trial finish (the reports are still recorded and shown); any number of
    objectives."""

    multi_objective = True

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        return CONTINUE
