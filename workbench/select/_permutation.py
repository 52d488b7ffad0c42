"""Permutation importance spread over columns x repeats, equal to scikit-learn's.

``sklearn.inspection.permutation_importance`` draws one seed from ``random_state``; every
column then starts a fresh ``RandomState(seed)`` (rows subsampled first when
``max_samples`` < n) and shuffles its column ``n_repeats`` times, each repeat permuting the
previous one with an index array shuffled in place. Here the ``(column, repeat)`` pieces are
dealt over the ranks; a rank replays the cheap shuffles up to its repeat, so every piece
sees exactly the permutation scikit-learn would have used. Scores meet through one
``wb.allreduce``.
"""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import InvalidTypeError, InvalidValueError
from workbench.select._collective import mine, on_every_rank, reduce_or_raise, world
from workbench.select._placement import engine_data, placed
from workbench.select._result import SelectionResult
from workbench.select._validation import allows_nan, check_estimator

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["permutation_importance"]


def permutation_importance(
    estimator: Any,
    X: Any,
    y: Any = None,
    *,
    scoring: Any = None,
    n_repeats: int = 5,
    random_state: Any = None,
    max_samples: int | float = 1.0,
    pool: Pool | None = None,
    timeout: float | None = None,
) -> SelectionResult:
    """Importance of each column of a *fitted* estimator: score drop when it is shuffled.

    ``importances``, ``importances_mean``, ``importances_std`` equal scikit-learn's for
    the same ``random_state``; ``scores_`` is ``importances_mean`` and ``support_`` marks
    the columns whose mean importance is positive.

    ``X``, ``y``: the data (or ``X`` a :class:`PlacedData` from :func:`place` and
    ``y=None``); ``scoring``: one scikit-learn scorer (default: the estimator's
    ``score``); ``n_repeats`` shuffles per column; ``max_samples`` rows drawn for the
    scoring (an int, or a fraction of the rows); ``pool``: default the current pool;
    ``timeout``: seconds to wait for the ranks (None: no limit).
    """
    from sklearn.metrics import check_scoring
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted

    check_estimator(estimator, fitted=True)
    check_is_fitted(estimator)
    if not isinstance(n_repeats, Integral) or n_repeats < 1:
        raise InvalidValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    scorer = check_scoring(estimator, scoring=scoring)
    if isinstance(scorer, dict) or not callable(scorer):
        raise InvalidTypeError("permutation_importance here takes one scoring metric, not several")
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max + 1)
    with placed(X, y, pool, allow_nan=allows_nan(estimator)) as data:
        n, d = data.X.shape
        if isinstance(max_samples, Integral):
            if not 1 <= max_samples <= n:
                raise InvalidValueError(
                    f"max_samples must be in 1..{n} (rows of X), got {max_samples}"
                )
            m = int(max_samples)
        elif 0 < max_samples <= 1:
            m = int(max_samples * n)
        else:
            raise InvalidValueError(
                f"max_samples must be an int or a fraction in (0, 1], got {max_samples}"
            )
        spec = {
            "estimator": estimator,
            "scoring": scoring,
            "seed": int(seed),
            "n_repeats": int(n_repeats),
            "max_samples": m,
        }
        results = data.pool.apply(_permutation_on_rank, (data.key, spec), timeout=timeout)
    baseline, scores = results[0]
    imp = baseline - scores
    mean = np.mean(imp, axis=1)
    ranking = np.empty(d, dtype=int)
    ranking[np.argsort(-mean, kind="stable")] = np.arange(1, d + 1)
    history = [{"n_features": int(r), "score": float(mean[f])} for f, r in enumerate(ranking)]
    return SelectionResult(
        "permutation importance",
        support_=mean > 0,
        ranking_=ranking,
        history=history,
        scores_=mean,
        score_name="importance",
        importances=imp,
        importances_mean=mean,
        importances_std=np.std(imp, axis=1),
        baseline_score=float(baseline),
        info={"ranks": data.pool.size, "pieces": d * n_repeats},
    )


@on_every_rank
def _permutation_on_rank(key: str, spec: dict[str, Any]) -> tuple[float, np.ndarray]:
    """Engine side: score this rank's (column, repeat) pieces; allreduce the score matrix."""
    from sklearn.metrics import check_scoring
    from sklearn.utils.random import sample_without_replacement

    from workbench.progress import progress

    X, y = engine_data(key)
    rank, size = world()
    estimator, n_repeats, m = spec["estimator"], spec["n_repeats"], spec["max_samples"]
    scorer = check_scoring(estimator, scoring=spec["scoring"])
    n, d = X.shape
    scores = np.zeros((d, n_repeats))
    baseline = np.zeros(1)
    error = None
    try:
        if rank == size - 1:  # rank 0 gets the extra pieces when they do not divide evenly
            baseline[0] = scorer(estimator, X, y)
        rs = np.random.RandomState(spec["seed"])
        if m < n:
            rows = sample_without_replacement(n, m, random_state=rs)
            work, target = X[rows], y[rows]
        else:
            work, target = X.copy(), y
        start = rs.get_state()
        pieces = mine([(c, j) for c in range(d) for j in range(n_repeats)], rank, size)
        wanted: dict[int, set[int]] = {}
        for c, j in pieces:
            wanted.setdefault(c, set()).add(j)
        done = 0
        for c, repeats in wanted.items():
            original = work[:, c].copy()
            rs.set_state(start)
            index = np.arange(work.shape[0])
            for j in range(max(repeats) + 1):
                rs.shuffle(index)
                work[:, c] = work[index, c]
                if j in repeats:
                    scores[c, j] = scorer(estimator, work, target)
                    done += 1
                    progress(done, len(pieces), column=c, repeat=j)
            work[:, c] = original
    except Exception as e:
        error = e
    scores, baseline = reduce_or_raise([scores, baseline], error)
    return float(baseline[0]), scores
