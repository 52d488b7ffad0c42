"""What a trial is in (:class:`TrialState`) and what the notebook tells it (decisions).

:class:`TrialState` lives with the trial record in :mod:`workbench.trials` (below the
widgets, which show it) and is re-exported here. A state is a ``str`` enum, as Optuna's
``TrialState``: a member equals (and hashes as) its plain value, so ``trial.state ==
"done"`` keeps working, and it prints as the plain value (``f"{state}"`` is ``done``,
``result.counts()`` shows ``{'done': 2}``). The store writes and reads the plain values, so
stores written before the enum existed open unchanged.

Decisions travel from the notebook to a running trial through its decision file:
``CONTINUE`` and ``STOP`` are what a :class:`~workbench.sweep.Scheduler` returns, ``SKIP``
tells a trial still queued on its engines to return without running. ``EXPLOIT`` is what
population-based training returns for a trial that should copy a better trial's checkpoint
(the runner asks the scheduler which one, stops the trial, copies, and runs it again with
the configuration the scheduler explores).
"""

from __future__ import annotations

from workbench.trials import TrialState

__all__ = ["CONTINUE", "EXPLOIT", "SKIP", "STOP", "TrialState"]

CONTINUE = "continue"
STOP = "stop"
SKIP = "skip"
EXPLOIT = "exploit"
