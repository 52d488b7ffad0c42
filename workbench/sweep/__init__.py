"""Hyperparameter sweeps on the engine pool: ``sweep(objective, space, ...)``.

- search spaces: :func:`choice`, :func:`uniform`, :func:`loguniform`, :func:`randint`,
  :func:`grid` (and fixed values), checked when they are made;
- strategies: grid, random (seeded), Optuna samplers (``strategy="tpe"``);
- schedulers: none, :class:`ASHA`, :class:`MedianStopping`;
- a durable SQLite store (WAL, one writer: the notebook), resumable by name;
- trials of one or ``trial_ranks`` engines (an MPI sub-communicator each).

Importing this package is light: numpy only; optuna, pandas and ipyparallel load on use.
"""

from __future__ import annotations

from workbench.sweep._result import SweepResult
from workbench.sweep._setup import sweep
from workbench.sweep._space import choice, grid, loguniform, randint, uniform
from workbench.sweep._store import SweepStore
from workbench.sweep._trial import Report, TrialPruned
from workbench.sweep.schedulers import ASHA, FIFO, MedianStopping, Scheduler
from workbench.sweep.strategies import GridStrategy, OptunaStrategy, RandomStrategy, Strategy

__all__ = [
    "ASHA",
    "FIFO",
    "GridStrategy",
    "MedianStopping",
    "OptunaStrategy",
    "RandomStrategy",
    "Report",
    "Scheduler",
    "Strategy",
    "SweepResult",
    "SweepStore",
    "TrialPruned",
    "choice",
    "grid",
    "loguniform",
    "randint",
    "sweep",
    "uniform",
]
