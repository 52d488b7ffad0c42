"""Search strategies: grid, random (seeded) and Optuna samplers behind one small interface."""

from workbench.sweep.strategies._base import Strategy, get_strategy
from workbench.sweep.strategies._grid import GridStrategy
from workbench.sweep.strategies._optuna import OptunaStrategy
from workbench.sweep.strategies._random import RandomStrategy

__all__ = ["GridStrategy", "OptunaStrategy", "RandomStrategy", "Strategy", "get_strategy"]
