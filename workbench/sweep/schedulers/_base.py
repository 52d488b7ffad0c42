"""The scheduler interface: should a running trial go on after this report?

One module per implementation (FIFO, ASHA, median stopping, PBT) behind :class:`Scheduler`;
``get_scheduler`` (in the package ``__init__``) turns ``None``, a name or a Scheduler into one.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from workbench.sweep._space import Space
from workbench.trials import Trial, TrialState

__all__ = ["Scheduler"]


class Scheduler(abc.ABC):
    """Decides on every reported metric value; sees every trial's end.

    A subclass implements :meth:`on_report` (and overrides :meth:`on_complete` and
    :meth:`forget` when it keeps state per trial); the runner calls them in the notebook,
    one at a time. ``milestones`` are the steps where a trial waits for the decision before
    going on (ASHA's rungs); at other steps decisions are applied at the trial's next report.

    ``sweep()`` calls :meth:`check` with the sweep's space before anything is stored, then
    :meth:`setup` and :meth:`bind` once each. What a scheduler needs is declared in class
    attributes, which ``sweep()`` checks:

    - ``multi_objective``: it makes sense in a sweep with several objectives (it then sees
      the first one); false for schedulers that compare trials by one metric.
    - ``needs_checkpoint``: it copies checkpoints between trials (PBT), so the objective
      must take ``checkpoint``.
    - ``changes_config``: it changes a trial's configuration while it runs (PBT's explore),
      so a strategy that learns from results would learn the wrong configurations.

    A scheduler that returns ``EXPLOIT`` from :meth:`on_report` says which trial to copy in
    :meth:`target` and what configuration to go on with in :meth:`explore`; the runner
    copies the checkpoint and records the lineage.
    """

    milestones: tuple[float, ...] = ()
    multi_objective: ClassVar[bool] = False
    needs_checkpoint: ClassVar[bool] = False
    changes_config: ClassVar[bool] = False
    metric: str = ""
    mode: str = "max"

    def check(self, space: Space) -> None:  # noqa: B027 (an optional hook)
        """Refuse (``InvalidValueError``) a sweep ``space`` it cannot work with; called before
        anything is stored. Nothing to check here."""

    def setup(self, *, metric: str, mode: str) -> None:
        """Bind to a sweep's ``metric`` (its name) and ``mode`` ("max" or "min"); called once,
        first."""
        self.metric, self.mode = metric, mode

    def bind(self, space: Space, seed: int) -> None:  # noqa: B027 (an optional hook)
        """Bind to the sweep's checked ``space`` and ``seed`` (kept in the store, so a resumed
        sweep gets the same one); called once, after :meth:`setup`. Nothing here."""

    def score(self, value: float) -> float:
        """``value`` turned so that higher is better."""
        return value if self.mode == "max" else -value

    @abc.abstractmethod
    def on_report(self, trial_id: int, step: float, value: float) -> str:
        """Trial ``trial_id`` reported ``value`` of the metric at ``step``: return CONTINUE or
        STOP (or EXPLOIT, with :meth:`target` and :meth:`explore`)."""

    def target(self, trial_id: int) -> int | None:
        """The trial whose checkpoint trial ``trial_id`` should copy, after :meth:`on_report`
        said EXPLOIT (None: none, it goes on). None here: this scheduler never exploits."""
        return None

    def explore(self, config: dict[str, Any]) -> dict[str, Any]:
        """The configuration an exploiting trial goes on with, from ``config`` (that of the
        trial it copied). Unchanged here."""
        return dict(config)

    def on_complete(  # noqa: B027 (an optional hook)
        self, trial_id: int, state: TrialState, value: float | None
    ) -> None:
        """Trial ``trial_id`` ended in ``state`` (done, pruned, failed) with ``value`` (None
        when it has none)."""

    def forget(self, trial_id: int) -> None:  # noqa: B027 (an optional hook)
        """Drop what trial ``trial_id`` reported: it runs again from the start."""

    def restore(self, trials: Sequence[Trial], reports: dict[int, list[Any]]) -> None:
        """Replay the finished ``trials`` of a resumed sweep (as the store has them) with their
        ``reports`` (trial id -> ``[(step, value), ...]``); decisions are not re-applied."""
        for t in trials:
            for step, value in reports.get(t.id, []):
                self.on_report(t.id, step, value)
            self.on_complete(t.id, t.state, t.value)
