"""ASHA: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020), in its stopping form.

Rungs sit at ``min_resource * reduction_factor**k`` steps, below ``max_resource``. When a
trial first reports at or past a rung, its value is recorded there and compared with every
value recorded at that rung so far (its own included): it goes on if it is among the top
``n // reduction_factor`` of the ``n`` values (the best one while ``n < reduction_factor``),
otherwise it stops. No trial waits for others, so idle engines never wait for a rung to
fill. This is Optuna's ``SuccessiveHalvingPruner`` rule, with Ray Tune's rung layout.
"""

from __future__ import annotations

from workbench.errors import InvalidValueError
from workbench.sweep._state import CONTINUE, STOP
from workbench.sweep.schedulers._base import Scheduler

__all__ = ["ASHA"]

_MAX_RUNGS = 30


class ASHA(Scheduler):
    """Asynchronous successive halving.

    Parameters
    ----------
    min_resource
        The first rung, in steps (> 0).
    max_resource
        The length of a full trial: no rung at or past it (set it to the last step your
        objective reports). None: rungs go on (at most 30).
    reduction_factor
        Keep the top 1/``reduction_factor`` at every rung (>= 2); rungs are this factor
        apart.
    """

    def __init__(
        self,
        *,
        min_resource: float = 1,
        max_resource: float | None = None,
        reduction_factor: float = 3,
    ) -> None:
        if not min_resource > 0:
            raise InvalidValueError(f"ASHA min_resource must be > 0, got {min_resource!r}")
        if max_resource is not None and not max_resource > min_resource:
            raise InvalidValueError(
                f"ASHA max_resource must be > min_resource ({min_resource}), got {max_resource!r}"
            )
        if not reduction_factor >= 2:
            raise InvalidValueError(f"ASHA reduction_factor must be >= 2, got {reduction_factor!r}")
        self.min_resource, self.max_resource = min_resource, max_resource
        self.eta = reduction_factor
        rungs: list[float] = []
        r = float(min_resource)
        while len(rungs) < _MAX_RUNGS and (max_resource is None or r < max_resource):
            rungs.append(r)
            r *= reduction_factor
        self.milestones = tuple(rungs)
        self.rungs: dict[float, dict[int, float]] = {r: {} for r in rungs}

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        for rung in reversed(self.milestones):  # the highest rung reached, once
            recorded = self.rungs[rung]
            if step < rung:
                continue
            if trial_id in recorded:
                return CONTINUE
            recorded[trial_id] = self.score(value)
            return CONTINUE if self._promotable(recorded, trial_id) else STOP
        return CONTINUE

    def _promotable(self, recorded: dict[int, float], trial_id: int) -> bool:
        ranked = sorted(recorded.values(), reverse=True)
        k = max(len(ranked) // int(self.eta) - 1, 0)
        return recorded[trial_id] >= ranked[k]

    def forget(self, trial_id: int) -> None:
        for recorded in self.rungs.values():
            recorded.pop(trial_id, None)
