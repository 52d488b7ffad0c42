"""The scheduler interface: should a running trial go on after this report?

One module per implementation (FIFO, ASHA, median stopping) behind :class:`Scheduler`;
``get_scheduler`` (in the package ``__init__``) turns ``None``, a name or a Scheduler into one.
"""

from __future__ import annotations

from typing import Any

from workbench.sweep._state import CONTINUE, TrialState

__all__ = ["Scheduler"]


class Scheduler:
    """Decides on every reported metric value; sees every trial's end.

    ``milestones`` are the steps where a trial waits for the decision before going on
    (ASHA's rungs); at other steps decisions are applied at the trial's next report.
    A subclass overrides :meth:`on_report` (and :meth:`on_complete`, :meth:`forget` when it
    keeps state per trial); the runner calls them in the notebook, one at a time.
    ``multi_objective`` says whether it makes sense in a sweep with several objectives
    (it then sees the first one): false for schedulers that compare trials by one metric.
    """

    milestones: tuple[float, ...] = ()
    multi_objective: bool = False
    metric: str = ""
    mode: str = "max"

    def setup(self, *, metric: str, mode: str) -> None:
        """Bind to a sweep's ``metric`` (its name) and ``mode`` ("max" or "min"); called once,
        first."""
        self.metric, self.mode = metric, mode

    def score(self, value: float) -> float:
        """``value`` turned so that higher is better."""
        return value if self.mode == "max" else -value

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        """Trial ``trial_id`` reported ``value`` of the metric at ``step``: return CONTINUE or
        STOP."""
        return CONTINUE

    def on_complete(self, trial_id: int, state: TrialState, value: float | None) -> None:
        """Trial ``trial_id`` ended in ``state`` (done, pruned, failed) with ``value`` (None
        when it has none)."""

    def forget(self, trial_id: int) -> None:
        """Drop what trial ``trial_id`` reported: it runs again from the start."""

    def restore(self, trials: list[dict[str, Any]], reports: dict[int, list[Any]]) -> None:
        """Replay the finished ``trials`` of a resumed sweep (rows of the store) with their
        ``reports`` (trial id -> ``[(step, value), ...]``); decisions are not re-applied."""
        for t in trials:
            for step, value in reports.get(t["id"], []):
                self.on_report(t["id"], step, value)
            self.on_complete(t["id"], t["state"], t["value"])
