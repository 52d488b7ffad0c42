"""Median stopping (Golovin et al., "Google Vizier", KDD 2017; Optuna's ``MedianPruner``).

At each step past ``warmup_steps``, a trial stops if its best value so far is worse than the
median of the values that finished trials reported at that same step, once at least
``min_trials`` finished trials reported there.
"""

from __future__ import annotations

import statistics

from workbench.errors import InvalidValueError
from workbench.sweep._state import CONTINUE, STOP, TrialState
from workbench.sweep.schedulers._base import Scheduler

__all__ = ["MedianStopping"]


class MedianStopping(Scheduler):
    """Stop trials whose best so far is below the median of finished trials at the same step.

    Parameters
    ----------
    min_trials
        How many finished trials must have reported at a step before any trial is stopped
        there (>= 1).
    warmup_steps
        No trial is stopped at or before this step.
    """

    def __init__(self, *, min_trials: int = 3, warmup_steps: float = 0) -> None:
        if min_trials < 1:
            raise InvalidValueError(f"MedianStopping min_trials must be >= 1, got {min_trials!r}")
        self.min_trials, self.warmup_steps = min_trials, warmup_steps
        self.curves: dict[int, dict[float, float]] = {}
        self.finished: set[int] = set()

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        curve = self.curves.setdefault(trial_id, {})
        curve[step] = self.score(value)
        if step <= self.warmup_steps or trial_id in self.finished:
            return CONTINUE
        others = [self.curves[t][step] for t in self.finished if step in self.curves.get(t, {})]
        if len(others) < self.min_trials:
            return CONTINUE
        return STOP if max(curve.values()) < statistics.median(others) else CONTINUE

    def on_complete(self, trial_id: int, state: TrialState, value: float | None) -> None:
        if state == TrialState.DONE:
            self.finished.add(trial_id)

    def forget(self, trial_id: int) -> None:
        self.curves.pop(trial_id, None)
        self.finished.discard(trial_id)
