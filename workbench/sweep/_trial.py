"""The engine side of a trial: the ``report`` callback, decisions, sub-communicators.

Reports travel up on the one progress channel (``wb.progress``: ipyparallel data
publication). Decisions travel down through a small JSON file per trial attempt in the
sweep's control folder, written atomically by the notebook and read by the engine at each
report: a busy engine cannot receive ipyparallel messages, but it can read a file. At a
scheduler milestone (an ASHA rung) the engine waits for the decision on that very report,
for at most ``decision_timeout`` seconds, then goes on. Ranks of a multi-rank trial share
rank 0's decision through the trial's communicator, so they always stop together.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from numbers import Real
from typing import Any

from workbench import _spans
from workbench.errors import WorkbenchError
from workbench.progress import check_report, progress
from workbench.sweep._checkpoint import Checkpoint
from workbench.sweep._state import CONTINUE, SKIP, STOP, TrialState

__all__ = [
    "Report",
    "TrialPruned",
    "clear_decision",
    "read_decision",
    "run_batch",
    "run_trial",
    "split_world",
    "write_decision",
]

_POLL = 0.002  # seconds between looks at the decision file while waiting at a milestone


class TrialPruned(WorkbenchError):
    """Raised by ``report`` when the scheduler (or the user) stopped the trial.

    Let it propagate out of the objective: the trial is then recorded as pruned.
    """


def write_decision(path: str, step: float, action: str) -> None:
    """Notebook side: tell the trial reading the decision file ``path`` to ``action``
    (``CONTINUE``, ``STOP`` or ``SKIP``) from ``step`` on."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"step": step, "action": action}, f)
    os.replace(tmp, path)  # atomic: the engine sees the old file or the new one


def clear_decision(path: str) -> None:
    """Notebook side: remove the decision file ``path`` (there may be none yet)."""
    with contextlib.suppress(FileNotFoundError):  # absent: nothing to remove
        os.remove(path)


def read_decision(path: str) -> dict[str, Any] | None:
    """Engine side: the latest decision in the decision file ``path``
    (``{"step": ..., "action": ...}``), or None."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def split_world(key: str, k: int) -> int:
    """On every engine, collectively: split COMM_WORLD into groups of ``k`` consecutive ranks.

    Keeps the sub-communicator in the engine store under ``key`` (ranks past the last full
    group get none); returns this rank's group, or -1.
    """
    from mpi4py import MPI

    from workbench import engine_store

    world = MPI.COMM_WORLD
    group = world.rank // k
    color = group if group < world.size // k else MPI.UNDEFINED
    sub = world.Split(color, world.rank)
    engine_store.put(key, sub)
    return group if sub != MPI.COMM_NULL else -1


class Report:
    """The ``report(step=..., **metrics)`` callback an objective receives.

    ``report.comm`` is the trial's communicator (size ``trial_ranks``), ``report.trial_id``
    its id. With ``trial_ranks > 1`` every rank of the trial calls ``report`` at the same
    steps (it is collective); rank 0's metrics are the ones recorded.

    Parameters
    ----------
    trial_id
        The trial's id.
    comm
        The trial's communicator (``MPI.COMM_SELF`` for a one-rank trial).
    spec
        What the runner sends with every trial: ``control`` (the decision file),
        ``milestones`` (steps where ``report`` waits for a decision) and
        ``decision_timeout`` (how long it waits there, in seconds).
    stream
        Also publish each report live on the progress channel (false in a batch).
    """

    def __init__(
        self, trial_id: int, comm: Any, spec: dict[str, Any], *, stream: bool = True
    ) -> None:
        self.trial_id = trial_id
        self.kept: list[Any] = []  # every report, returned with the result (the record)
        self._stream = stream  # also published live (not for a batch)
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self._path = spec["control"]
        self._milestones = sorted(spec["milestones"])
        self._timeout = float(spec["decision_timeout"])
        # a trial resumed from a checkpoint: steps up to it are recorded already
        resumed = (spec.get("checkpoint") or {}).get("step")
        self.resumed: float | None = None if resumed is None else float(resumed)
        self._next = sum(1 for m in self._milestones if self.resumed is not None and m <= resumed)

    def __call__(self, step: float, **metrics: float | str) -> None:
        """Record ``metrics`` (name=number) at ``step``; raises :class:`TrialPruned` when the
        trial was told to stop. After a resume from a checkpoint, steps up to the
        checkpoint's are ignored (the store has them already)."""
        if self.resumed is not None and step <= self.resumed:
            return
        action = None
        if self.rank == 0:
            numeric = _metrics(step, metrics)
            if numeric:  # what a streamed report's history holds too
                self.kept.append((float(step), numeric, time.time()))
            if self._stream:
                progress(step, None, **metrics)
            action = self._decision(step)
        if self.size > 1:
            action = self.comm.bcast(action, root=0)
        if action == STOP:
            raise TrialPruned(f"trial {self.trial_id} stopped at step {step:g}")

    def _decision(self, step: float) -> str:
        crossing = False
        while self._next < len(self._milestones) and step >= self._milestones[self._next]:
            crossing, self._next = True, self._next + 1
        deadline = time.monotonic() + (self._timeout if crossing else 0.0)
        while True:
            d = read_decision(self._path)
            if d is not None and (d["action"] == STOP or d["step"] >= step):
                return d["action"]
            if time.monotonic() >= deadline:
                return CONTINUE
            time.sleep(_POLL)


