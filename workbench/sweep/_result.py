"""What a sweep returns: every trial (a :class:`~workbench.trials.Trial`), the best one, the
Pareto front of several objectives, a pandas view, charts, an Optuna study, the widget."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench import trials as _trials
from workbench.errors import InvalidValueError, MissingDependencyError
from workbench.trials import Trial

if TYPE_CHECKING:
    from workbench.sweep._space import Domain, Space

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
        The optimised metric (None: the objective's return value); with several objectives,
        the first of ``metrics``.
    mode
        ``"max"`` or ``"min"`` (of ``metric``).
    trials
        Every trial as a :class:`~workbench.trials.Trial` (as :meth:`SweepStore.trials`
        gives them): ``id``, ``state`` (a :class:`TrialState`), ``config``, ``value``,
        ``values`` (metric -> value, with several objectives), ``best``, ``step``,
        ``attempt``, ``failures``, ``ranks``, ``error``, ``started``, ``finished``,
        ``lineage``; read as attributes (``t.value``) or, as the dicts they once were, by
        key (``t["value"]``).
    curves
        Trial id -> the ``(step, metric value)`` it reported, in order.
    space
        The sweep's checked :class:`~workbench.sweep.Space` (None when not known: Optuna
        distributions are then inferred from the values tried).
    metrics
        The objectives of a multi-objective sweep, name -> ``"max"`` or ``"min"``, in order;
        None for one objective.
    checkpoints
        The folder of the trials' checkpoint folders (None when the objective takes no
        ``checkpoint``); :meth:`checkpoint_path` names a trial's.
    """

    def __init__(
        self,
        name: str,
        storage: str,
        metric: str | None,
        mode: str,
        trials: Sequence[Trial],
        curves: dict[int, list[tuple[float, float]]],
        *,
        space: Space | None = None,
        metrics: dict[str, str] | None = None,
        checkpoints: str | None = None,
    ) -> None:
        self.name, self.storage, self.metric, self.mode = name, storage, metric, mode
        self.trials = list(trials)
        self.curves = curves
        self.space = space
        self.metrics = dict(metrics) if metrics else None
        self.checkpoints = checkpoints

    def checkpoint_path(self, trial_id: int) -> str:
        """The checkpoint folder of trial ``trial_id`` (e.g. of ``result.best.id``)."""
        if self.checkpoints is None:
            raise InvalidValueError(
                f"sweep {self.name!r} has no checkpoints: its objective takes no `checkpoint`"
            )
        return os.path.join(self.checkpoints, f"trial-{trial_id}")

    @property
    def objectives(self) -> dict[str, str]:
        """Every objective, name -> ``"max"``/``"min"``: ``metrics``, or the one ``metric``
        (``"value"`` when the objective's return value is optimised)."""
        return dict(self.metrics) if self.metrics else {self.metric or "value": self.mode}

    @property
    def domains(self) -> dict[str, Domain]:
        """The searched parameters of the space (empty when the space is not known)."""
        return {} if self.space is None else self.space.domains

    def objective_values(self, trial: Trial) -> list[float] | None:
        """The value of each objective of ``trial`` (one of :attr:`trials`), in the order of
        :attr:`objectives`; None when any is missing or not a finite number."""
        return trial.objective_values(list(self.objectives))

    def pareto_front(self) -> list[Trial]:
        """The non-dominated finished (``done``) trials, by id: no other done trial is at
        least as good in every objective and better in one. With one objective, the
        trials with the best value."""
        return _trials.front(self.trials, self.objectives)

    def to_optuna(self, storage: str | Any | None = None, *, study_name: str | None = None) -> Any:
        """An ``optuna.Study`` holding every finished trial, for Optuna's analysis tools.

        Parameters with the distributions of the sweep's space (uniform/loguniform ->
        ``FloatDistribution(log=...)``, randint -> ``IntDistribution``, choice/grid ->
        ``CategoricalDistribution``; fixed values go to each trial's ``user_attrs``, with
        ``workbench_trial``, the id here), the value of every objective, the learning curve
        of ``metric`` as intermediate values, the state (done -> COMPLETE, pruned ->
        PRUNED, failed -> FAIL), the direction(s) from the mode(s). So
        ``optuna.visualization.plot_optimization_history(study)``,
        ``plot_parallel_coordinate``, ``plot_param_importances``,
        ``plot_intermediate_values`` and, with several objectives, ``plot_pareto_front``
        work on it (they need plotly).

        Parameters
        ----------
        storage
            None: an in-memory study. An Optuna storage URL such as
            ``"sqlite:///optuna.db"`` (or storage object): the study is written there, and
            ``optuna-dashboard sqlite:///optuna.db`` shows it.
        study_name
            The study's name (default: the sweep's name); it must not exist in ``storage``.
        """
        from workbench.sweep._export import to_optuna

        return to_optuna(self, storage, study_name=study_name)

    def plot(self) -> Any:
        """The common views of the sweep as inline SVG charts (no plotting library needed):
        each finished trial's value with the best so far, each searched parameter against
        the metric, the learning curves coloured by final state and, with several
        objectives, the Pareto front. Returns an IPython ``HTML`` display object (a notebook
        shows it; ``.data`` is the HTML)."""
        from workbench.sweep._plots import sweep_plots

        return sweep_plots(self)

    @property
    def best(self) -> Trial | None:
        """The finished (``done``) trial with the best value (the lowest id on a tie), or
        None if none finished."""
        return _trials.best(self.trials, self.mode)

    @property
    def best_config(self) -> dict[str, Any] | None:
        """The configuration of :attr:`best`."""
        best = self.best
        return None if best is None else best.config

    @property
    def best_value(self) -> float | None:
        """The value of :attr:`best`."""
        best = self.best
        return None if best is None else best.value

    def counts(self) -> dict[str, int]:
        """Number of trials in each state (keys are :class:`TrialState` members)."""
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def to_pandas(self) -> Any:
        """A DataFrame with one row per trial; configuration values in ``config.<name>``.
        With PBT, ``lineage`` lists each trial's exploits (``{"from", "step", "old",
        "new", ...}``) and ``from`` says the last one as ``"<trial>@<step>"``."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError(
                "result.to_pandas() needs pandas: pip install pandas"
            ) from None
        rows = []
        for t in self.trials:
            row = t.to_dict()
            del row["config"]
            if t.lineage:  # PBT: the last trial it copied, at which step
                last = t.lineage[-1]
                row["from"] = f"{last['from']}@{last['step']:g}"
            row["state"] = str(t.state)  # the plain name: DataFrames get written to files
            row.update({f"config.{k}": v for k, v in t.config.items()})
            if t.started and t.finished:
                row["duration"] = t.duration
            rows.append(row)
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()

    def show(self, *, widgets: bool | None = None) -> Any:
        """Draw the sweep table and return the view: a widget with ``widgets=True``, text
        with False, None picks (a widget in a notebook front end, text elsewhere)."""
        from workbench.widgets.sweep_table import make_sweep_view

        view = make_sweep_view(
            self.metric, self.mode, widgets=widgets, controls=False, metrics=self.metrics
        )
        view.update(self.trials, self.curves, final=True)
        return view

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        value = self.best_value
        best = "" if value is None else f", best {self.metric or 'value'}={value:.4g}"
        return f"<SweepResult {self.name!r}: {len(self.trials)} trials ({counts}){best}>"
