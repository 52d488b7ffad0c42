"""Univariate scores over rows sharded on the ranks: sufficient statistics + ``wb.allreduce``.

No rank sees another's rows and nothing is gathered. Each row block gives counts, sums and
*centred* second moments (numba kernels); blocks and ranks are pooled with the exact
parallel-variance identity ``M2 = sum_b [M2_b + n_b (mean_b - mean)^2]`` after one
allreduce of counts and sums, so the scores match scikit-learn's ``f_classif``,
``f_regression`` and ``chi2`` to rounding.

Mutual information is the *binned plug-in* estimator: every column is cut into
``n_bins`` equal-width bins between its global minimum and maximum (one allreduce), the
(bin x class) histograms are allreduced, and the MI of each table is computed with
``mutual_info_score``'s arithmetic. It equals
``mutual_info_classif(discretize(X, n_bins), y, discrete_features=True)`` -- not
scikit-learn's default k-nearest-neighbour estimator for continuous features, which
cannot be split into sufficient statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import engine_store
from workbench.data import DistributedArray, row_bounds
from workbench.errors import InvalidValueError
from workbench.pool import require
from workbench.select import kernels
from workbench.select._collective import on_every_rank, reduce_or_raise, world
from workbench.select._result import SelectionResult
from workbench.select._validation import check_finite, check_k, check_X, check_y

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["SCORES", "discretize", "univariate"]

SCORES = ("f_classif", "f_regression", "chi2", "mutual_info")


def discretize(
    X: Any, n_bins: int = 10, lo: np.ndarray | None = None, hi: np.ndarray | None = None
) -> np.ndarray:
    """Equal-width bin codes of every column of ``X`` (the binning ``score="mutual_info"``
    uses): ``n_bins`` bins between ``lo`` and ``hi`` (default: each column's min and max)."""
    Xa = np.ascontiguousarray(check_X(X), dtype=np.float64)
    lo = Xa.min(axis=0) if lo is None else np.asarray(lo, dtype=np.float64)
    hi = Xa.max(axis=0) if hi is None else np.asarray(hi, dtype=np.float64)
    return kernels.bin_codes(Xa, lo, hi, int(n_bins))


def _is_dask(x: Any) -> bool:
    return hasattr(x, "dask") and hasattr(x, "chunks") and hasattr(x, "compute")


def univariate(
    X: Any,
    y: Any = None,
    score: str = "f_classif",
    k: int | str = 10,
    *,
    n_bins: int = 10,
    pool: Pool | None = None,
    timeout: float | None = None,
) -> SelectionResult:
    """Score every feature against ``y`` with rows spread over the ranks; keep the ``k`` best.

    ``X`` is an array (scattered by rows now and freed after), a ``DistributedArray``
    from ``pool.scatter`` (reused; ``y`` then a ``DistributedArray`` with the same row
    blocks or an array), or a dask array (each rank computes its own row chunks, one at a
    time). ``score``: ``f_classif``, ``f_regression``, ``chi2`` or ``mutual_info``
    (binned, ``n_bins`` per column; see the module notes). ``support_`` is what
    ``SelectKBest(k=k)`` keeps; ``scores_``/``pvalues_`` are scikit-learn's. ``pool``:
    default the current pool; ``timeout``: seconds to wait for the ranks (None: no limit).
    """
    if score not in SCORES:
        raise InvalidValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
    if score == "mutual_info" and (not isinstance(n_bins, int) or n_bins < 2):
        raise InvalidValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    pool = require(pool)
    owned: list[Any] = []
    try:
        source, (n, d) = _x_source(X, pool, owned, score)
        k = check_k(k, d)
        bounds = row_bounds(n, pool.size)
        ykey, classes = _y_source(y, n, bounds, score, pool, owned)
        spec = {"score": score, "classes": classes, "n_bins": n_bins, "n_features": d}
        results = pool.apply(_univariate_on_rank, (source, ykey, bounds, spec), timeout=timeout)
    finally:
        for handle in owned:
            handle.free()
    scores, pvalues, extra = results[0]
    return _result(score, scores, pvalues, k, extra, pool.size)


def _x_source(
    X: Any, pool: Pool, owned: list[Any], score: str
) -> tuple[tuple[str, Any], tuple[int, int]]:
    if isinstance(X, DistributedArray):
        X._check()
        if len(X.shape) != 2 or X.bounds != row_bounds(X.shape[0], pool.size):
            raise InvalidValueError(
                f"X is a {X.shape} DistributedArray in {len(X.bounds)} blocks; univariate "
                f"needs a 2-D array scattered over this pool's {pool.size} ranks"
            )
        return ("store", X.key), (X.shape[0], X.shape[1])
    if _is_dask(X):
        if X.ndim != 2:
            raise InvalidValueError(f"X must be 2-D (rows x features), got a dask array {X.shape}")
        return ("dask", X), (int(X.shape[0]), int(X.shape[1]))
    Xa = check_X(X)
    check_finite(Xa)
    _check_block(Xa, score, None, 0)
    handle = pool.scatter(np.ascontiguousarray(Xa, dtype=np.float64))
    owned.append(handle)
    return ("store", handle.key), Xa.shape


def _y_source(
    y: Any, n: int, bounds: list[tuple[int, int]], score: str, pool: Pool, owned: list[Any]
) -> tuple[str, np.ndarray | None]:
    classify = score != "f_regression"
    if isinstance(y, DistributedArray):
        y._check()
        if y.bounds != bounds:
            raise InvalidValueError(
                f"y is scattered in row blocks {y.bounds} but X's are {bounds}: "
                "scatter y on the same pool with the same number of rows as X"
            )
        classes = np.unique(np.concatenate(pool.run(_local_classes, y.key))) if classify else None
        key = y.key
    else:
        ya = check_y(np.asarray(y.compute()) if _is_dask(y) else y, n)
        classes = np.unique(ya) if classify else None
        if not classify and ya.dtype.kind not in "biuf":
            raise InvalidValueError(f"f_regression needs a numeric y, got dtype {ya.dtype}")
        handle = pool.scatter(ya)
        owned.append(handle)
        key = handle.key
    if classify and classes is not None and len(classes) < 2:
        raise InvalidValueError(
            f"{score} needs at least 2 classes in y, found {len(classes)}: "
            "use score='f_regression' for a continuous target"
        )
    return key, classes


def _local_classes(key: str) -> np.ndarray:
    return np.unique(engine_store.get(key))


def _result(
    score: str, scores: np.ndarray, pvalues: np.ndarray | None, k: int, extra: dict, size: int
) -> SelectionResult:
    clean = np.where(np.isnan(scores), np.finfo(scores.dtype).min, scores)
    support = np.zeros(scores.size, dtype=bool)
    support[np.argsort(clean, kind="mergesort")[-k:]] = True  # SelectKBest's rule
    best_first = np.argsort(clean, kind="mergesort")[::-1]
    ranking = np.empty(scores.size, dtype=int)
    ranking[best_first] = np.arange(1, scores.size + 1)
    history = [
        {"n_features": i + 1, "feature": int(f), "score": float(scores[f])}
        for i, f in enumerate(best_first)
    ]
    return SelectionResult(
        f"univariate {score}",
        support_=support,
        ranking_=ranking,
        history=history,
        scores_=scores,
        pvalues_=pvalues,
        score_name=score,
        info={"ranks": size, **extra},
    )


# -- engine side -------------------------------------------------------------------------


def _blocks(source: tuple[str, Any], lo: int, hi: int) -> Iterator[tuple[int, np.ndarray]]:
    """This rank's rows as ``(offset, block)``: the stored block, or dask chunks one by one."""
    kind, x = source
    if kind == "store":
        yield 0, np.ascontiguousarray(engine_store.get(x), dtype=np.float64)
        return
    part = x[lo:hi]
    start = 0
    for rows in part.chunks[0]:
        block = part[start : start + rows].compute(scheduler="synchronous")
        yield start, np.ascontiguousarray(block, dtype=np.float64)
        start += rows


def _check_block(block: np.ndarray, score: str, rank: int | None, offset: int) -> None:
    """ValueError for NaN/inf (and negative values for chi2) in a block of ``rank``."""
    where = "" if rank is None else f"rank {rank}, "
    if not np.isfinite(block).all():
        row = int(np.argwhere(~np.isfinite(block))[0][0])
        raise InvalidValueError(
            f"X has NaN or infinite values ({where}row {offset + row} of the block): "
            "impute or drop them before selecting"
        )
    if score == "chi2" and block.size and block.min() < 0:
        raise InvalidValueError(
            f"chi2 needs non-negative X (counts, frequencies); {where}negative values found: "
            "use f_classif, or shift/bin the features"
        )


def _pooled(counts: np.ndarray, sums: np.ndarray, m2: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Sum over groups (first axis) of ``m2 + n (mean_group - mean)^2``: the exact pooled M2."""
    n = counts[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(n > 0, sums / np.where(n > 0, n, 1.0), 0.0)
    return (m2 + n * (own - means) ** 2).sum(axis=0)


def _collect(blocks: Iterator, fn: Any) -> tuple[list[Any], BaseException | None]:
    """``fn(block, target)`` of every block; an error is kept for the collective, not raised."""
    out: list[Any] = []
    try:
        for block, target in blocks:
            out.append(fn(block, target))
    except Exception as e:
        return [], e
    return out, None


def _stack(parts: list[Any], i: int, shape: tuple[int, ...]) -> np.ndarray:
    """Field ``i`` of every block's statistics, stacked (one zero group when there are none)."""
    if not parts:
        return np.zeros((1, *shape))
    return np.array([np.asarray(p[i], dtype=np.float64) for p in parts]).reshape(-1, *shape)


@on_every_rank
def _univariate_on_rank(
    source: tuple[str, Any], ykey: str, bounds: list[tuple[int, int]], spec: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Engine side: local statistics of every block, pooled through ``wb.allreduce``."""
    from workbench.progress import progress

    rank, _ = world()
    lo, hi = bounds[rank]
    score, classes, d = spec["score"], spec["classes"], spec["n_features"]
    y = np.asarray(engine_store.get(ykey))
    if classes is None:
        target = np.ascontiguousarray(y, dtype=np.float64)
    else:
        target = np.searchsorted(classes, y).astype(np.int64)
    n_blocks = 1 if source[0] == "store" else len(source[1][lo:hi].chunks[0])
    passes = 2 if score == "mutual_info" else 1

    def each_block(done: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, (offset, block) in enumerate(_blocks(source, lo, hi)):
            _check_block(block, score, rank, offset)
            yield block, target[offset : offset + block.shape[0]]
            progress(done + i + 1, n_blocks * passes, blocks=i + 1)

    if score == "f_regression":
        return (*_f_regression(each_block(0), d), {})
    if score == "mutual_info":
        return _mutual_info(each_block, len(classes), d, spec["n_bins"], n_blocks)
    return (*_class_scores(each_block(0), len(classes), d, score), {})


def _class_scores(blocks: Iterator, k: int, d: int, score: str) -> tuple[np.ndarray, np.ndarray]:
    """ANOVA F (``f_classif``) or chi-squared (``chi2``) from class counts, sums and M2."""
    from scipy import special

    parts, error = _collect(blocks, lambda b, t: kernels.class_moments(b, t, k))
    counts, sums = _stack(parts, 0, (k,)), _stack(parts, 1, (k, d))
    n_k, s_k = reduce_or_raise([counts.sum(axis=0), sums.sum(axis=0)], error)
    n = n_k.sum()
    if score == "chi2":  # observed class-wise sums against their expectation
        expected = np.outer(n_k / n, s_k.sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            chisq = ((s_k - expected) ** 2 / expected).sum(axis=0)
        return chisq, special.chdtrc(k - 1, chisq)
    means = s_k / n_k[:, None]
    (within,) = reduce_or_raise([_pooled(counts, sums, _stack(parts, 2, (k, d)), means)], None)
    grand = s_k.sum(axis=0) / n
    ssbn = (n_k[:, None] * (means - grand) ** 2).sum(axis=0)
    msb, msw = ssbn / (k - 1), within.sum(axis=0) / (n - k)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = msb / msw
    return f, special.fdtrc(k - 1, n - k, f)


def _f_regression(blocks: Iterator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``f_regression`` (centred, ``force_finite=True``) from sums and co-moments."""
    from scipy import stats

    parts, error = _collect(blocks, lambda b, t: (len(t), *kernels.co_moments(b, t)))
    counts, sx, sy = _stack(parts, 0, ()), _stack(parts, 1, (d,)), _stack(parts, 2, ())
    totals = [counts.sum(keepdims=True), sx.sum(axis=0), sy.sum(keepdims=True)]
    n, tx, ty = reduce_or_raise(totals, error)
    mx, my = tx / n[0], ty[0] / n[0]
    both = np.concatenate([sx, sy[:, None]], axis=1)
    m2 = np.concatenate([_stack(parts, 3, (d,)), _stack(parts, 4, (1,))], axis=1)
    pooled = _pooled(counts, both, m2, np.append(mx, my))
    with np.errstate(invalid="ignore", divide="ignore"):
        bx = np.where(counts[:, None] > 0, sx / np.maximum(counts, 1)[:, None], 0.0) - mx
        by = np.where(counts > 0, sy / np.maximum(counts, 1), 0.0) - my
    cross = (_stack(parts, 5, (d,)) + counts[:, None] * bx * by[:, None]).sum(axis=0)
    pooled, cross = reduce_or_raise([pooled, cross], None)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cross / np.sqrt(pooled[:d]) / np.sqrt(pooled[d])
    r[np.isnan(r)] = 0.0  # scikit-learn's force_finite
    dof = n[0] - 2
    with np.errstate(invalid="ignore", divide="ignore"):
        f = r**2 / (1 - r**2) * dof
        p = stats.f.sf(f, 1, dof)
    f[np.isinf(f)] = np.finfo(f.dtype).max
    nan = np.isnan(f)
    f[nan], p[nan] = 0.0, 1.0
    return f, p


def _mutual_info(
    each_block: Any, k: int, d: int, n_bins: int, n_blocks: int
) -> tuple[np.ndarray, None, dict[str, Any]]:
    """Binned MI: global column ranges (allreduce max), then (bin x class) histograms."""
    ranges, error = _collect(each_block(0), lambda b, t: kernels.column_range(b))
    lo = np.min([r[0] for r in ranges], axis=0) if ranges else np.full(d, np.inf)
    hi = np.max([r[1] for r in ranges], axis=0) if ranges else np.full(d, -np.inf)
    (both,) = reduce_or_raise([np.concatenate([-lo, hi])], error, op="max")
    lo, hi = -both[:d], both[d:]
    tables, error = _collect(
        each_block(n_blocks), lambda b, t: kernels.contingency_counts(b, t, lo, hi, n_bins, k)
    )
    local = np.sum(tables, axis=0) if tables else np.zeros((d, n_bins, k), np.int64)
    (counts,) = reduce_or_raise([local.astype(np.int64)], error)
    return kernels.mutual_info_from_counts(counts), None, {"bin_range": (lo, hi)}
