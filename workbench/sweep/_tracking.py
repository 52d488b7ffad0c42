"""A sweep's trials recorded by trackers (``sweep(..., callbacks=[wb.track.mlflow()])``).

One run per trial and tracker, opened when the trial starts, with the trial's
configuration as parameters; the optimised metric is logged live as the trial reports,
every other reported metric when the trial ends (read from the store, which has them all
then), with its final values and state; after the sweep the best trial's run is marked.
Trials a tracker recorded to their end in an earlier run of the sweep are not recorded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench import trials as _trials
from workbench.sweep._outlet import Outlet
from workbench.track import Run, Tracker
from workbench.trials import Trial, TrialState

if TYPE_CHECKING:
    from workbench.sweep._store import SweepStore

__all__ = ["Tracking"]


class Tracking(Outlet):
    """The trials of sweep ``name`` recorded by ``tracker``; ``metric``/``mode`` say what is
    optimised, ``objectives`` the metrics of every objective (their final values)."""

    def __init__(
        self, tracker: Tracker, name: str, metric: str, mode: str, objectives: list[str],
        store: SweepStore,
    ) -> None:  # fmt: skip
        self.tracker, self.name, self.metric, self.mode = tracker, name, metric, mode
        self.objectives, self.store = objectives, store
        self.where = f"{type(tracker).__name__} of sweep {name!r}"
        self.done = tracker.recorded_trials(name)  # recorded to their end: left alone
        self.runs: dict[int, Run] = {}
        self.logged: dict[int, set[float]] = {}  # steps of ``metric`` logged, per trial

    def trial(self, t: Trial, curve: list[tuple[float, float]]) -> None:
        """Open trial ``t``'s run when it starts, log its curve, close it when it ends."""
        if t.id in self.done or (t.id not in self.runs and not _started(t)):
            return
        run = self.runs.get(t.id)
        if run is None:
            run = self.tracker.open_run(self.name, f"trial-{t.id}", t.config, trial=t.id)
            self.logged[t.id] = run.logged_steps(self.metric)  # (a run taken up again)
            self.runs[t.id] = run
        logged = self.logged[t.id]
        for step, value in curve:
            if step not in logged:
                run.log(int(step), {self.metric: value})
                logged.add(step)
        if t.state.is_finished():
            for rep in self.store.reports(self.name, t.id):
                others = {k: v for k, v in rep["metrics"].items()
                          if not (k == self.metric and rep["step"] in logged)}  # fmt: skip
                run.log(int(rep["step"]), others)
            values = t.values or ({self.metric: t.value} if t.value is not None else None)
            run.close(str(t.state), values=values)
            self.done.add(t.id)

    def finish(self, trials: Sequence[Trial]) -> None:
        """Mark the run of the best trial (of the first objective)."""
        best = _trials.best(trials, self.mode)
        if best is None:
            return
        self.tracker.mark_best(self.name, best.id)


def _started(t: Trial) -> bool:
    return t.state not in (TrialState.PENDING, TrialState.QUEUED)
