"""The ``checkpoint`` argument of an objective: a per-trial folder on shared storage, and
which step it holds.

An objective that takes a ``checkpoint`` parameter gets a :class:`Checkpoint`: ``path`` is
the trial's own folder (``<storage dir>/<sweep name>.checkpoints/trial-<id>/``, created by
the notebook before the trial runs), ``step`` the step of the last :meth:`Checkpoint.save`
(None: nothing saved, start from scratch). After reporting a step the objective calls
``save(step, state)`` (the state pickled next to the marker) or writes its own files into
``path`` and calls ``save(step)``; a trial run again (after a dead engine, a failure, a
stopped sweep resumed, or a PBT exploit) gets the same folder, ``load()`` gives the state
back, and it resumes after ``step``.

``save`` writes the state to ``state-<step>.pkl``, then a small marker file,
``.workbench-checkpoint.json``, atomically (the step, the state file, and the reports this
attempt made up to the step, so that the notebook can record them even if the engine died
before its reports reached it), and only then removes the previous state file: a trial
killed at any moment leaves a marker and the state of the same step. The notebook reads
the marker before the next attempt.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from typing import Any

__all__ = ["MARKER", "Checkpoint", "read_marker", "write_marker"]

MARKER = ".workbench-checkpoint.json"

log = logging.getLogger("workbench.sweep")


def write_marker(folder: str, step: float, reports: list[Any], state: str | None = None) -> None:
    """Record that the state in ``folder`` is that of ``step`` (in file ``state`` when the
    objective saved one with ``save(step, state)``), with the trial's ``reports``
    ``[(step, metrics, t), ...]`` up to it (atomic: a reader sees the old marker or the new)."""
    path = os.path.join(folder, MARKER)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"step": float(step), "state": state, "reports": [list(r) for r in reports]}, f)
    os.replace(tmp, path)


def read_marker(folder: str) -> dict[str, Any] | None:
    """The marker of checkpoint ``folder`` (``{"step": ..., "reports": [...]}``), or None
    when nothing was saved there (or the folder is missing)."""
    try:
        with open(os.path.join(folder, MARKER)) as f:
            got = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(got, dict) or not isinstance(got.get("step"), (int, float)):
        return None
    got["reports"] = [tuple(r) for r in got.get("reports", [])]
    return got


class Checkpoint:
    """Where a trial keeps its state, and the step it resumes after.

    ``path``: the trial's folder (exists; on the shared storage next to the sweep store).
    ``step``: the step of the last :meth:`save`, or None when the trial starts from scratch.

    >>> def objective(config, report, checkpoint):
    ...     state = checkpoint.load(default={"epoch": 0, "weights": init(config)})
    ...     for epoch in range(state["epoch"] + 1, 31):
    ...         train(state["weights"], config)
    ...         report(step=epoch, accuracy=score(state["weights"]))  # report, then save
    ...         state["epoch"] = epoch
    ...         checkpoint.save(epoch, state)    # pickled: what load() returns next time

    Report a step before saving it: a resumed trial ignores reports up to ``step`` (they
    are recorded), so a step saved before it was reported would never be. Files the
    objective writes itself (``os.path.join(checkpoint.path, ...)``, or
    ``os.fspath(checkpoint)``) should carry the step in their name (``model-12.pt``, loaded
    as ``f"model-{checkpoint.step:g}.pt"``) and be removed only after the next ``save``: a
    trial killed between writing a file and ``save`` then still finds the files of the
    step it resumes from.

    With ``trial_ranks > 1`` every rank gets the same folder; rank 0's ``save`` is the one
    that counts (call it on every rank, after every rank wrote its part).
    """

    def __init__(self, path: str, step: float | None, report: Any) -> None:
        self.path = path
        self.step = step
        self._report = report

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"Checkpoint(path={self.path!r}, step={self.step!r})"

    def save(self, step: float, state: Any = None) -> None:
        """Mark the checkpoint as that of ``step``: ``state`` (anything picklable; None:
        keep only the files the objective wrote into :attr:`path` itself) is what
        :meth:`load` returns when the trial runs again.

        A trial run again resumes after the last saved step: its ``checkpoint.step`` is it,
        and ``report`` ignores steps up to it (they are recorded already). With
        ``trial_ranks > 1``, rank 0's state and step are the ones kept."""
        if isinstance(step, bool) or not isinstance(step, (int, float)):
            raise TypeError(f"checkpoint.save(step) needs the step as a number, got {step!r}")
        self.step = float(step)
        if self._report.rank != 0:
            return
        old = read_marker(self.path)
        name = None
        if state is not None:
            name = f"state-{step:g}.pkl"
            tmp = os.path.join(self.path, f"{name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, os.path.join(self.path, name))
        kept = [r for r in self._report.kept if r[0] <= step]
        write_marker(self.path, step, kept, name)
        if old and old.get("state") and old["state"] != name:  # after the marker moved on
            stale = os.path.join(self.path, old["state"])
            try:
                os.remove(stale)
            except OSError:  # a stale state file stays: never read, the marker moved on
                log.debug("could not remove %s", stale, exc_info=True)

    def load(self, default: Any = None) -> Any:
        """The ``state`` saved with the checkpoint of :attr:`step`, or ``default`` when
        there is none (the trial starts from scratch, or saved files only)."""
        marker = read_marker(self.path)
        if marker is None or not marker.get("state"):
            return default
        with open(os.path.join(self.path, marker["state"]), "rb") as f:
            return pickle.load(f)
