"""Sweep trials as records: :class:`Trial` (a frozen dataclass) and :class:`TrialState`.

What a sweep knows of one trial: its id, state, configuration, final value (and the value
of each objective of a multi-objective sweep), the best and last reported step, attempts,
failures, the engines it ran on, its error, when it started and finished, and the exploits
of population-based training (``lineage``). The sweep's store builds them, its runner
replaces them (``dataclasses.replace``) as trials move on, and both the sweep's result and
the sweep table read them; so does this module's choice of the best trial (:func:`best`)
and of the Pareto front (:func:`front`), written once for all of them. It sits below the
widgets and the sweep package (it imports neither).

>>> t = Trial(id=3, state="done", config={"lr": 0.1}, value=0.93)
>>> t.value, t["value"], t.get("values"), t.to_dict()["state"]   # attribute or mapping access
(0.93, 0.93, None, 'done')
>>> best([t], "max") is t
True

Trials were plain dicts before: reading one as a mapping (``trial["config"]``,
``trial.get("error")``, ``dict(trial)``) keeps working; :meth:`Trial.to_dict` gives a dict.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench._util import non_dominated

__all__ = ["Trial", "TrialState", "best", "finished", "front", "scored"]


class TrialState(str, enum.Enum):
    """The state of a sweep trial, as recorded in the store and shown by the sweep table.

    ``PENDING`` (not started, or going to run again), ``RUNNING``, then one of the final
    states ``DONE``, ``PRUNED`` (stopped by the scheduler or the user) and ``FAILED``.
    ``QUEUED`` is shown only: a trial waiting on its engines behind another one is
    ``RUNNING`` in the store (a resume reruns it).

    A ``str`` enum, as Optuna's ``TrialState``: a member equals (and hashes as) its plain
    value, so ``trial.state == "done"`` holds, and it prints as the plain value
    (``f"{state}"`` is ``done``, ``{TrialState.DONE: 2}`` prints ``{'done': 2}``).
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


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One trial of a sweep (fields keyword-only; ``state`` may be given as its plain name).

    ``id`` (from 0), ``state`` (a :class:`TrialState`), ``config`` (parameter values),
    ``value`` (the final value of the optimised metric, None without one), ``values``
    (metric -> final value of each objective of a multi-objective sweep, else None),
    ``best`` (the best reported value of the metric), ``step`` (the last step reported),
    ``attempt`` (how many times it was started), ``failures`` (attempts that failed),
    ``ranks`` (the engines of its last attempt), ``error`` (the traceback of its last
    failure), ``started``/``finished`` (``time.time()`` of its last start and of its end),
    ``lineage`` (population-based training: every exploit, ``{"from", "step", "old",
    "new", ...}``; None without any).
    """

    id: int
    state: TrialState = TrialState.PENDING
    config: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    values: dict[str, float] | None = None
    best: float | None = None
    step: float | None = None
    attempt: int = 0
    failures: int = 0
    ranks: list[int] | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    lineage: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.state, TrialState):  # a plain name ("done") is checked here
            object.__setattr__(self, "state", TrialState(self.state))

    @property
    def duration(self) -> float | None:
        """Seconds from the start of its last attempt to its end (None unless both are known)."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def objective_values(self, metrics: Sequence[str]) -> list[float] | None:
        """The value of each of ``metrics``, in order: from :attr:`values` (from
        :attr:`value` for a trial of one objective, whose ``values`` is None); None when
        any is missing or not a finite number."""
        if self.values is not None:
            got = [self.values.get(m) for m in metrics]
        elif len(metrics) == 1:
            got = [self.value]
        else:
            return None
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in got):
            return None
        return [float(v) for v in got if v is not None]

    # -- read as the mapping it used to be ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (the same objects, not copies)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``trial[key]``, or ``default`` when ``key`` is not a field."""
        return getattr(self, key) if key in _FIELDS else default

    def keys(self) -> tuple[str, ...]:
        """The field names, in order (so ``dict(trial)`` works)."""
        return _FIELDS

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` of every field, in order."""
        return list(self.to_dict().items())

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Trial))


def finished(trials: Iterable[Trial]) -> list[Trial]:
    """The done trials that have a value, in the order they finished (ties by id)."""
    done = [t for t in trials if t.state == TrialState.DONE and t.value is not None]
    return sorted(done, key=lambda t: (t.finished or 0.0, t.id))


def best(trials: Iterable[Trial], mode: str) -> Trial | None:
    """The done trial with the best value (``mode``: ``"max"`` or ``"min"``), the lowest id
    of those on a tie; None when no trial is done with a value."""
    sign = 1.0 if mode == "max" else -1.0
    ranked = [
        ((sign * t.value, -t.id), t)
        for t in trials
        if t.state == TrialState.DONE and t.value is not None
    ]
    return max(ranked, key=lambda pair: pair[0])[1] if ranked else None


def scored(trials: Iterable[Trial], metrics: Sequence[str]) -> list[tuple[Trial, list[float]]]:
    """The done trials with a finite value of each of ``metrics``, with those values
    (:meth:`Trial.objective_values`)."""
    out = []
    for t in trials:
        if t.state == TrialState.DONE and (v := t.objective_values(metrics)) is not None:
            out.append((t, v))
    return out


def front(trials: Iterable[Trial], objectives: Mapping[str, str]) -> list[Trial]:
    """The Pareto front of the done trials over ``objectives`` (metric -> ``"max"`` or
    ``"min"``), in the order given: no other done trial is at least as good in every
    objective and better in one. With one objective, the trials with the best value."""
    pairs = scored(trials, list(objectives))
    keep = non_dominated([v for _, v in pairs], [m == "max" for m in objectives.values()])
    return [t for (t, _), k in zip(pairs, keep, strict=True) if k]
