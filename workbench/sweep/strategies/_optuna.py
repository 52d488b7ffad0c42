"""Optuna samplers (TPE and others) as a workbench strategy, through Optuna's ask-and-tell API.

Trials run in parallel, so TPE is built with ``constant_liar=True``: running trials count as
bad results, which keeps parallel suggestions apart. With several objectives the study has
one direction per metric: TPE is then Optuna's multi-objective TPE, ``"nsga2"`` NSGA-II.
The Optuna study lives in memory; the workbench store stays the durable record, and a
resumed sweep replays it into the study.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import InvalidTypeError, MissingDependencyError
from workbench.sweep._space import Choice, Domain, LogUniform, RandInt, Uniform
from workbench.sweep._state import TrialState
from workbench.sweep.strategies._base import Strategy

__all__ = ["OptunaStrategy"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError(
            "this strategy needs optuna: pip install optuna (or pip install 'workbench[optuna]')"
        ) from None
    return optuna


def _distribution(optuna: Any, name: str, domain: Domain) -> Any:
    d = optuna.distributions
    if isinstance(domain, Choice):
        return d.CategoricalDistribution(domain.options)
    if isinstance(domain, RandInt):
        return d.IntDistribution(domain.low, domain.high - 1)
    if isinstance(domain, LogUniform):
        return d.FloatDistribution(domain.low, domain.high, log=True)
    if isinstance(domain, Uniform):
        return d.FloatDistribution(domain.low, domain.high)
    raise InvalidTypeError(f"parameter {name!r}: no Optuna distribution for {domain!r}")


class OptunaStrategy(Strategy):
    """Ask an Optuna sampler for each configuration; tell it every result.

    Parameters
    ----------
    sampler
        ``"tpe"`` (Optuna's ``TPESampler`` seeded by the sweep, with ``constant_liar=True``),
        ``"nsga2"`` (``NSGAIISampler`` seeded by the sweep: a genetic algorithm for several
        objectives) or an Optuna sampler instance, used as it is.
    """

    NAMES = ("tpe", "nsga2")  # the sampler names it builds (get_strategy's registry)
    multi_objective = True
    learns_from_results = True

    def __init__(self, sampler: Any = "tpe") -> None:
        self.sampler = sampler

    def setup(self, space: Any, *, metric: str, mode: str, seed: int, **kw: Any) -> None:
        super().setup(space, metric=metric, mode=mode, seed=seed, **kw)
        optuna = _optuna()
        sampler = self.sampler
        if sampler == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        elif sampler == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=seed)
        self.optuna = optuna
        modes = list(self.metrics.values()) if self.metrics else [mode]
        self.study = optuna.create_study(
            directions=["maximize" if m == "max" else "minimize" for m in modes], sampler=sampler
        )
        self.dists = {k: _distribution(optuna, k, v) for k, v in space.domains.items()}
        self.asked: dict[int, Any] = {}

    def suggest(self, trial_id: int) -> dict[str, Any]:
        trial = self.study.ask(self.dists)
        self.asked[trial_id] = trial
        return {k: trial.params.get(k, v) for k, v in self.space.items.items()}

    def complete(
        self,
        trial_id: int,
        config: dict[str, Any],
        state: TrialState,
        value: float | None,
        *,
        values: list[float] | None = None,
    ) -> None:
        states = self.optuna.trial.TrialState
        told = values if self.metrics else (None if value is None else [value])
        ok = state == TrialState.DONE and told is not None
        pruned = state == TrialState.PRUNED
        final = states.COMPLETE if ok else states.PRUNED if pruned else states.FAIL
        if self.metrics and pruned:
            final = states.FAIL  # Optuna cannot prune a multi-objective trial
        trial = self.asked.pop(trial_id, None)
        if trial is not None:
            self.study.tell(trial, told if ok else None, state=final)
            return
        params = {k: config[k] for k in self.dists if k in config}
        self.study.add_trial(  # a trial from an earlier session of a resumed sweep
            self.optuna.trial.create_trial(
                params=params,
                distributions=self.dists,
                values=told if ok else None,
                state=final,
            )
        )
