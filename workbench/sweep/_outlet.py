"""What the runner's records are copied to besides the live view (an Optuna study, trackers).

An :class:`Outlet` is watched like the view (``update(trials, curves, final=...)``, every
quarter second and once at the end) and writes each trial's changes elsewhere. A write that
fails must not stop the sweep, whose store keeps everything: it is logged (once per distinct
error) and tried again at the next look; if trials are still missing after the final look,
a warning says how many and why.
"""

from __future__ import annotations

import abc
import logging
import warnings
from collections.abc import Sequence

from workbench.trials import Trial

__all__ = ["Outlet"]

log = logging.getLogger("workbench.sweep")


class Outlet(abc.ABC):
    """A copy of the sweep's trials kept elsewhere; ``where`` names it in messages."""

    where: str = "?"
    _failed: str | None = None

    @abc.abstractmethod
    def trial(self, t: Trial, curve: list[tuple[float, float]]) -> None:
        """Write what changed of trial ``t`` (``curve``: its learning curve so far)."""

    def finish(self, trials: Sequence[Trial]) -> None:  # noqa: B027 (optional hook)
        """After the final look at every trial (e.g. mark the best); nothing by default."""

    def update(
        self, trials: Sequence[Trial], curves: dict[int, list[tuple[float, float]]], *,
        final: bool = False,
    ) -> None:  # fmt: skip
        """Write what changed in ``trials`` (and their ``curves``) since the last call."""
        missed = 0
        for t in trials:
            try:
                self.trial(t, curves.get(t.id, []))
            except Exception as e:  # the sweep goes on; the next look retries
                missed += 1
                self._note(f"trial {t.id} not written: {e}", e)
        if final:
            try:
                self.finish(trials)
            except Exception as e:  # as above: said, not raised
                missed += 1
                self._note(f"the end of the sweep not written: {e}", e)
            if missed:
                warnings.warn(
                    f"{self.where} misses {missed} trials of the sweep ({self._failed}); the "
                    "sweep's store has them all",
                    stacklevel=3,
                )

    def _note(self, what: str, error: BaseException) -> None:
        if self._failed != str(error):
            log.warning("%s: %s", self.where, what, exc_info=True)
        self._failed = str(error)
