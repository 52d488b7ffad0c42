"""Grid search: every point of the product of the discrete parameters, each exactly once."""

from __future__ import annotations

from typing import Any

from workbench.sweep.strategies._base import Strategy

__all__ = ["GridStrategy"]


class GridStrategy(Strategy):
    """Trial ``i`` is the ``i``-th grid point (last parameter varies fastest); any number of
    objectives."""

    multi_objective = True
    learns_from_results = False

    def setup(self, space: Any, *, metric: str, mode: str, seed: int, **kw: Any) -> None:
        super().setup(space, metric=metric, mode=mode, seed=seed, **kw)
        self.points = list(space.grid_points())

    def limit(self) -> int:
        return len(self.points)

    def suggest(self, trial_id: int) -> dict[str, Any] | None:
        return dict(self.points[trial_id]) if trial_id < len(self.points) else None
