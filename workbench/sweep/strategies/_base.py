"""The search-strategy interface: what configuration to try next.

One module per implementation (grid, random, Optuna samplers), all behind :class:`Strategy`;
:func:`get_strategy` turns what the user passed (a name, a Strategy, an Optuna sampler) into one.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InvalidValueError
from workbench.sweep._space import Space

__all__ = ["Strategy", "get_strategy"]


class Strategy:
    """Proposes configurations; learns from finished trials.

    Trial ids count from 0. The runner calls :meth:`suggest` once per new trial id (a trial
    that is retried or re-run after a restart keeps its configuration), and :meth:`complete`
    once per trial when it reaches a final state.
    """

    space: Space
    metric: str
    mode: str
    seed: int

    def setup(self, space: Space, *, metric: str, mode: str, seed: int) -> None:
        """Bind the strategy to a sweep (called once, before anything else)."""
        self.space, self.metric, self.mode, self.seed = space, metric, mode, seed

    def limit(self) -> int | None:
        """The most trials this strategy can propose (None: unbounded)."""
        return None

    def suggest(self, trial_id: int) -> dict[str, Any] | None:
        """The configuration of trial ``trial_id``, or None when there is nothing left to try."""
        raise NotImplementedError

    def complete(
        self, trial_id: int, config: dict[str, Any], state: str, value: float | None
    ) -> None:
        """Trial ``trial_id`` ended in ``state`` (done, pruned, failed) with ``value``."""

    def restore(self, trials: list[dict[str, Any]]) -> None:
        """Catch up with the finished trials of a resumed sweep (rows of the store)."""
        for t in trials:
            self.complete(t["id"], t["config"], t["state"], t["value"])


def get_strategy(strategy: Any, space: Space) -> Strategy:
    """A :class:`Strategy` from "grid", "random", "tpe", a Strategy or an Optuna sampler.

    ``None`` picks grid when every searched parameter is a ``wb.grid``, else random.
    """
    from workbench.sweep._space import Grid
    from workbench.sweep.strategies._grid import GridStrategy
    from workbench.sweep.strategies._random import RandomStrategy

    if strategy is None:
        domains = space.domains.values()
        all_grid = bool(domains) and all(isinstance(d, Grid) for d in domains)
        strategy = "grid" if all_grid else "random"
    if isinstance(strategy, Strategy):
        return strategy
    if strategy == "grid":
        return GridStrategy()
    if strategy == "random":
        return RandomStrategy()
    from workbench.sweep.strategies._optuna import OptunaStrategy

    if isinstance(strategy, str) and strategy in OptunaStrategy.NAMES:
        return OptunaStrategy(strategy)
    if type(strategy).__module__.startswith("optuna."):
        return OptunaStrategy(strategy)
    names = ", ".join(repr(n) for n in ("grid", "random", *OptunaStrategy.NAMES))
    raise InvalidValueError(
        f"unknown strategy {strategy!r}: use one of {names}, a workbench Strategy, "
        "or an optuna sampler instance"
    )