def _flush_progress() -> None:
    """Publish the last report now: a throttled one would otherwise leave after the task ended."""
    from workbench.progress import flush

    flush()


def _plain(value: Any) -> Any:
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items() if isinstance(v, Real)}
    return None if value is None else repr(value)[:200]


def _metrics(step: float, metrics: dict[str, Any]) -> dict[str, float]:
    """What a streamed report records (numbers), checked the same way."""
    check_report(step, None, metrics)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, Real)}


def run_trial(
    trial_id: int, config: dict[str, Any], spec: dict[str, Any], *, stream: bool = True
) -> dict[str, Any]:
    """Engine side: run trial ``trial_id``, the objective stored under ``spec["objective"]``
    on ``config``; never raises for the objective's own errors (they come back as
    ``state=TrialState.FAILED`` with the traceback). ``spec`` is described at :class:`Report`,
    plus ``objective``, ``comm`` (engine-store keys) and ``pass_comm``.
    ``seconds`` in the result is how long the objective ran, ``reports`` every report
    (also streamed live unless ``stream`` is false: the stream can trail the result). A
    trial told to skip before it started returns ``state=SKIP`` without running."""
    from mpi4py import MPI

    from workbench import engine_store

    objective = engine_store.get(spec["objective"])
    comm = engine_store.get(spec["comm"]) if spec["comm"] else MPI.COMM_SELF
    told = read_decision(spec["control"]) if comm.rank == 0 else None
    if comm.size > 1:  # every rank of the trial starts, or none does
        told = comm.bcast(told, root=0)
    if told is not None and told["action"] == SKIP:
        return {"state": SKIP, "seconds": 0.0, "reports": []}
    report = Report(trial_id, comm, spec, stream=stream)
    args = (config, report, comm) if spec["pass_comm"] else (config, report)
    kwargs = {}
    if spec.get("checkpoint"):  # the objective takes checkpoint=
        ck = spec["checkpoint"]
        kwargs["checkpoint"] = Checkpoint(ck["path"], ck["step"], report)
    start = time.perf_counter()
    t0 = _spans.now() if _spans.on else 0
    try:
        result = {"state": TrialState.DONE, "value": _plain(objective(*args, **kwargs))}
    except TrialPruned as e:
        result = {"state": TrialState.PRUNED, "error": str(e)}
    except Exception as e:
        result = {
            "state": TrialState.FAILED,
            "error": traceback.format_exc(),
            "ename": type(e).__name__,
        }
    finally:
        if report.rank == 0 and stream:
            _flush_progress()
    result["seconds"] = time.perf_counter() - start
    result["reports"] = report.kept
    if t0 and _spans.on:
        _spans.add(
            "trial",
            "sweep",
            t0,
            0,
            {"trial": trial_id, "state": getattr(result["state"], "value", result["state"])},
        )
    return result


def run_batch(trials: list[tuple[int, dict[str, Any], str]], spec: dict[str, Any]) -> list[Any]:
    """Engine side: run short ``trials`` ``(id, config, control file)`` one after the other
    in one task, so they share one round trip (``spec`` as for :func:`run_trial`). Their
    reports come back in each result (``reports``) rather than streamed; a stop written to a
    trial's control file still acts at its next report."""
    return [
        run_trial(trial_id, config, dict(spec, control=control), stream=False)
        for trial_id, config, control in trials
    ]
