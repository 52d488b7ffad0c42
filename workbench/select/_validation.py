"""Checks of what a user passes, run in the notebook before anything goes to the engines."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = [
    "allows_nan",
    "check_X",
    "check_estimator",
    "check_finite",
    "check_k",
    "check_y",
]


def check_estimator(estimator: Any, *, fitted: bool = False) -> None:
    """TypeError unless ``estimator`` is a scikit-learn estimator that can be cloned (and,
    when ``fitted``, predict)."""
    missing = [m for m in ("get_params", "set_params") if not callable(getattr(estimator, m, None))]
    need = "predict" if fitted else "fit"
    if not callable(getattr(estimator, need, None)):
        missing.append(need)
    if isinstance(estimator, type) or missing:
        what = (
            f"the class {estimator.__name__} (not an instance)"
            if isinstance(estimator, type)
            else f"a {type(estimator).__name__} without {', '.join(missing)}"
        )
        raise InvalidTypeError(
            f"estimator must be a scikit-learn estimator instance, got {what}. "
            "Pass e.g. LogisticRegression(), or derive your model from "
            "sklearn.base.BaseEstimator so it can be cloned and fitted on the engines."
        )


def allows_nan(estimator: Any) -> bool:
    """Whether the estimator's tags say it handles NaN inputs."""
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError):
        return False


def check_X(X: Any, *, min_features: int = 1, dtype: Any = "numeric") -> np.ndarray:
    """``X`` as a 2-D numpy array of ``dtype`` with at least ``min_features`` columns, with a
    clear error for the wrong shape or type."""
    from sklearn.utils import check_array

    if hasattr(X, "dask") and hasattr(X, "chunks"):
        raise InvalidTypeError(
            "X is a dask array: pass it to wb.select.univariate (which streams its chunks), "
            "or call X.compute() first for the wrapper methods"
        )
    try:
        arr = check_array(X, dtype=dtype, ensure_all_finite=False, ensure_min_features=min_features)
    except ValueError as e:
        raise InvalidValueError(f"X: {e}") from None
    return arr


def check_finite(X: np.ndarray, *, name: str = "X", allow_nan: bool = False) -> None:
    """ValueError naming the first NaN/infinite entry of ``X`` (called ``name``); NaN passes
    when ``allow_nan``."""
    if X.dtype.kind not in "fc":
        return
    bad = ~np.isnan(X) & ~np.isfinite(X) if allow_nan else ~np.isfinite(X)
    if bad.any():
        where = np.argwhere(bad)[0]
        at = f"row {where[0]}" + (f", column {where[1]}" if len(where) > 1 else "")
        what = "infinite values" if allow_nan else "NaN or infinite values"
        raise InvalidValueError(
            f"{name} contains {what} ({int(bad.sum())} entries, first at {at}): "
            "impute or drop them first (e.g. sklearn.impute.SimpleImputer)"
        )


def check_y(y: Any, n_rows: int) -> np.ndarray:
    """``y`` as a 1-D array with one value per row of X (``n_rows``)."""
    if y is None:
        raise InvalidValueError("y is required: pass one target value per row of X")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise InvalidValueError(f"y must be 1-D (one target per row), got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise InvalidValueError(
            f"X has {n_rows} rows but y has {arr.shape[0]} values: "
            "pass one target value per row of X"
        )
    if arr.dtype.kind in "fc":
        check_finite(arr, name="y")
    return arr


def check_k(k: Any, n_features: int, *, name: str = "k") -> int:
    """``k`` (the argument called ``name``) as a number of features in ``1..n_features``
    (``"all"`` means all)."""
    if isinstance(k, str) and k == "all":
        return n_features
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise InvalidValueError(f"{name} must be a positive integer or 'all', got {k!r}")
    if k > n_features:
        raise InvalidValueError(
            f"{name}={k} but X has only {n_features} features: "
            f"pass {name} <= {n_features} or {name}='all'"
        )
    return int(k)
