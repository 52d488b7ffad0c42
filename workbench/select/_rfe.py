"""Recursive feature elimination (RFE) and its cross-validated form (RFECV) on the ranks.

The elimination mirrors ``sklearn.feature_selection.RFE``: fit, rank the remaining
features by squared ``coef_`` / ``feature_importances_`` (stable argsort), drop the
``step`` weakest, repeat. Each elimination *path* is sequential by nature (a step needs
the previous fit), so the independent pieces are the paths: one per CV fold (scored on
its test fold at every step, as RFECV does) plus the path on all rows. They run
concurrently, dealt over the ranks; RFECV's final elimination is read off the all-rows
path (the path to ``k`` features is a prefix of the path to fewer), so it no longer waits
for the cross-validation.
"""

from __future__ import annotations

from numbers import Integral
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import InvalidValueError, StateError
from workbench.select._collective import mine, on_every_rank, world
from workbench.select._placement import engine_data, placed
from workbench.select._result import SelectionResult
from workbench.select._validation import allows_nan, check_estimator

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["rfe"]


def _step_size(step: float, n: int) -> int:
    if not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0:
        raise InvalidValueError(
            f"step must be a positive int or a fraction in (0, 1), got {step!r}"
        )
    return int(max(1, step * n)) if 0.0 < step < 1.0 else int(step)


def _target(n_features_to_select: Any, n: int) -> int:
    if n_features_to_select is None:
        return n // 2
    if isinstance(n_features_to_select, Integral) and not isinstance(n_features_to_select, bool):
        k = int(n_features_to_select)
        if k < 1:
            raise InvalidValueError(f"n_features_to_select must be >= 1, got {k}")
        if k > n:
            raise InvalidValueError(
                f"n_features_to_select={k} but X has {n} features: pass at most {n}"
            )
        return k
    if isinstance(n_features_to_select, float) and 0 < n_features_to_select <= 1:
        return int(n * n_features_to_select)
    raise InvalidValueError(
        f"n_features_to_select must be None, an int >= 1 or a fraction in (0, 1], "
        f"got {n_features_to_select!r}"
    )


def _sizes(n: int, target: int, step: int) -> list[int]:
    """Number of features at every fit of a path from ``n`` down to ``target``."""
    sizes = [n]
    while sizes[-1] > target:
        sizes.append(sizes[-1] - min(step, sizes[-1] - target))
    return sizes


def importances(estimator: Any, getter: Any = "auto") -> np.ndarray:
    """Squared importances of a fitted estimator, summed over outputs (as RFE ranks them)."""
    if getter == "auto":
        if hasattr(estimator, "coef_"):
            getter = attrgetter("coef_")
        elif hasattr(estimator, "feature_importances_"):
            getter = attrgetter("feature_importances_")
        else:
            raise InvalidValueError(
                f"{type(estimator).__name__} has neither coef_ nor feature_importances_ after "
                "fit: pass importance_getter='attribute' or a callable, or use an estimator "
                "that exposes one of them"
            )
    elif isinstance(getter, str):
        getter = attrgetter(getter)
    values = np.asarray(getter(estimator))
    squared = values**2
    return squared if squared.ndim == 1 else squared.sum(axis=0)


def elimination_path(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    target: int,
    step: int,
    getter: Any = "auto",
    test: tuple[np.ndarray, np.ndarray, Any] | None = None,
    report: Any = None,
) -> list[dict[str, Any]]:
    """Fits of RFE from all features down to ``target``: one record per fit.

    Each record has ``features`` (the columns fitted), ``order`` (their argsort by
    importance, weakest first; None for the last fit) and ``score`` on ``test``
    (``(X_test, y_test, scorer)``, or None). The last fit happens only when scoring.
    """
    from sklearn.base import clone

    n = X.shape[1]
    support = np.ones(n, dtype=bool)
    path: list[dict[str, Any]] = []

    def fit(features: np.ndarray) -> tuple[Any, float | None]:
        est = clone(estimator).fit(X[:, features], y)
        score = None if test is None else float(test[2](est, test[0][:, features], test[1]))
        if report is not None:
            report(len(features), score)
        return est, score

    while support.sum() > target:
        features = np.arange(n)[support]
        est, score = fit(features)
        order = np.ravel(np.argsort(importances(est, getter), kind="stable"))
        threshold = min(step, int(support.sum()) - target)
        support[features[order][:threshold]] = False
        path.append({"features": features, "order": order, "score": score})
    if test is not None:
        features = np.arange(n)[support]
        path.append({"features": features, "order": None, "score": fit(features)[1]})
    return path


def replay(path: list[dict[str, Any]], n: int, target: int, step: int) -> tuple[np.ndarray, ...]:
    """``support_`` and ``ranking_`` of RFE to ``target`` features, read off a recorded path.

    The path must go down to ``target`` or fewer features with the same ``step``.
    """
    support = np.ones(n, dtype=bool)
    ranking = np.ones(n, dtype=int)
    for record in path:
        if support.sum() <= target:
            break
        features = np.arange(n)[support]
        if not np.array_equal(record["features"], features):
            raise StateError("internal: the recorded RFE path does not match its replay")
        threshold = min(step, int(support.sum()) - target)
        support[features[record["order"]][:threshold]] = False
        ranking[~support] += 1
    return support, ranking


