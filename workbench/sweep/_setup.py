"""``sweep()``: check the arguments, open (or resume) the sweep in the store, run, return.

Everything a user can get wrong is checked here, in the notebook, before an engine is used.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

from workbench import _timeouts, track
from workbench.errors import InvalidTypeError, InvalidValueError
from workbench.sweep._mirror import OptunaMirror
from workbench.sweep._outlet import Outlet
from workbench.sweep._plan import Plan
from workbench.sweep._result import SweepResult
from workbench.sweep._resume import checkpoint_root
from workbench.sweep._space import Space
from workbench.sweep._store import SweepStore
from workbench.sweep._tracking import Tracking
from workbench.sweep.schedulers import FIFO, Scheduler, get_scheduler
from workbench.sweep.strategies import Strategy, get_strategy

if TYPE_CHECKING:
    from workbench.pool import Pool
    from workbench.track import Tracker

__all__ = ["sweep"]


def _count(value: Any, what: str, low: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise InvalidValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _takes(objective: Callable[..., Any]) -> tuple[bool, bool]:
    """Whether ``objective`` takes ``comm`` and whether it takes ``checkpoint``."""
    comm = _takes_comm(objective)
    try:
        params = inspect.signature(objective).parameters
    except (TypeError, ValueError):
        return comm, False
    return comm, "checkpoint" in params


def _takes_comm(objective: Callable[..., Any]) -> bool:
    if not callable(objective):
        raise InvalidTypeError(
            f"objective must be a function objective(config, report), got {objective!r}"
        )
    try:
        params = inspect.signature(objective).parameters
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
        raise InvalidTypeError(
            f"objective {getattr(objective, '__name__', objective)!r} must accept (config, report)"
            " (and optionally comm, checkpoint): it gets the configuration and a "
            "report(step=..., **metrics) callback"
        )
    return "comm" in params


def _control_dir(storage: str, name: str) -> str:
    if storage == ":memory:":
        return tempfile.mkdtemp(prefix=f"wb-sweep-{name}-")
    folder, base = os.path.split(os.path.abspath(storage))
    return os.path.join(folder, f".{base}.control", name)


def _open(store: SweepStore, name: str, settings: dict[str, Any], resume: bool) -> int:
    """Create sweep ``name`` or check it matches; returns its seed (a resumed sweep's own)."""
    old = store.settings(name)
    if old is None:
        store.create(name, settings)
        return int(settings["seed"])
    if not resume:
        raise InvalidValueError(
            f"sweep {name!r} already exists in {store.path}; pass resume=True to continue it, "
            "or choose another name="
        )
    diff = [k for k in settings if k != "seed" and old.get(k) != settings[k]]
    if diff:
        raise InvalidValueError(
            f"sweep {name!r} in {store.path} was started with other settings ({', '.join(diff)}:"
            f" {[old.get(k) for k in diff]} then, {[settings[k] for k in diff]} now); "
            "resume it with the same ones, or choose another name="
        )
    return int(old["seed"])


def _objectives(
    metrics: Mapping[str, str] | None, metric: str | None, mode: str | None
) -> dict[str, str] | None:
    """``metrics`` checked: name -> "max"/"min", in order (None when not given)."""
    if metrics is None:
        return None
    if metric is not None or mode is not None:
        raise InvalidValueError(
            "pass either metric=/mode= (one objective) or metrics={name: 'max' or 'min', ...}"
            f" (several), not both: got metric={metric!r}, mode={mode!r} and metrics={metrics!r}"
        )
    if not isinstance(metrics, Mapping) or not metrics:
        raise InvalidTypeError(
            "metrics must be a non-empty dict {metric name: 'max' or 'min'}, e.g. "
            f"{{'accuracy': 'max', 'latency_ms': 'min'}}; got {metrics!r}"
        )
    for name, direction in metrics.items():
        if not isinstance(name, str) or not name:
            raise InvalidTypeError(f"metrics keys must be metric names (strings), got {name!r}")
        if direction not in ("max", "min"):
            raise InvalidValueError(
                f"metrics[{name!r}] = {direction!r}: each direction must be 'max' (larger is "
                "better) or 'min' (smaller is better)"
            )
    return dict(metrics)


def _check_multi(metrics: dict[str, str], strat: Strategy, sched: Scheduler) -> None:
    """Several objectives: the strategy and the scheduler must know what to do with them."""
    names = ", ".join(metrics)
    if not sched.multi_objective:
        raise InvalidValueError(
            f"scheduler {type(sched).__name__} stops trials by comparing one metric, but this "
            f"sweep has {len(metrics)} objectives ({names}); use scheduler=None (every trial "
            "runs to its end), or optimise one of them with metric=/mode="
        )
    if not strat.multi_objective:
        raise InvalidValueError(
            f"strategy {type(strat).__name__} optimises one metric, but this sweep has "
            f"{len(metrics)} objectives ({names}); use 'random', 'grid', 'tpe' or 'nsga2'"
        )


def _check_plugins(
    objective: Callable[..., Any], pass_checkpoint: bool, strat: Strategy, sched: Scheduler
) -> None:
    """What the scheduler declares it needs (``needs_checkpoint``, ``changes_config``) of
    the objective and the strategy."""
    if sched.needs_checkpoint and not pass_checkpoint:
        raise InvalidValueError(
            f"scheduler {type(sched).__name__} copies checkpoints between trials, but objective "
            f"{getattr(objective, '__name__', objective)!r} has no `checkpoint` parameter: "
            "define it as objective(config, report, checkpoint), save the trial's state in "
            "checkpoint.path with checkpoint.save(step), and resume from checkpoint.step"
        )
    if sched.changes_config and strat.learns_from_results:
        raise InvalidValueError(
            f"strategy {type(strat).__name__} learns from finished trials, but "
            f"{type(sched).__name__} changes a trial's configuration while it runs (exploit "
            "and explore), so the values it learns would belong to other configurations; with "
            f"{type(sched).__name__} use strategy='random' or 'grid' for the first population "
            "(it then searches by itself)"
        )


def sweep(
    objective: Callable[..., Any],
    space: Mapping[str, Any],
    *,
    n_trials: int | None = None,
    strategy: str | Strategy | Any | None = None,
    scheduler: str | Scheduler | None = None,
    metric: str | None = None,
    mode: str | None = None,
    metrics: Mapping[str, str] | None = None,
    storage: str | os.PathLike[str] = "sweeps.db",
    name: str | None = None,
    resume: bool = True,
    max_failures: int = 1,
    trial_ranks: int = 1,
    seed: int | None = None,
    pool: Pool | None = None,
    show: bool | None = None,
    timeout: float | None = None,
    decision_timeout: float = _timeouts.DECISION,
    max_restarts: int = 3,
    optuna_storage: str | os.PathLike[str] | Any | None = None,
    callbacks: Sequence[Tracker] | Tracker | None = None,
) -> SweepResult:
    """Run ``objective(config, report)`` on configurations from ``space`` over the engine pool.

    One trial per group of ``trial_ranks`` engines, started as soon as a group is free.
    ``report(step=..., **metrics)`` records metrics and applies the ``scheduler``'s decision;
    ``metric``/``mode`` say what is optimised (``metrics={name: mode, ...}`` for several
    objectives at once: ``result.pareto_front()`` then gives the best trade-offs).
    Everything is recorded in the SQLite ``storage``; with ``resume=True`` calling again
    with the same ``name`` continues a sweep (finished trials are kept, unfinished ones
    rerun). Every argument is checked here, in
    the notebook, before an engine is used.

    Parameters
    ----------
    objective
        ``objective(config, report)`` or ``objective(config, report, comm)``, run on the
        engines (define it in the notebook, or in a module the engines can import). An
        objective with a ``checkpoint`` parameter gets a :class:`Checkpoint`: its trial's
        folder next to ``storage`` (``<name>.checkpoints/trial-<id>/``) and the step saved
        there (``checkpoint.step``, None at first); it writes its state there and calls
        ``checkpoint.save(step)``. A trial run again (dead engine, failure, a stopped sweep
        resumed, a PBT exploit) resumes from that step; reports up to it are not recorded
        twice.
        ``config`` is a dict of parameter values; ``report(step=..., name=value, ...)``
        records metrics and raises :class:`TrialPruned` when the trial is stopped (let it
        propagate). An objective with a ``comm`` parameter gets the trial's communicator
        (size ``trial_ranks``), also at ``report.comm``. The return value is the trial's
        value: a number, or a dict holding ``metric``; if it returns neither, the last
        reported ``metric`` counts. With ``metrics``, each objective's value is the one in
        the returned dict, else the last one reported; a trial that ends without a value
        of every objective is recorded ``failed`` with a message naming the metric.
    space
        ``{name: domain or fixed value}``: domains from :func:`choice`, :func:`grid`,
        :func:`uniform`, :func:`loguniform`, :func:`randint`; fixed values (numbers,
        strings, lists of them) are passed through unchanged.
    n_trials
        How many trials to run in all (a resumed sweep counts its earlier trials). Needed
        unless the strategy is bounded (grid: default and at most the grid's size).
    strategy
        How configurations are chosen: ``"grid"``, ``"random"``, ``"tpe"``, a
        :class:`Strategy`, or an Optuna sampler instance. None: grid when every searched
        parameter is a :func:`grid`, else random.
    scheduler
        Which running trials stop early: None or ``"fifo"`` (none), ``"asha"``,
        ``"median"``, or a :class:`Scheduler` such as ``ASHA(max_resource=27)``;
        ``PBT(...)`` (population-based training) makes bottom trials copy top trials'
        checkpoints and perturb their configuration (the objective must take
        ``checkpoint``; the strategy is random or grid). Any scheduler other than FIFO
        needs ``metric``.
    metric
        The name of the reported metric to optimise (None: the objective's return value).
    mode
        ``"max"`` or ``"min"``: whether a larger or a smaller ``metric`` is better
        (None: ``"max"``).
    metrics
        Several objectives at once, instead of ``metric``/``mode``: ``{name: "max" or
        "min", ...}`` (e.g. ``{"accuracy": "max", "latency_ms": "min"}``). Every one is
        recorded per trial (``trial.values``); the first is the one shown as the trial's
        value and learning curve. Random and grid strategies take it as it is; ``"tpe"``
        and ``"nsga2"`` use Optuna's multi-objective samplers. Schedulers that stop trials
        by one metric (ASHA, median stopping) refuse it.
    storage
        The SQLite file that records the sweep (created if missing), or ``":memory:"``.
    name
        The sweep's name in ``storage`` (default: the objective's ``__name__``).
    resume
        Continue an existing sweep of the same ``name`` (it must have the same space,
        metric, mode, strategy and ``trial_ranks``); False refuses an existing name.
    max_failures
        How many times a trial that raises is retried before it is recorded ``failed``.
    trial_ranks
        Engines per trial (an MPI sub-communicator each); at most the pool's size.
    seed
        Seed of the random strategies (None: a random one, kept in the store so that a
        resumed sweep proposes the same configurations).
    pool
        The pool to run on (default: the current one, see :func:`workbench.pool.require`).
    show
        Draw the live sweep table: None (a widget in a notebook, text elsewhere), True
        (the widget), False (nothing).
    timeout
        Seconds for the whole sweep; when they are up the running trials are interrupted
        (they stay pending: resume to finish them). None: no limit.
    decision_timeout
        Seconds a trial waits at a scheduler milestone (an ASHA rung) for the decision on
        that report before it goes on (default ``workbench._timeouts.DECISION``).
    max_restarts
        How many times the pool is restarted after engines died before the sweep gives up
        with :class:`~workbench.errors.PoolError` (the store keeps every trial).
    optuna_storage
        Mirror the sweep, live, into the Optuna study named like the sweep in this storage
        (a URL such as ``"sqlite:///optuna.db"``, the path of a journal file, or an Optuna
        storage object): each trial appears when it starts, its learning curve as
        intermediate values while it reports, its state and values when it ends, so
        ``optuna-dashboard sqlite:///optuna.db`` follows the running sweep. The store stays
        workbench's record; a resumed sweep brings the study in line with it. A study of
        that name holding other trials is refused before anything runs.
    callbacks
        Trackers that record each trial as a run, as it starts, reports and ends
        (:func:`workbench.track.mlflow`, :func:`workbench.track.tensorboard`, or a
        :class:`workbench.track.Tracker`); the best trial's run is marked at the end.

    Returns
    -------
    SweepResult
        Every trial as recorded in the store, the best one, learning curves, the table.
    """
    from workbench.pool import require
    from workbench.sweep._runner import Runner
    from workbench.widgets.sweep_table import make_sweep_view

    pass_comm, pass_checkpoint = _takes(objective)
    trackers = track.trackers(callbacks)
    space_ = Space(space)
    metrics_ = _objectives(metrics, metric, mode)
    if metrics_ is not None:
        metric, mode = next(iter(metrics_.items()))  # the first: value, curves, table
        if len(metrics_) == 1:
            metrics_ = None  # one objective: as metric=/mode=
    mode = "max" if mode is None else mode
    if mode not in ("max", "min"):
        raise InvalidValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise InvalidTypeError(f"metric must be the name of a reported metric, got {metric!r}")
    max_failures = _count(max_failures, "max_failures", 0)
    trial_ranks = _count(trial_ranks, "trial_ranks", 1)
    strat = get_strategy(strategy, space_)
    sched = get_scheduler(scheduler)
    if metric is None and not isinstance(sched, FIFO):
        raise InvalidValueError(
            f"scheduler {type(sched).__name__} decides on a reported metric: pass metric= "
            "(the name your objective gives to report(step=..., name=value))"
        )
    if metrics_ is not None:
        _check_multi(metrics_, strat, sched)
    _check_plugins(objective, pass_checkpoint, strat, sched)
    sched.check(space_)  # e.g. PBT's mutations against the space
    pool = require(pool)
    if trial_ranks > pool.size:
        raise InvalidValueError(
            f"trial_ranks={trial_ranks} but the pool has {pool.size} ranks; use at most "
            f"{pool.size} or start a bigger pool"
        )
    name_ = str(name or getattr(objective, "__name__", "sweep"))
    path = os.fspath(storage)
    seed_ = int.from_bytes(os.urandom(4), "little") if seed is None else int(seed)
    # checked before the store is touched: a folder that is not writable changes nothing
    checkpoints = checkpoint_root(path, name_) if pass_checkpoint else None
    store = SweepStore(path)
    try:
        outlets: list[Outlet] = [
            Tracking(t, name_, metric or "value", mode, list(metrics_ or [metric or "value"]),
                     store)
            for t in trackers
        ]  # fmt: skip
        if optuna_storage is not None:
            outlets.append(OptunaMirror(
                optuna_storage, name_, metrics_ or {metric or "value": mode}, space_.domains,
                [t.id for t in store.trials(name_)],
            ))  # fmt: skip
        settings: dict[str, Any] = {
            "metric": metric, "mode": mode, "space": space_.describe(), "seed": seed_,
            "strategy": type(strat).__name__, "trial_ranks": trial_ranks,
        }  # fmt: skip
        if metrics_ is not None:  # absent for one objective: stores of before still match
            settings["metrics"] = metrics_
        seed_ = _open(store, name_, settings, resume)  # a resumed sweep keeps its own seed
        if metrics_ is None:  # strategies written before several objectives keep working
            strat.setup(space_, metric=metric or "value", mode=mode, seed=seed_)
        else:
            strat.setup(space_, metric=metric or "value", mode=mode, seed=seed_, metrics=metrics_)
        sched.setup(metric=metric or "value", mode=mode)
        sched.bind(space_, seed_)
        limit = strat.limit()
        if n_trials is None:
            if limit is None:
                raise InvalidValueError(f"n_trials= is needed with the {type(strat).__name__}")
            n_trials = limit
        n_trials = _count(n_trials, "n_trials", 1)
        if limit is not None:
            n_trials = min(n_trials, limit)
        plan = Plan(
            name=name_, objective=objective, pass_comm=pass_comm, metric=metric, mode=mode,
            n_trials=n_trials, strategy=strat, scheduler=sched, trial_ranks=trial_ranks,
            max_failures=max_failures, max_restarts=max_restarts,
            decision_timeout=float(decision_timeout), control_dir=_control_dir(path, name_),
            timeout=timeout, poll=0.02 if sched.milestones or not isinstance(sched, FIFO) else 0.05,
            metrics=metrics_, checkpoint_dir=checkpoints,
        )  # fmt: skip
        curves = _restore(store, plan)
        view = (
            make_sweep_view(metric, mode, widgets=show, metrics=metrics_)
            if show is not False
            else None
        )
        runner = Runner(plan, pool, store, view, outlets)
        runner.curves.update(curves)
        runner.run()
        return SweepResult(
            name_, path, metric, mode, store.trials(name_), runner.curves, space=space_,
            metrics=metrics_, checkpoints=checkpoints,
        )  # fmt: skip
    finally:
        store.close()


def _restore(store: SweepStore, plan: Plan) -> dict[int, list[tuple[float, float]]]:
    """Replay the finished trials of a resumed sweep into the strategy and the scheduler;
    return their learning curves."""
    final = [t for t in store.trials(plan.name) if t.state.is_finished()]
    curves: dict[int, list[tuple[float, float]]] = {}
    for rep in store.reports(plan.name):
        value = rep["metrics"].get(plan.metric) if plan.metric else None
        if value is not None:
            curves.setdefault(rep["id"], []).append((rep["step"], value))
    if final:
        plan.strategy.restore(final)
        plan.scheduler.restore(final, curves)
    return curves
