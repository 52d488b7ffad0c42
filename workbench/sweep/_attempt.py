"""One attempt of a trial on its group of engines, as the runner follows it from the notebook.

An :class:`Attempt` holds what the attempt reported so far (the latest and best value of
the metric, the latest value of each objective, the reports not yet stored), where its
reports stand in the live stream, the decision sent to it, and, at its end, its final
value(s) (:meth:`Attempt.final_value`, :meth:`Attempt.final_values`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.sweep._state import STOP, TrialState
from workbench.sweep._trial import write_decision

if TYPE_CHECKING:
    from workbench.sweep._plan import Plan

__all__ = ["Attempt"]


@dataclass(eq=False)  # compared by identity
class Attempt:
    """Attempt ``attempt`` of trial ``trial`` on engine group ``group``: its task ``ar``
    (an ipyparallel AsyncResult; ``metadata``: rank 0's live metadata dict) and decision
    file ``control``. ``index`` is its place in its task's batch (None: alone in its task)."""

    trial: int
    attempt: int
    group: int
    ar: Any
    control: str
    metadata: dict[str, Any]
    index: int | None = None
    seq: int = 0  # the last report taken from the live stream (its sequence number)
    streamed: int = 0  # reports taken from the live stream so far
    next_milestone: int = 0
    stop_sent: bool = False
    stopped_by: str = "scheduler"
    last: float | None = None  # the latest value of the metric
    best: float | None = None  # the best value of the metric
    step: float | None = None  # the latest step reported
    reports: list[Any] = field(default_factory=list)  # (step, metrics, time) not yet stored
    lasts: dict[str, float] = field(default_factory=dict)  # latest value of each objective
    curve0: list[Any] = field(default_factory=list)  # (step, value) up to its checkpoint
    donor: int | None = None  # PBT: the trial whose checkpoint it copies when it stops

    def observe(
        self, plan: Plan, step: float, metrics: dict[str, float]
    ) -> tuple[float | None, bool]:
        """Take one report: returns the value of ``plan``'s metric in it (None when it has
        none) and whether it crossed a milestone of the scheduler."""
        milestones = plan.scheduler.milestones
        crossing = False
        while self.next_milestone < len(milestones) and step >= milestones[self.next_milestone]:
            crossing, self.next_milestone = True, self.next_milestone + 1
        self.step = step
        if plan.metrics:
            self.lasts.update((m, metrics[m]) for m in plan.metrics if m in metrics)
        value = metrics.get(plan.metric) if plan.metric else None
        if value is not None:
            self.last = value
            self.best = value if self.best is None else plan.better(value, self.best)
        return value, crossing

    def stop(self, step: float, by: str) -> None:
        """Tell the trial to stop at its next report (``by``: who stopped it)."""
        self.stopped_by, self.stop_sent = by, True
        write_decision(self.control, step, STOP)

    def take_reports(self) -> list[Any]:
        """The reports not yet stored, which are then the store's."""
        reports, self.reports = self.reports, []
        return reports

    def final_value(self, plan: Plan, res: dict[str, Any]) -> float | None:
        """The value of the trial that ended with result ``res``: the number it returned
        (or the metric of the dict it returned) when done, else the last one reported."""
        v = res.get("value")
        if isinstance(v, dict):
            v = v.get(plan.metric) if plan.metric else None
        if isinstance(v, float) and res["state"] == TrialState.DONE:
            self.best = v if self.best is None else plan.better(v, self.best)
            return v
        return self.last

    def final_values(
        self, plan: Plan, res: dict[str, Any], value: float | None
    ) -> tuple[dict[str, float] | None, str]:
        """Each objective's value of a done multi-objective trial: from the returned dict,
        else the last report (``value``, the returned number, is the first objective's).
        Returns ``(values, "")``, or ``(None, why)`` when some objective has no value."""
        returned = res.get("value")
        got = dict(returned) if isinstance(returned, dict) else {}
        objectives = list(plan.metrics or {})
        values = {m: got.get(m, self.lasts.get(m)) for m in objectives}
        values[plan.metric or ""] = value  # the first objective, as value
        missing = [m for m, v in values.items() if v is None]
        if not missing:
            return {m: float(v) for m, v in values.items() if v is not None}, ""
        seen = sorted(set(self.lasts) | set(got)) or ["none"]
        wanted = ", ".join(f"{m}=..." for m in objectives)
        return None, (
            f"ValueError: trial {self.trial} ended without a value of metric {missing[0]!r} "
            f"(objectives: {', '.join(objectives)}; it gave: {', '.join(seen)}). "
            f"Every trial must report each objective (report(step=..., {wanted})) or return "
            "a dict holding all of them"
        )
