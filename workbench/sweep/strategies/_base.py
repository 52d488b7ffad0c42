"""The search-strategy interface: what configuration to try next.

One module per implementation (grid, random, Optuna samplers), all behind :class:`Strategy`;
``get_strategy`` (in the package ``__init__``) turns what the user passed (a name, a Strategy,
an Optuna sampler) into one.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from workbench.sweep._space import Space
from workbench.trials import Trial, TrialState

__all__ = ["Strategy"]


class Strategy(abc.ABC):
    """Proposes configurations; may learn from finished trials.

    Trial ids count from 0. The runner calls :meth:`suggest` once per new trial id (a trial
    that is retried or re-run after a restart keeps its configuration), and :meth:`complete`
    once per trial when it reaches a final state. A subclass implements :meth:`suggest`
    (and overrides :meth:`limit` when it is bounded, :meth:`complete` when it learns).

    What a strategy can do is declared in class attributes, which ``sweep()`` checks:

    - ``multi_objective``: it handles several objectives; its :meth:`setup` then gets
      ``metrics`` (name -> mode) and :meth:`complete` gets ``values`` (one per objective,
      in that order) for sweeps with ``metrics=``.
    - ``learns_from_results``: its proposals depend on the results :meth:`complete`
      reports (Optuna's samplers); such a strategy cannot be used with a scheduler that
      changes configurations while trials run (PBT).
    """

    multi_objective: ClassVar[bool] = False
    learns_from_results: ClassVar[bool] = False

    space: Space
    metric: str
    mode: str
    seed: int
    metrics: dict[str, str] | None = None

    def setup(
        self,
        space: Space,
        *,
        metric: str,
        mode: str,
        seed: int,
        metrics: dict[str, str] | None = None,
    ) -> None:
        """Bind the strategy to a sweep's ``space``, ``metric`` (its name), ``mode`` ("max" or
        "min") and ``seed``, and the ``metrics`` (name -> mode) of a multi-objective sweep
        (``metric`` is then the first); called once, before anything else."""
        self.space, self.metric, self.mode, self.seed = space, metric, mode, seed
        self.metrics = dict(metrics) if metrics else None

    def limit(self) -> int | None:
        """The most trials this strategy can propose (None: unbounded)."""
        return None

    @abc.abstractmethod
    def suggest(self, trial_id: int) -> dict[str, Any] | None:
        """The configuration of trial ``trial_id``, or None when there is nothing left to try."""

    def complete(  # noqa: B027 (an optional hook)
        self,
        trial_id: int,
        config: dict[str, Any],
        state: TrialState,
        value: float | None,
        *,
        values: list[float] | None = None,
    ) -> None:
        """Trial ``trial_id`` with configuration ``config`` ended in ``state`` (done, pruned,
        failed) with ``value`` (None when it has none) and, in a multi-objective sweep,
        ``values`` (one per metric; None unless done). Nothing here: override it (and set
        ``learns_from_results``) to learn."""

    def restore(self, trials: Sequence[Trial]) -> None:
        """Catch up with the finished ``trials`` of a resumed sweep (as the store has them)."""
        for t in trials:
            if self.metrics is None:
                self.complete(t.id, t.config, t.state, t.value)
                continue
            values = t.objective_values(list(self.metrics))
            ok = t.state == TrialState.DONE and values is not None
            self.complete(t.id, t.config, t.state, t.value, values=values if ok else None)
