"""Sequential (greedy) feature selection with each step's candidates spread over the ranks.

The same algorithm as ``sklearn.feature_selection.SequentialFeatureSelector``: at every
step each remaining feature is tried (added when going forward, removed when going
backward) and scored by cross-validation; the best is kept. Here rank ``r`` scores
candidates ``r, r + p, ...`` (there are far more candidates than folds), the scores meet
through one ``wb.allreduce`` per step, and every rank then takes the same argmax: the
first best in feature order, as scikit-learn's ``max`` over its score dict does.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import InvalidValueError
from workbench.select._collective import cv_score, mine, on_every_rank, reduce_or_raise, world
from workbench.select._placement import engine_data, placed
from workbench.select._result import SelectionResult
from workbench.select._validation import allows_nan, check_estimator

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["sequential"]

_SUBSET_CHARS = 40  # progress shows the current subset as a short string


def _n_iterations(
    n_features_to_select: Any, tol: float | None, direction: str, n: int
) -> tuple[int, bool]:
    """Steps to run and whether ``tol`` stops early, as SequentialFeatureSelector decides."""
    if isinstance(n_features_to_select, str):
        if n_features_to_select != "auto":
            raise InvalidValueError(
                f"n_features_to_select must be 'auto', an int or a fraction in (0, 1], "
                f"got {n_features_to_select!r}"
            )
        k = n - 1 if tol is not None else n // 2
    elif isinstance(n_features_to_select, Integral) and not isinstance(n_features_to_select, bool):
        k = int(n_features_to_select)
        if k < 1:
            raise InvalidValueError(f"n_features_to_select must be >= 1, got {k}")
        if k >= n:
            raise InvalidValueError(
                f"n_features_to_select={k} but X has {n} features: "
                f"it must be < {n} (or a fraction, or 'auto')"
            )
    elif isinstance(n_features_to_select, Real) and 0 < float(n_features_to_select) <= 1:
        k = int(n * float(n_features_to_select))
    else:
        raise InvalidValueError(
            "n_features_to_select must be 'auto', an int >= 1 or a fraction in (0, 1], "
            f"got {n_features_to_select!r}"
        )
    if tol is not None and tol < 0 and direction == "forward":
        raise InvalidValueError(f"tol must be > 0 for forward selection, got {tol}")
    auto = n_features_to_select == "auto"
    steps = k if auto or direction == "forward" else n - k
    return steps, auto and tol is not None


def _share(n: int, steps: int, rank: int, size: int) -> int:
    """Candidates rank ``rank`` scores over ``steps`` steps (``n - s`` candidates at step s)."""
    return sum(len(range(rank, n - s, size)) for s in range(steps))


def _subset_text(features: list[int]) -> str:
    text = ",".join(map(str, features))
    return text if len(text) <= _SUBSET_CHARS else text[: _SUBSET_CHARS - 3] + "..."


def sequential(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    n_features_to_select: int | float | str = "auto",
    direction: str = "forward",
    cv: Any = 5,
    scoring: Any = None,
    tol: float | None = None,
    groups: Any = None,
    pool: Pool | None = None,
    timeout: float | None = None,
) -> SelectionResult:
    """Greedy forward/backward selection, candidates spread over the pool's ranks.

    Picks the same features in the same order as ``SequentialFeatureSelector`` with the
    same ``estimator``, ``cv`` and ``scoring`` (``tol`` and ``"auto"`` behave the same).
    ``X`` may be a :class:`PlacedData` from :func:`place` (then ``y=None``). The result's
    ``order_`` lists the features in the order they were added (or removed).

    ``n_features_to_select``: ``"auto"``, an int or a fraction of the features;
    ``direction``: ``"forward"`` or ``"backward"``; ``groups`` go to the CV splitter;
    ``pool``: default the current pool; ``timeout``: seconds to wait for the ranks
    (None: no limit).
    """
    from sklearn.base import is_classifier
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import check_cv

    check_estimator(estimator)
    if direction not in ("forward", "backward"):
        raise InvalidValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    with placed(X, y, pool, allow_nan=allows_nan(estimator)) as data:
        n = data.X.shape[1]
        steps, auto = _n_iterations(n_features_to_select, tol, direction, n)
        splitter = check_cv(cv, data.y, classifier=is_classifier(estimator))
        splits = list(splitter.split(data.X, data.y, groups))
        check_scoring(estimator, scoring=scoring)  # fail here, not on every rank
        size = data.pool.size
        spec = {
            "estimator": estimator,
            "scoring": scoring,
            "splits": splits,
            "steps": steps,
            "auto": auto,
            "tol": tol,
            "backward": direction == "backward",
            "share": [_share(n, steps, r, size) for r in range(size)],
        }
        results = data.pool.apply(_sequential_on_rank, (data.key, spec), timeout=timeout)
    out = results[0]
    mask = out["mask"]
    order = np.array([h["feature"] for h in out["history"]], dtype=np.int64)
    support = ~mask if direction == "backward" else mask.copy()
    ranking = np.where(support, 1, 2)
    if direction == "backward":  # the last feature removed ranks 2, the first one highest
        ranking[order] = np.arange(len(order) + 1, 1, -1)
    return SelectionResult(
        method=f"sequential {direction}",
        support_=support,
        ranking_=ranking,
        history=out["history"],
        score_name="CV score",
        order_=order,
        info={"ranks": size, "candidates_per_rank": [r["evaluated"] for r in results]},
    )


@on_every_rank
def _sequential_on_rank(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Engine side: the whole selection loop; one allreduce of candidate scores per step."""
    from sklearn.metrics import check_scoring

    from workbench.progress import progress

    X, y = engine_data(key)
    rank, size = world()
    estimator, splits = spec["estimator"], spec["splits"]
    scorer = check_scoring(estimator, scoring=spec["scoring"])
    n = X.shape[1]
    mask = np.zeros(n, dtype=bool)  # picked (forward) or removed (backward) so far
    total = max(spec["share"][rank], 1)
    done, old, history = 0, -np.inf, []
    for step in range(spec["steps"]):
        candidates = np.flatnonzero(~mask)
        scores = np.zeros(n)
        error = None
        try:
            for f in mine(candidates, rank, size):
                trial = mask.copy()
                trial[f] = True
                if spec["backward"]:
                    trial = ~trial
                scores[f] = cv_score(estimator, X[:, trial], y, splits, scorer)
                done += 1
                best = {"best_score": float(old)} if np.isfinite(old) else {}
                progress(done, total, n_selected=int(mask.sum()), candidate=int(f), **best)
        except Exception as e:
            error = e
        (scores,) = reduce_or_raise([scores], error)
        by_feature = {int(f): scores[f] for f in candidates}
        new_feature = max(by_feature, key=lambda f: by_feature[f])
        new_score = by_feature[new_feature]
        if spec["auto"] and (new_score - old) < spec["tol"]:
            break
        old = new_score
        mask[new_feature] = True
        kept = np.flatnonzero(~mask if spec["backward"] else mask).tolist()
        history.append(
            {
                "step": step + 1,
                "feature": new_feature,
                "n_features": len(kept),
                "score": float(new_score),
                "candidates": len(candidates),
            }
        )
        subset = _subset_text(kept)
        progress(done, total, n_selected=len(kept), best_score=float(old), subset=subset)
    progress(total, total, **({"best_score": float(old)} if history else {}))
    return {"mask": mask, "history": history, "evaluated": done}
