"""What a sweep places on the engines, and the groups of engines its trials run on.

The objective is sent once to every engine (kept in the engine store under the sweep's
key); with ``trial_ranks > 1`` every engine also keeps its trial sub-communicator. Each
trial task then carries only its configuration and :attr:`Engines.spec`. At the end both
are dropped again; when that fails the user is told what stayed and how to clear it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from workbench import _timeouts, engine_store
from workbench.errors import RankError, SetupError
from workbench.sweep._trial import split_world

if TYPE_CHECKING:
    from workbench.pool import Pool
    from workbench.sweep._plan import Plan

__all__ = ["Engines"]

log = logging.getLogger("workbench.sweep")


class Engines:
    """The engines of ``pool`` as sweep ``plan`` uses them, its objects there under ``key``.

    ``groups``: the ranks of each group of ``plan.trial_ranks`` engines (ranks past the last
    full group stay idle); ``views``: a view on each group; ``spec``: what every trial task
    gets (engine-store keys, milestones, decision timeout). ``views`` and ``spec`` are set by
    :meth:`prepare`, again after each pool restart.
    """

    def __init__(self, plan: Plan, pool: Pool, key: str) -> None:
        self.plan, self.pool, self.key = plan, pool, key
        k = plan.trial_ranks
        self.groups = [list(range(g * k, (g + 1) * k)) for g in range(pool.size // k)]
        self.views: list[Any] = []
        self.spec: dict[str, Any] = {}

    @property
    def keys(self) -> list[str]:
        """The engine-store keys of the objective and of the sub-communicators."""
        return [f"{self.key}-objective", f"{self.key}-comm"]

    def prepare(self) -> None:
        """Place the objective on every engine, and split the world when trials span ranks."""
        objective, comm = self.keys
        try:
            self.pool.apply(
                engine_store.put,
                (objective, self.plan.objective),
                timeout=_timeouts.ENGINE_START,
                progress=False,
            )
        except RankError as e:
            raise SetupError(
                f"could not send the objective of sweep {self.plan.name!r} to the engines ({e}); "
                "define it in the notebook, or make its module importable on the engines"
            ) from None
        k = self.plan.trial_ranks
        if k > 1:
            self.pool.apply(split_world, (comm, k), timeout=_timeouts.ENGINE_START, progress=False)
        self.views = [self.pool.view(ranks) for ranks in self.groups]
        self.spec = {
            "objective": objective,
            "comm": comm if k > 1 else None,
            "pass_comm": self.plan.pass_comm,
            "milestones": list(self.plan.scheduler.milestones),
            "decision_timeout": self.plan.decision_timeout,
        }

    def ranks(self, groups: list[int]) -> list[int]:
        """The ranks of ``groups``, sorted."""
        return sorted({rk for g in groups for rk in self.groups[g]})

    def cleanup(self) -> None:
        """Drop the objective and the sub-communicators from the engines (a stopped pool or
        one with dead engines holds none: a restart cleared them, or will)."""
        if self.pool.stopped or self.pool.dead_ranks():
            return
        try:
            self.pool.view().apply_async(_drop, self.keys).get(timeout=_timeouts.QUERY)
        except Exception as e:  # the sweep's result stands: say what stayed behind
            log.debug("sweep %r: dropping its objects from the engines", self.plan.name,
                      exc_info=True)  # fmt: skip
            log.warning(
                "sweep %r: its objective stays in the engines' memory (could not remove it: "
                "%s: %s); `%%wb restart` clears it",
                self.plan.name,
                type(e).__name__,
                e,
            )


def _drop(keys: list[str]) -> None:
    from workbench import engine_store

    for k in keys:
        engine_store.drop(k)
