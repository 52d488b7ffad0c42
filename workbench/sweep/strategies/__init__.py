"""Search strategies: what configuration to try next.

Grid, random (seeded) and Optuna samplers, one module each behind the small :class:`Strategy`
interface (Optuna's ``samplers/`` layout); :func:`get_strategy` turns what a user passed to
``sweep(strategy=...)`` into one.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InvalidValueError
from workbench.sweep._space import Grid, Space
from workbench.sweep.strategies._base import Strategy
from workbench.sweep.strategies._grid import GridStrategy
from workbench.sweep.strategies._optuna import OptunaStrategy
from workbench.sweep.strategies._random import RandomStrategy

__all__ = ["GridStrategy", "OptunaStrategy", "RandomStrategy", "Strategy", "get_strategy"]


def get_strategy(strategy: str | Strategy | Any | None, space: Space) -> Strategy:
    """A :class:`Strategy` from ``strategy``: "grid", "random", "tpe", a Strategy (returned as
    it is) or an Optuna sampler instance.

    ``None`` picks grid when every searched parameter of ``space`` is a ``wb.grid``, else
    random.
    """
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
    if isinstance(strategy, str) and strategy in OptunaStrategy.NAMES:
        return OptunaStrategy(strategy)
    if type(strategy).__module__.startswith("optuna."):
        return OptunaStrategy(strategy)
    names = ", ".join(repr(n) for n in ("grid", "random", *OptunaStrategy.NAMES))
    raise InvalidValueError(
        f"unknown strategy {strategy!r}: use one of {names}, a workbench Strategy, "
        "or an optuna sampler instance"
    )
