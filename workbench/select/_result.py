"""What every selection returns: support, ranking or scores, per-step history, a plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SelectionResult"]


@dataclass
class SelectionResult:
    """The outcome of one selection.

    ``support_`` marks the selected features; ``ranking_`` is 1 for selected features
    and grows with how early a feature was dropped (or how late it was picked);
    ``scores_`` holds per-feature scores where the method has them. ``history`` has
    one dict per step with at least ``n_features`` and ``score``. ``order_`` is the
    order features were picked (sequential forward) or dropped (backward, RFE);
    ``cv_results_`` mirrors RFECV's; ``importances*`` and ``baseline_score`` mirror
    ``permutation_importance``'s Bunch; ``info`` says how the work was spread.
    """

    method: str
    support_: np.ndarray
    ranking_: np.ndarray
    history: list[dict[str, Any]]
    scores_: np.ndarray | None = None
    pvalues_: np.ndarray | None = None
    score_name: str = "score"
    order_: np.ndarray | None = None
    cv_results_: dict[str, np.ndarray] | None = None
    importances: np.ndarray | None = None
    importances_mean: np.ndarray | None = None
    importances_std: np.ndarray | None = None
    baseline_score: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features_(self) -> int:
        """Number of selected features."""
        return int(self.support_.sum())

    @property
    def selected_(self) -> np.ndarray:
        """Indices of the selected features, ascending."""
        return np.flatnonzero(self.support_)

    def points(self) -> list[tuple[float, float]]:
        """``(n_features, score)`` of every step that has a finite score."""
        pts = [(float(h["n_features"]), h.get("score")) for h in self.history]
        return sorted((x, float(y)) for x, y in pts if y is not None and np.isfinite(y))

    def svg(self) -> str:
        """The score-vs-number-of-features chart as an SVG string ('' when nothing to draw)."""
        from workbench.widgets.metric_plot import svg_chart

        title = f"{self.method}: {self.score_name} vs number of features"
        return svg_chart(title, {0: self.points()})

    def show(self) -> None:
        """Display score vs number of features inline (an SVG in an IPython ``HTML``)."""
        from IPython.display import HTML, display

        display(HTML(self.svg() or f"<p>{self.method}: no scores to draw</p>"))

    def __repr__(self) -> str:
        picked = self.selected_.tolist()
        text = ", ".join(map(str, picked[:12])) + (" ..." if len(picked) > 12 else "")
        return (
            f"<SelectionResult {self.method}: {self.n_features_} of {self.support_.size} "
            f"features [{text}], {len(self.history)} steps>"
        )
