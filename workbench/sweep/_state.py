"""What a trial is in (:class:`TrialState`) and what the notebook tells it (decisions).

A state is a ``str`` enum, as Optuna's ``TrialState``: a member equals (and hashes as) its
plain value, so ``trial["state"] == "done"`` keeps working, and it prints as the plain value
(``f"{state}"`` is ``done``, ``result.counts()`` shows ``{'done': 2}``). The store writes
and reads the plain values, so stores written before the enum existed open unchanged.

Decisions travel from the notebook to a running trial through its decision file:
``CONTINUE`` and ``STOP`` are what a :class:`~workbench.sweep.Scheduler` returns, ``SKIP``
tells a trial still queued on its engines to return without running. ``EXPLOIT`` is what
population-based training returns for a trial that should copy a better trial's checkpoint
(the runner stops it, copies, and runs it again with a perturbed configuration).
"""

from __future__ import annotations

import enum

__all__ = ["CONTINUE", "EXPLOIT", "SKIP", "STOP", "TrialState"]

CONTINUE = "continue"
STOP = "stop"
SKIP = "skip"
EXPLOIT = "exploit"


class TrialState(str, enum.Enum):
    """The state of a sweep trial, as recorded in the store and shown by the sweep table.

    ``PENDING`` (not started, or going to run again), ``RUNNING``, then one of the final
    states ``DONE``, ``PRUNED`` (stopped by the scheduler or the user) and ``FAILED``.
    ``QUEUED`` is shown only: a trial waiting on its engines behind another one is
    ``RUNNING`` in the store (a resume reruns it).
    """

    PENDING = "pending"
    RUNNING = "running"
    QUEUED = "queued"
    DONE = "done"
    PRUNED = "pruned"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # printed dicts and lists read as plain values: {'done': 2}
        return repr(self.value)

    def is_finished(self) -> bool:
        """True for the states a trial never leaves: done, pruned and failed."""
        return self in (TrialState.DONE, TrialState.PRUNED, TrialState.FAILED)