def rfe(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    n_features_to_select: int | float | None = None,
    step: int | float = 1,
    cv: Any = None,
    scoring: Any = None,
    min_features_to_select: int = 1,
    importance_getter: Any = "auto",
    groups: Any = None,
    pool: Pool | None = None,
    timeout: float | None = None,
) -> SelectionResult:
    """RFE (``cv=None``) or RFECV (``cv`` given), equal to scikit-learn's.

    With ``cv``, the number of features is chosen by cross-validation as ``RFECV`` does
    (fewest features among the best mean scores; ``min_features_to_select`` is the
    floor) and ``cv_results_`` mirrors its attribute; fold paths and the all-rows path
    run concurrently on the ranks.

    ``estimator`` is an unfitted scikit-learn estimator with ``coef_`` or
    ``feature_importances_`` after fit (or name another with ``importance_getter``: an
    attribute name or a callable). ``X``, ``y``: the data (or ``X`` a
    :class:`PlacedData` and ``y=None``). Without ``cv``, ``n_features_to_select`` is the
    target (default half, an int or a fraction). ``step`` features (or a fraction) are
    dropped per fit. ``scoring`` and ``groups`` go to the cross-validation. ``pool``:
    default the current pool; ``timeout``: seconds to wait for the ranks (None: no limit).
    """
    from sklearn.base import is_classifier
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import check_cv

    check_estimator(estimator)
    if cv is not None and n_features_to_select is not None:
        raise InvalidValueError(
            "with cv= the number of features is chosen by cross-validation: "
            "drop n_features_to_select (min_features_to_select sets the floor)"
        )
    with placed(X, y, pool, allow_nan=allows_nan(estimator)) as data:
        n = data.X.shape[1]
        step_n = _step_size(step, n)
        tasks: list[dict[str, Any]] = []
        if cv is None:
            target = _target(n_features_to_select, n)
        else:
            if not isinstance(min_features_to_select, Integral) or min_features_to_select < 1:
                raise InvalidValueError(
                    f"min_features_to_select must be >= 1, got {min_features_to_select!r}"
                )
            target = min(int(min_features_to_select), n)
            splitter = check_cv(cv, data.y, classifier=is_classifier(estimator))
            check_scoring(estimator, scoring=scoring)
            tasks = [
                {"name": f"fold {i}", "train": tr, "test": te}
                for i, (tr, te) in enumerate(splitter.split(data.X, data.y, groups))
            ]
        tasks.insert(0, {"name": "all rows", "train": None, "test": None})
        spec = {
            "estimator": estimator,
            "scoring": scoring,
            "getter": importance_getter,
            "target": target,
            "step": step_n,
            "tasks": tasks,
            "fits": len(_sizes(n, target, step_n)),
        }
        size = data.pool.size
        per_rank = data.pool.apply(_rfe_on_rank, (data.key, spec), timeout=timeout)
    paths = {i: p for done in per_rank for i, p in done.items()}
    info = {"ranks": size, "paths": [t["name"] for t in tasks]}
    full = paths[0]
    if cv is None:
        support, ranking = replay(full, n, target, step_n)
        history = [{"n_features": len(r["features"]), "score": None} for r in full]
        return SelectionResult("rfe", support, ranking, history, info=info)
    scores = np.array([[r["score"] for r in paths[i]] for i in range(1, len(tasks))])
    n_feats = np.array([len(r["features"]) for r in paths[1]])
    n_rev, scores_rev = n_feats[::-1], scores[:, ::-1]
    best = int(n_rev[np.argmax(scores_rev.sum(axis=0))])  # ties: fewest features
    support, ranking = replay(full, n, best, step_n)
    cv_results = {
        "mean_test_score": scores_rev.mean(axis=0),
        "std_test_score": scores_rev.std(axis=0),
        **{f"split{i}_test_score": scores_rev[i] for i in range(scores.shape[0])},
        "n_features": n_rev,
    }
    history = [
        {"n_features": int(k), "score": float(s), "std": float(sd)}
        for k, s, sd in zip(n_feats, scores.mean(axis=0), scores.std(axis=0), strict=True)
    ]
    return SelectionResult(
        "rfecv", support, ranking, history, score_name="CV score", cv_results_=cv_results, info=info
    )


@on_every_rank
def _rfe_on_rank(key: str, spec: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """Engine side: this rank's elimination paths (all-rows path and/or folds)."""
    from sklearn.metrics import check_scoring

    from workbench.progress import progress

    X, y = engine_data(key)
    rank, size = world()
    tasks = list(enumerate(spec["tasks"]))
    todo = mine(tasks, rank, size)
    total = max(1, len(todo) * spec["fits"])
    scorer = check_scoring(spec["estimator"], scoring=spec["scoring"]) if len(tasks) > 1 else None
    done = 0
    out = {}
    for index, task in todo:

        def report(n_features: int, score: float | None, name: str = task["name"]) -> None:
            nonlocal done
            done += 1
            shown = {} if score is None else {"score": score}
            progress(done, total, n_features=n_features, path=name, **shown)

        if task["train"] is None:
            Xt, yt, test = X, y, None
        else:
            Xt, yt = X[task["train"]], y[task["train"]]
            test = (X[task["test"]], y[task["test"]], scorer)
        out[index] = elimination_path(
            spec["estimator"],
            Xt,
            yt,
            target=spec["target"],
            step=spec["step"],
            getter=spec["getter"],
            test=test,
            report=report,
        )
    progress(total, total)
    return out
