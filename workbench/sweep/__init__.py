"""Hyperparameter sweeps on the engine pool: ``sweep(objective, space, ...)``.

>>> from workbench.sweep import ASHA, choice, loguniform, sweep
>>> def objective(config, report):                 # runs on an engine
...     for epoch in range(1, 28):
...         report(step=epoch, accuracy=train_and_score(config))  # TrialPruned when stopped
>>> result = sweep(objective, {"lr": loguniform(1e-4, 1e-1), "act": choice(["relu", "tanh"])},
...                n_trials=50, scheduler=ASHA(max_resource=27), metric="accuracy")
>>> result.best, result.to_pandas(), result.show()
>>> result.plot(), result.to_optuna()              # inline SVG charts; an optuna.Study
>>> sweep(objective, space, n_trials=50, metrics={"accuracy": "max", "ms": "min"}).pareto_front()
>>> sweep(objective, space, n_trials=50, optuna_storage="sqlite:///o.db")  # optuna-dashboard, live

Everything a user names lives here (this is the one place to import from):

- :func:`sweep` runs a sweep and returns a :class:`SweepResult` (every trial, the best
  one, learning curves, ``pareto_front()`` of several objectives (``metrics=``),
  ``to_pandas()``, ``plot()``, ``to_optuna()``, ``show()``). ``workbench.sweep`` as an
  attribute of the top package (``wb.sweep``) is this function; ``from workbench.sweep
  import X`` imports from this module.
- Search spaces: :func:`choice`, :func:`grid`, :func:`uniform`, :func:`loguniform`,
  :func:`randint` (and fixed values), checked when they are made. They return the domain
  classes :class:`Choice`, :class:`Grid`, :class:`Uniform`, :class:`LogUniform`,
  :class:`RandInt` (all :class:`Domain`); :class:`Space` is a checked ``{name: domain or
  value}`` dict, what a strategy samples from.
- Strategies (``strategy=``): :class:`GridStrategy` ("grid"), :class:`RandomStrategy`
  ("random", seeded), :class:`OptunaStrategy` ("tpe", "nsga2" or any Optuna sampler), all
  implementing the abstract :class:`Strategy` (``suggest``) and declaring what they can do
  (``multi_objective``, ``learns_from_results``); :func:`get_strategy` turns a name into one.
- Schedulers (``scheduler=``): :class:`FIFO` (None: no early stopping), :class:`ASHA`
  ("asha"), :class:`MedianStopping` ("median"), :class:`PBT` ("pbt": population-based
  training on checkpoints), all implementing the abstract :class:`Scheduler`, whose
  ``on_report`` returns :data:`CONTINUE` or :data:`STOP` (PBT also :data:`EXPLOIT`, then
  ``target`` names the trial to copy and ``explore`` the new configuration), and declaring
  what they need (``multi_objective``, ``needs_checkpoint``, ``changes_config``);
  :func:`get_scheduler` turns a name into one.
- Checkpoints: an objective with a ``checkpoint`` parameter gets a :class:`Checkpoint`
  (``path``: the trial's folder next to the store, ``step``: the step saved there or None,
  ``save(step)``); a trial run again (dead engine, stopped sweep resumed, PBT exploit)
  resumes from it, and every step is recorded once.
- Trials: :class:`Trial` (a frozen record: ``id``, ``state``, ``config``, ``value``,
  ``values``, ``best``, ``step``, ``attempt``, ``failures``, ``ranks``, ``error``,
  ``started``, ``finished``, ``lineage``, ``duration``; also read by key, ``t["value"]``,
  as the dicts trials once were), :class:`TrialState` (a ``str`` enum: pending, running,
  queued, done, pruned, failed; equal to the plain names), :class:`Report` (the ``report``
  callback an objective gets), :class:`TrialPruned` (what ``report`` raises when the trial
  is stopped).
- :class:`SweepStore`: the durable SQLite record (WAL, one writer: the notebook); a sweep
  is resumable by name.

Trials take one or ``trial_ranks`` engines (an MPI sub-communicator each). Importing this
package is light: numpy only; optuna, pandas and ipyparallel load on use.
"""

from __future__ import annotations

from workbench.sweep._checkpoint import Checkpoint
from workbench.sweep._result import SweepResult
from workbench.sweep._setup import sweep
from workbench.sweep._space import (
    Choice,
    Domain,
    Grid,
    LogUniform,
    RandInt,
    Space,
    Uniform,
    choice,
    grid,
    loguniform,
    randint,
    uniform,
)
from workbench.sweep._state import CONTINUE, EXPLOIT, STOP, TrialState
from workbench.sweep._store import SweepStore
from workbench.sweep._trial import Report, TrialPruned
from workbench.sweep.schedulers import ASHA, FIFO, PBT, MedianStopping, Scheduler, get_scheduler
from workbench.sweep.strategies import (
    GridStrategy,
    OptunaStrategy,
    RandomStrategy,
    Strategy,
    get_strategy,
)
from workbench.trials import Trial

__all__ = [
    "ASHA",
    "CONTINUE",
    "EXPLOIT",
    "FIFO",
    "PBT",
    "STOP",
    "Checkpoint",
    "Choice",
    "Domain",
    "Grid",
    "GridStrategy",
    "LogUniform",
    "MedianStopping",
    "OptunaStrategy",
    "RandInt",
    "RandomStrategy",
    "Report",
    "Scheduler",
    "Space",
    "Strategy",
    "SweepResult",
    "SweepStore",
    "Trial",
    "TrialPruned",
    "TrialState",
    "Uniform",
    "choice",
    "get_scheduler",
    "get_strategy",
    "grid",
    "loguniform",
    "randint",
    "sweep",
    "uniform",
]
