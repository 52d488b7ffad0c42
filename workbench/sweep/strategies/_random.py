"""Random search, reproducible: trial ``i`` draws from a generator seeded by ``(seed, i)``.

The configuration depends only on the seed and the trial id, not on which trials finished
first, so a resumed sweep proposes the same configurations it would have.
"""

from __future__ import annotations

from typing import Any

from workbench.sweep.strategies._base import Strategy

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Independent uniform draws from every domain (a ``wb.grid`` is drawn like a choice);
    any number of objectives."""

    multi_objective = True
    learns_from_results = False

    def suggest(self, trial_id: int) -> dict[str, Any]:
        import numpy as np

        return self.space.sample(np.random.default_rng([self.seed, trial_id]))
