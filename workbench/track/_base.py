"""The tracker interface: a :class:`Tracker` opens one :class:`Run` per trial or training."""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.errors import InvalidTypeError

__all__ = ["Run", "Tracker", "finite", "kept_runs", "plain_params", "trackers"]


class Run(abc.ABC):
    """One recorded run (a sweep trial, a training): metrics per step, then its end."""

    @abc.abstractmethod
    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` (name -> number) at ``step``."""

    @abc.abstractmethod
    def close(self, state: str, *, values: Mapping[str, float] | None = None) -> None:
        """End the run: ``state`` is ``done``, ``pruned`` or ``failed``; ``values`` are its
        final values (the objectives of a sweep trial)."""

    def logged_steps(self, metric: str) -> set[float]:
        """The steps of ``metric`` this run already holds (a run taken up again after an
        interrupted sweep); none by default."""
        return set()

    @abc.abstractmethod
    def attach(self, name: str, text: str) -> None:
        """Keep the text file ``name`` with the run (an artifact: the timeline of a
        training and its summary)."""


class Tracker(abc.ABC):
    """Where runs are recorded; picklable (``wb.train.fit`` takes it to the engines)."""

    @abc.abstractmethod
    def open_run(
        self, group: str, name: str, params: Mapping[str, Any], *, trial: int | None = None
    ) -> Run:
        """Start run ``name`` of ``group`` (the sweep's name, or the training's) with its
        ``params``; ``trial`` is the sweep trial's id (None for a training run)."""

    @abc.abstractmethod
    def recorded_trials(self, group: str) -> set[int]:
        """The ids of the trials of sweep ``group`` already recorded to their end (a
        resumed sweep records the others only)."""

    @abc.abstractmethod
    def mark_best(self, group: str, trial: int) -> None:
        """Mark the (ended) run of trial ``trial`` the best of sweep ``group``, and no
        other (a resumed sweep may have found a better one)."""


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with values a tracker stores as they are (numbers, strings, booleans),
    the others as their repr."""
    return {
        str(k): v if isinstance(v, (bool, int, float, str)) else repr(v) for k, v in params.items()
    }


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are finite numbers, as floats."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def trackers(callbacks: Any) -> list[Tracker]:
    """``callbacks`` as a list of trackers, or :class:`InvalidTypeError` naming what is not."""
    if callbacks is None:
        return []
    try:
        items = [callbacks] if isinstance(callbacks, Tracker) else list(callbacks)
    except TypeError:  # not a list: said below, as what it is
        items = [callbacks]
    for c in items:
        if not isinstance(c, Tracker):
            raise InvalidTypeError(
                "callbacks must be trackers: wb.track.mlflow(...), wb.track.tensorboard(...) "
                f"or a workbench.track.Tracker of your own; got {c!r}"
            )
    return items


class _Kept(Run):
    """A run whose failures are warned about once, then it records nothing more: training
    in step with other ranks must not stop (or wait) because a tracker failed."""

    def __init__(self, tracker: Tracker, run: Run | None, error: BaseException | None) -> None:
        self.where, self.run = type(tracker).__name__, run
        if error is not None:
            self._off(error)

    def _off(self, error: BaseException) -> None:
        warnings.warn(f"{self.where}: recording stopped: {type(error).__name__}: {error}",
                      stacklevel=3)  # fmt: skip
        self.run = None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if self.run is not None:
            try:
                self.run.log(step, metrics)
            except Exception as e:  # warned, then off
                self._off(e)

    def attach(self, name: str, text: str) -> None:
        if self.run is not None:
            try:
                self.run.attach(name, text)
            except Exception as e:  # warned, then off
                self._off(e)

    def close(self, state: str, *, values: Mapping[str, float] | None = None) -> None:
        if self.run is not None:
            try:
                self.run.close(state, values=values)
            except Exception as e:  # warned, then off
                self._off(e)


def kept_runs(
    given: Sequence[Tracker], group: str, name: str, params: Mapping[str, Any]
) -> list[Run]:
    """A run of ``name`` in each tracker ``given`` that warns once and stops recording when its
    tracker fails, instead of raising (for code whose ranks must stay in step)."""
    out: list[Run] = []
    for t in given:
        try:
            out.append(_Kept(t, t.open_run(group, name, params), None))
        except Exception as e:  # warned by _Kept
            out.append(_Kept(t, None, e))
    return out
