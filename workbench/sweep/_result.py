"""What a sweep returns: every trial as a dict, the best one, a pandas view, the widget."""

from __future__ import annotations

from typing import Any

from workbench.errors import MissingDependencyError
from workbench.sweep._state import TrialState

__all__ = ["SweepResult"]


class SweepResult:
    """The trials of sweep ``name`` as recorded in the store when the sweep returned.

    ``sweep()`` makes it; its arguments are kept as attributes of the same names.

    Parameters
    ----------
    name
        The sweep's name in the store.
    storage
        The store's path (or ``":memory:"``).
    metric
        The optimised metric (None: the objective's return value).
    mode
        ``"max"`` or ``"min"``.
    trials
        Every trial as a dict (rows of :meth:`SweepStore.trials`): ``id``, ``state`` (a
        :class:`TrialState`), ``config``, ``value``, ``best``, ``step``, ``attempt``,
        ``failures``, ``ranks``, ``error``, ``started``, ``finished``.
    curves
        Trial id -> the ``(step, metric value)`` it reported, in order.
    """

    def __init__(
        self,
        name: str,
        storage: str,
        metric: str | None,
        mode: str,
        trials: list[dict[str, Any]],
        curves: dict[int, list[tuple[float, float]]],
    ) -> None:
        self.name, self.storage, self.metric, self.mode = name, storage, metric, mode
        self.trials = trials
        self.curves = curves

    @property
    def best(self) -> dict[str, Any] | None:
        """The finished (``done``) trial with the best value, or None if none finished."""
        done = [t for t in self.trials if t["state"] == TrialState.DONE and t["value"] is not None]
        if not done:
            return None
        sign = 1.0 if self.mode == "max" else -1.0
        return max(done, key=lambda t: (sign * t["value"], -t["id"]))

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The configuration of :attr:`best`."""
        return None if self.best is None else self.best["config"]

    @property
    def best_value(self) -> float | None:
        """The value of :attr:`best`."""
        return None if self.best is None else self.best["value"]

    def counts(self) -> dict[str, int]:
        """Number of trials in each state (keys are :class:`TrialState` members)."""
        out: dict[str, int] = {}
        for t in self.trials:
            out[t["state"]] = out.get(t["state"], 0) + 1
        return out

    def to_pandas(self) -> Any:
        """A DataFrame with one row per trial; configuration values in ``config.<name>``."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError(
                "result.to_pandas() needs pandas: pip install pandas"
            ) from None
        rows = []
        for t in self.trials:
            row = {k: v for k, v in t.items() if k != "config"}
            row["state"] = str(t["state"])  # the plain name: DataFrames get written to files
            row.update({f"config.{k}": v for k, v in t["config"].items()})
            if t.get("started") and t.get("finished"):
                row["duration"] = t["finished"] - t["started"]
            rows.append(row)
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()

    def show(self, *, widgets: bool | None = None) -> Any:
        """Draw the sweep table and return the view: a widget with ``widgets=True``, text
        with False, None picks (a widget in a notebook front end, text elsewhere)."""
        from workbench.widgets.sweep_table import make_sweep_view

        view = make_sweep_view(self.metric, self.mode, widgets=widgets, controls=False)
        view.update(self.trials, self.curves, final=True)
        return view

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        best = "" if self.best is None else f", best {self.metric or 'value'}={self.best_value:.4g}"
        return f"<SweepResult {self.name!r}: {len(self.trials)} trials ({counts}){best}>"
