"""The runner's record of a sweep's trials: the store and the trial records, changed together.

The store is the durable record; the :class:`~workbench.trials.Trial` objects are what the
runner decides on and the live view shows. Every change goes through :class:`Records`,
which writes the store and replaces the trial's record (``dataclasses.replace``: a record
is never changed in place), and keeps the queue of trials waiting to run (again).
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from workbench.trials import Trial, TrialState

if TYPE_CHECKING:
    from workbench.sweep._attempt import Attempt
    from workbench.sweep._store import SweepStore

__all__ = ["Records"]

log = logging.getLogger("workbench.sweep")


class Records:
    """The trials of sweep ``name`` in ``store``: ``trials`` (id -> Trial), ``pending`` (ids
    waiting to run, lowest first) and ``next_id`` (the id of the next new trial)."""

    def __init__(self, store: SweepStore, name: str) -> None:
        self.store, self.name = store, name
        self.trials: dict[int, Trial] = {t.id: t for t in store.trials(name)}
        self.pending = sorted(i for i, t in self.trials.items() if not t.state.is_finished())
        self.next_id = max(self.trials, default=-1) + 1

    def add(self, config: dict[str, Any]) -> int:
        """A new pending trial with configuration ``config``; returns its id."""
        trial_id, self.next_id = self.next_id, self.next_id + 1
        self.store.add_trial(self.name, trial_id, config)
        self.trials[trial_id] = Trial(id=trial_id, config=config)
        return trial_id

    def set(
        self, trial_id: int, state: TrialState, detail: str | None = None, **fields: Any
    ) -> None:
        """Move trial ``trial_id`` to ``state`` and set ``fields`` (columns of the store's
        ``trials`` table, and ``values``), with an event carrying ``detail``."""
        self.store.update(self.name, trial_id, state, detail, **fields)
        self.trials[trial_id] = replace(self.trials[trial_id], state=state, **fields)

    def show(self, trial_id: int, **fields: Any) -> None:
        """Set ``fields`` of the record only: live values the store gets when the trial ends."""
        self.trials[trial_id] = replace(self.trials[trial_id], **fields)

    def requeue(self, trial_id: int, detail: str, **fields: Any) -> None:
        """Make trial ``trial_id`` pending again (``detail`` says why; ``fields`` as for
        :meth:`set`): it runs again, in id order."""
        self.set(trial_id, TrialState.PENDING, detail, **fields)
        bisect.insort(self.pending, trial_id)

    def add_reports(self, attempt: Attempt) -> None:
        """Store the reports ``attempt`` made since they were last stored."""
        reports = attempt.take_reports()
        if reports:
            self.store.add_reports(self.name, attempt.trial, attempt.attempt, reports)

    def exploit(self, trial_id: int, donor: int, step: float, config: dict[str, Any]) -> None:
        """Trial ``trial_id`` copied trial ``donor``'s checkpoint of ``step`` and goes on with
        ``config``: record the exploit in its lineage; it is pending again."""
        old = self.trials[trial_id]
        changed = ", ".join(
            f"{k} {old.config.get(k)!r} -> {v!r}" for k, v in config.items()
            if old.config.get(k) != v
        )  # fmt: skip
        detail = f"exploit: copied trial {donor} at step {step:g}; {changed or 'same config'}"
        attempt = self.store.exploit(
            self.name, trial_id, step=step, donor=donor, config=config, detail=detail
        )
        log.info("sweep %r: trial %d %s", self.name, trial_id, detail)
        entry = {"id": trial_id, "attempt": attempt, "step": step, "from": donor,
                 "old": old.config, "new": config, "t": time.time(), "detail": detail}  # fmt: skip
        lineage = [*(old.lineage or []), entry]
        self.trials[trial_id] = replace(
            old, config=config, state=TrialState.PENDING, lineage=lineage
        )
        bisect.insort(self.pending, trial_id)
