"""Population-based training (Jaderberg et al., "Population Based Training of Neural
Networks", 2017), as Ray Tune's ``PopulationBasedTraining``, on trial checkpoints.

Every ``perturbation_interval`` steps of a trial (counted from its last perturbation), its
latest value is ranked among the latest values of every trial that reported. A trial in
the bottom ``quantile`` is stopped and *exploits* a trial of the top ``quantile`` (chosen
at random): it copies that trial's checkpoint folder and *explores* from its configuration
(continuous values times 0.8 or 1.2, or with ``resample_probability`` drawn anew;
choices drawn anew), then runs again from the copied checkpoint's step with the new
configuration. The runner does the copy and records the lineage; this class decides
(:meth:`PBT.on_report` says EXPLOIT, :meth:`PBT.target` which trial, :meth:`PBT.explore` the
new configuration).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.errors import InvalidTypeError, InvalidValueError
from workbench.sweep._space import Choice, Domain, LogUniform, RandInt, Space, Uniform
from workbench.sweep._state import CONTINUE, EXPLOIT, TrialState
from workbench.sweep.schedulers._base import Scheduler

__all__ = ["PBT"]


class PBT(Scheduler):
    """Population-based training: bottom trials copy top trials' checkpoints and perturb
    their configuration.

    The objective must take ``checkpoint`` (it saves its state there and resumes from
    ``checkpoint.step``), and the sweep needs ``metric=``. ``n_trials`` is the population:
    give the sweep as many engines as trials so they all run at once.

    Parameters
    ----------
    perturbation_interval
        Steps between two decisions on a trial (> 0).
    quantile
        Fraction of the population in the bottom (exploits) and in the top (copied), in
        (0, 0.5].
    hyperparam_mutations
        ``{name: domain or list of values}``: the parameters explored and where they may go
        (``uniform``/``loguniform``/``randint``: times 0.8 or 1.2 within its bounds;
        ``choice`` or a list: drawn anew). None: every searched parameter of the space.
    resample_probability
        Chance that a continuous parameter is drawn anew from its domain instead.
    seed
        Seed of the random choices (None: the sweep's seed).
    """

    def __init__(
        self,
        *,
        perturbation_interval: float = 5,
        quantile: float = 0.25,
        hyperparam_mutations: Mapping[str, Domain | Sequence[Any]] | None = None,
        resample_probability: float = 0.25,
        seed: int | None = None,
    ) -> None:
        if isinstance(perturbation_interval, bool) or not (
            isinstance(perturbation_interval, (int, float)) and perturbation_interval > 0
        ):
            raise InvalidValueError(
                f"PBT perturbation_interval must be a number of steps > 0, got "
                f"{perturbation_interval!r}"
            )
        if not (isinstance(quantile, (int, float)) and 0 < quantile <= 0.5):
            raise InvalidValueError(f"PBT quantile must be in (0, 0.5], got {quantile!r}")
        if not (isinstance(resample_probability, (int, float)) and 0 <= resample_probability <= 1):
            raise InvalidValueError(
                f"PBT resample_probability must be in [0, 1], got {resample_probability!r}"
            )
        self.interval, self.quantile = float(perturbation_interval), float(quantile)
        self.resample_probability = float(resample_probability)
        self.mutations = None if hyperparam_mutations is None else _mutations(hyperparam_mutations)
        self.seed = seed
        self.rng = random.Random(seed)
        self.scores: dict[int, float] = {}  # latest score of every trial that reported
        self.last: dict[int, float] = {}  # step of each trial's last perturbation
        self.targets: dict[int, int] = {}  # trial -> the trial it should copy

    needs_checkpoint = True  # it copies checkpoints: the objective must take checkpoint
    changes_config = True  # explore: a trial goes on with another configuration

    def check(self, space: Space) -> None:
        """Refuse mutations of parameters the ``space`` does not have, and a space with
        nothing to explore when no mutations were given."""
        names = list(space.domains) if self.mutations is None else list(self.mutations)
        if not names:
            raise InvalidValueError(
                "PBT has nothing to explore: the space has no searched parameter; pass "
                "hyperparam_mutations={name: uniform(...) or [values], ...}"
            )
        unknown = [k for k in names if k not in space.domains and k not in space.fixed]
        if unknown:
            raise InvalidValueError(
                f"PBT hyperparam_mutations names {unknown}, not in the sweep's space "
                f"({', '.join([*space.domains, *space.fixed]) or 'empty'}); mutate parameters "
                "of the space"
            )

    def bind(self, space: Space, seed: int) -> None:
        """Explore every searched parameter of ``space`` unless ``hyperparam_mutations`` were
        given; draw from ``seed`` unless PBT has its own."""
        if self.mutations is None:
            self.mutations = dict(space.domains)
        if self.seed is None:
            self.rng = random.Random(seed)

    def on_report(self, trial_id: int, step: float, value: float) -> str:
        self.scores[trial_id] = self.score(value)
        last = self.last.setdefault(trial_id, 0.0)
        if step - last < self.interval:
            return CONTINUE
        self.last[trial_id] = step
        ranked = sorted(self.scores, key=lambda t: (self.scores[t], t))
        n = len(ranked)
        k = min(math.ceil(n * self.quantile), n // 2)
        if k < 1 or trial_id not in ranked[:k]:
            return CONTINUE
        self.targets[trial_id] = self.rng.choice(ranked[-k:])
        return EXPLOIT

    def target(self, trial_id: int) -> int | None:
        """The trial of the top quantile that trial ``trial_id`` should copy (after
        ``on_report`` said EXPLOIT)."""
        return self.targets.pop(trial_id, None)

    def explore(self, config: dict[str, Any]) -> dict[str, Any]:
        """A perturbed copy of ``config`` (the copied trial's configuration)."""
        new = dict(config)
        for name, domain in (self.mutations or {}).items():
            if isinstance(domain, Choice):
                new[name] = domain.options[self.rng.randrange(len(domain.options))]
            elif name not in new or self.rng.random() < self.resample_probability:
                new[name] = _draw(domain, self.rng)
            else:
                new[name] = _shift(domain, new[name], self.rng.choice((0.8, 1.2)))
        return new

    def on_complete(self, trial_id: int, state: TrialState, value: float | None) -> None:
        self.targets.pop(trial_id, None)  # a finished trial keeps its score: a donor still

    def forget(self, trial_id: int) -> None:
        self.scores.pop(trial_id, None)
        self.last.pop(trial_id, None)
        self.targets.pop(trial_id, None)


def _mutations(given: Mapping[str, Any]) -> dict[str, Domain]:
    if not isinstance(given, Mapping) or not given:
        raise InvalidTypeError(
            "PBT hyperparam_mutations must be a non-empty dict {name: uniform(...), "
            f"loguniform(...), randint(...), choice([...]) or a list of values}}, got {given!r}"
        )
    out: dict[str, Domain] = {}
    for name, spec in given.items():
        if isinstance(spec, (Uniform, LogUniform, RandInt, Choice)):
            out[name] = spec
        elif isinstance(spec, (list, tuple)) and spec:
            out[name] = Choice(tuple(spec))
        else:
            raise InvalidTypeError(
                f"PBT hyperparam_mutations[{name!r}] = {spec!r}: give uniform(low, high), "
                "loguniform(low, high), randint(low, high), choice([...]) or a list of values"
            )
    return out


def _draw(domain: Domain, rng: random.Random) -> Any:
    if isinstance(domain, LogUniform):
        return math.exp(rng.uniform(math.log(domain.low), math.log(domain.high)))
    if isinstance(domain, Uniform):
        return rng.uniform(domain.low, domain.high)
    if isinstance(domain, RandInt):
        return rng.randrange(domain.low, domain.high)
    raise InvalidTypeError(f"PBT cannot draw from {domain!r}")


def _shift(domain: Domain, value: Any, factor: float) -> Any:
    if isinstance(domain, RandInt):
        return min(max(round(value * factor), domain.low), domain.high - 1)
    if not isinstance(domain, (Uniform, LogUniform)):
        raise InvalidTypeError(f"PBT cannot shift a value of {domain!r}")
    return min(max(float(value) * factor, domain.low), domain.high)
