"""The plan of one sweep: what ``sweep()`` checked and the runner carries out."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.sweep.schedulers import Scheduler
from workbench.sweep.strategies import Strategy

__all__ = ["Plan"]


@dataclass(kw_only=True)
class Plan:
    """Everything the runner needs to know about one sweep (checked by ``sweep()``); made
    with keyword arguments only.

    ``name``: the sweep's name in the store; ``objective``: the user's function, which gets
    the trial's communicator too when ``pass_comm``; ``metric``/``mode``: what is optimised
    and in which direction; ``n_trials``: how many trials in all; ``strategy``,
    ``scheduler``: bound to this sweep; ``trial_ranks``: engines per trial;
    ``max_failures``: retries of a raising trial; ``max_restarts``: pool restarts after
    dead engines; ``decision_timeout``: seconds a trial waits for a decision at a
    milestone; ``control_dir``: the folder of the decision files; ``timeout``: seconds
    for the whole sweep (None: no limit); ``poll``: seconds between two looks at the
    running trials; ``depth``: trials in flight per group of engines; ``metrics``: the
    objectives of a multi-objective sweep, name -> mode (``metric``/``mode`` are then the
    first of them), None for one objective; ``checkpoint_dir``: the folder of the trials'
    checkpoint folders when the objective takes ``checkpoint`` (None otherwise).
    """

    name: str
    objective: Callable[..., Any]
    pass_comm: bool
    metric: str | None
    mode: str
    n_trials: int
    strategy: Strategy
    scheduler: Scheduler
    trial_ranks: int
    max_failures: int
    max_restarts: int
    decision_timeout: float
    control_dir: str
    timeout: float | None
    poll: float
    depth: int = 2  # trials in flight per group: the next one waits on the engine, no round trip
    metrics: dict[str, str] | None = None
    checkpoint_dir: str | None = None

    def control_file(self, trial_id: int, attempt: int) -> str:
        """The decision file of attempt ``attempt`` of trial ``trial_id``."""
        return os.path.join(self.control_dir, f"trial-{trial_id}-{attempt}.json")

    def better(self, a: float, b: float) -> float:
        """The better of two metric values ``a`` and ``b``."""
        return max(a, b) if self.mode == "max" else min(a, b)
