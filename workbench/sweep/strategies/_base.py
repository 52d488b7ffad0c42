"""The search-strategy interface: what configuration to try next.

One module per implementation (grid, random, Optuna samplers), all behind :class:`Strategy`;
``get_strategy`` (in the package ``__init__``) turns what the user passed (a name, a Strategy,
an Optuna sampler) into one.
"""

from __future__ import annotations

from typing import Any

from workbench.sweep._space import Space
from workbench.sweep._state import TrialState

__all__ = ["Strategy"]


class Strategy:
    """Proposes configurations; learns from finished trials.

    Trial ids count from 0. The runner calls :meth:`suggest` once per new trial id (a trial
    that is retried or re-run after a restart keeps its configuration), and :meth:`complete`
    once per trial when it reaches a final state. A subclass overrides :meth:`suggest`
    (and :meth:`limit` when it is bounded, :meth:`complete` when it learns).

    A strategy that handles several objectives sets ``multi_objective = True``: its
    :meth:`setup` then gets ``metrics`` (name -> mode) and :meth:`complete` gets ``values``
    (one per objective, in that order) for sweeps with ``metrics=``.
    """

    space: Space
    metric: str
    mode: str
    seed: int
    metrics: dict[str, str] | None = None
    multi_objective: bool = False

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

    def suggest(self, trial_id: int) -> dict[str, Any] | None:
        """The configuration of trial ``trial_id``, or None when there is nothing left to try."""
        raise NotImplementedError

    def complete(
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
        ``values`` (one per metric; None unless done)."""

    def restore(self, trials: list[dict[str, Any]]) -> None:
        """Catch up with the finished trials of a resumed sweep (rows of the store)."""
        for t in trials:
            if self.metrics is None:
                self.complete(t["id"], t["config"], t["state"], t["value"])
                continue
            got = t.get("values") or {}
            values = [got.get(m) for m in self.metrics]
            ok = t["state"] == TrialState.DONE and None not in values
            self.complete(
                t["id"], t["config"], t["state"], t["value"], values=values if ok else None
            )
