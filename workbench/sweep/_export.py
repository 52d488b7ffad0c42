"""A finished sweep as an Optuna study: ``result.to_optuna(storage=None)``.

Every finished trial becomes an Optuna trial (``optuna.trial.create_trial`` then
``study.add_trials``): its parameters with the distributions of the sweep's space, its
value (or values, one per objective), its learning curve as intermediate values and its
state (done -> COMPLETE, pruned -> PRUNED, failed -> FAIL). Then the whole
``optuna.visualization`` family works on it, and with ``storage="sqlite:///file.db"`` the
study is written there for ``optuna-dashboard``.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Sequence
from typing import Any

from workbench.errors import InvalidValueError, MissingDependencyError
from workbench.sweep._space import Domain
from workbench.trials import Trial, TrialState

__all__ = ["frozen_trial", "optuna_distributions", "optuna_module", "steps", "to_optuna"]


def optuna_module(what: str = "result.to_optuna()") -> Any:
    """The optuna package, or :class:`MissingDependencyError` saying ``what`` needs it."""
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs optuna: pip install optuna (or pip install 'workbench[optuna]')"
        ) from None
    return optuna


def optuna_distributions(
    optuna: Any, domains: dict[str, Domain], trials: Sequence[Trial]
) -> dict[str, Any]:
    """Optuna distributions of the searched parameters: from the space's ``domains`` when
    known (uniform/loguniform -> FloatDistribution, randint -> IntDistribution, choice/grid
    -> CategoricalDistribution), else inferred from the values ``trials`` took."""
    from workbench.sweep.strategies._optuna import _distribution

    if domains:
        return {k: _distribution(optuna, k, v) for k, v in domains.items()}
    d = optuna.distributions
    seen: dict[str, list[Any]] = {}
    for t in trials:
        for k, v in t.config.items():
            seen.setdefault(k, []).append(v)
    out: dict[str, Any] = {}
    for k, values in seen.items():
        distinct = list(dict.fromkeys(map(repr, values)))
        if len(distinct) < 2:
            continue  # fixed: kept in user_attrs
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numbers and all(isinstance(v, int) for v in values):
            out[k] = d.IntDistribution(min(values), max(values))
        elif numbers:
            out[k] = d.FloatDistribution(min(values), max(values))
        elif all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
            out[k] = d.CategoricalDistribution(list({repr(v): v for v in values}.values()))
    return out


def frozen_trial(
    optuna: Any,
    t: Trial,
    metrics: list[str],
    dists: dict[str, Any],
    curve: list[tuple[float, float]],
) -> Any:
    """Trial ``t`` as an Optuna ``FrozenTrial`` (``create_trial``): its state, the values of
    ``metrics``, the parameters that fit ``dists`` (the others, and fixed values, in
    ``user_attrs`` with ``workbench_trial``), ``curve`` as intermediate values."""
    states = optuna.trial.TrialState
    values = t.objective_values(metrics) if t.state.is_finished() else None
    if t.state == TrialState.DONE and values is not None:
        final = states.COMPLETE
    elif t.state.is_finished():
        final = states.PRUNED if t.state == TrialState.PRUNED else states.FAIL
        values = None
    else:
        final = states.RUNNING
    params = {k: t.config[k] for k in dists if k in t.config and _fits(dists[k], t.config[k])}
    user_attrs: dict[str, Any] = {"workbench_trial": t.id, "attempt": t.attempt}
    user_attrs.update({k: v for k, v in t.config.items() if k not in params})
    if t.error:
        user_attrs["error"] = str(t.error).strip().splitlines()[-1][:500]
    trial = optuna.trial.create_trial(
        state=final,
        values=values,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=user_attrs,
        intermediate_values=steps(curve),
    )
    trial.datetime_start = _when(t.started) or trial.datetime_start
    if final != states.RUNNING:
        trial.datetime_complete = _when(t.finished) or trial.datetime_complete
    return trial


def _fits(dist: Any, value: Any) -> bool:
    """Whether ``value`` lies in Optuna distribution ``dist`` (read through its public
    ``choices``/``low``/``high``): a PBT explore may leave the space, and such a value is
    kept as a user attribute instead."""
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return any(type(value) is type(c) and value == c for c in choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(getattr(dist, "step", None), int) and not isinstance(value, int):
        return False  # an IntDistribution
    return bool(dist.low <= value <= dist.high)


def steps(curve: list[tuple[float, float]]) -> dict[int, float]:
    """Optuna keys intermediate values by integer step: whole steps as they are, other
    steps by their place in the curve."""
    whole = all(float(s).is_integer() for s, _ in curve)
    return {
        (int(s) if whole else i): float(v) for i, (s, v) in enumerate(curve) if math.isfinite(v)
    }


def _when(t: float | None) -> datetime.datetime | None:
    return None if t is None else datetime.datetime.fromtimestamp(t)


def to_optuna(
    result: Any, storage: str | Any | None = None, *, study_name: str | None = None
) -> Any:
    """See :meth:`SweepResult.to_optuna`."""
    optuna = optuna_module()
    metrics = result.objectives
    directions = ["maximize" if m == "max" else "minimize" for m in metrics.values()]
    name = study_name or result.name
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise InvalidValueError(
            f"an Optuna study named {name!r} already exists in {storage!r}; pass "
            "study_name= another name, or delete it with optuna.delete_study("
            f"study_name={name!r}, storage={storage!r})"
        ) from None
    with warnings.catch_warnings():  # set_metric_names is marked experimental
        warnings.simplefilter("ignore")
        study.set_metric_names(list(metrics))
    finished = [t for t in result.trials if t.state.is_finished()]
    dists = optuna_distributions(optuna, result.domains, finished)
    frozen = [
        frozen_trial(optuna, t, list(metrics), dists, result.curves.get(t.id, [])) for t in finished
    ]
    study.add_trials(frozen)
    return study
