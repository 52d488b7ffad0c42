"""Search strategies: what configuration to try next.

Grid, random (seeded) and Optuna samplers, one module each behind the small :class:`Strategy`
base (Optuna's ``samplers/`` layout); :func:`get_strategy` turns what a user passed to
``sweep(strategy=...)`` into one: a name of the registry (``"grid"``, ``"random"``,
``"tpe"``, ``"nsga2"``), a Strategy, or an Optuna sampler instance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from workbench.errors import InvalidValueError
from workbench.sweep._space import Grid, Space
from workbench.sweep.strategies._base import Strategy
from workbench.sweep.strategies._grid import GridStrategy
from workbench.sweep.strategies._optuna import OptunaStrategy
from workbench.sweep.strategies._random import RandomStrategy

__all__ = ["GridStrategy", "OptunaStrategy", "RandomStrategy", "Strategy", "get_strategy"]

_NAMED: dict[str, Callable[[], Strategy]] = {
    "grid": GridStrategy,
    "random": RandomStrategy,
    **{name: functools.partial(OptunaStrategy, name) for name in OptunaStrategy.NAMES},
}


def get_strategy(strategy: str | Strategy | Any | None, space: Space) -> Strategy:
    """A :class:`Strategy` from ``strategy``: "grid", "random", "tpe", "nsga2", a Strategy
    (returned as it is) or an Optuna sampler instance.

    ``None`` picks grid when every searched parameter of ``space`` is a ``wb.grid``, else
    random.
    """
    if strategy is None:
        domains = space.domains.values()
        all_grid = bool(domains) and all(isinstance(d, Grid) for d in domains)
        strategy = "grid" if all_grid else "random"
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, str) and strategy in _NAMED:
        return _NAMED[strategy]()
    if type(strategy).__module__.startswith("optuna."):
        return OptunaStrategy(strategy)
    names = ", ".join(repr(n) for n in _NAMED)
    raise InvalidValueError(
        f"unknown strategy {strategy!r}: use one of {names}, a workbench Strategy, "
        "or an optuna sampler instance"
    )
