"""workbench.select picks what scikit-learn picks, on a real MPI pool (3 ranks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import outputs_text, run_template
from sklearn import datasets
from sklearn import feature_selection as fs
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import workbench as wb
from workbench.errors import RankError

ROOT = Path(__file__).resolve().parent.parent
RTOL = 1e-8  # sums in another order than scikit-learn's: equal to rounding


def _data(name: str, rows: int | None = None, cols: int | None = None):
    if name == "synthetic":
        X, y = datasets.make_classification(
            n_samples=240, n_features=14, n_informative=5, n_redundant=2, random_state=1
        )
    else:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X[:rows, :cols], y[:rows]


CLASSIFICATION = ["breast_cancer", "wine", "digits", "synthetic"]


# -- univariate --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Features .* are constant")  # digits: sklearn's own
@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("name", CLASSIFICATION)
@pytest.mark.parametrize("score", ["f_classif", "chi2"])
def test_univariate_classification_equals_sklearn(live_pool, name, score):
    X, y = _data(name)
    if score == "chi2":
        X = X - X.min(axis=0)  # chi2 needs non-negative features
    res = wb.select.univariate(X, y, score, k=5)
    sk = fs.SelectKBest(getattr(fs, score), k=5).fit(X, y)
    np.testing.assert_allclose(res.scores_, sk.scores_, rtol=RTOL)
    np.testing.assert_allclose(res.pvalues_, sk.pvalues_, rtol=1e-6, atol=1e-300)
    assert (res.support_ == sk.get_support()).all()
    assert res.ranking_[res.support_].max() == 5


@pytest.mark.parametrize("name", ["diabetes", "synthetic"])
def test_univariate_regression_equals_sklearn(live_pool, name):
    if name == "synthetic":
        X, y = datasets.make_regression(n_samples=300, n_features=12, noise=5.0, random_state=0)
    else:
        X, y = datasets.load_diabetes(return_X_y=True)
    res = wb.select.univariate(X, y, "f_regression", k=4)
    f, p = fs.f_regression(X, y)
    np.testing.assert_allclose(res.scores_, f, rtol=RTOL)
    np.testing.assert_allclose(res.pvalues_, p, rtol=1e-6, atol=1e-300)
    assert (res.support_ == fs.SelectKBest(fs.f_regression, k=4).fit(X, y).get_support()).all()


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "synthetic"])
def test_mutual_info_equals_sklearn_on_the_same_bins(live_pool, name):
    X, y = _data(name)
    res = wb.select.univariate(X, y, "mutual_info", k=3, n_bins=8)
    codes = wb.select.discretize(X, 8)
    expected = fs.mutual_info_classif(codes, y, discrete_features=True)
    np.testing.assert_allclose(res.scores_, expected, rtol=1e-10, atol=1e-12)
    lo, hi = res.info["bin_range"]
    np.testing.assert_array_equal(lo, X.min(axis=0))
    np.testing.assert_array_equal(hi, X.max(axis=0))


@pytest.mark.parametrize("score", ["f_classif", "f_regression", "chi2", "mutual_info"])
def test_shards_equal_concatenated(live_pool, score):
    """Scattered handles and a dask array give what the whole array gives."""
    import dask.array as da

    X, y = _data("wine")
    if score == "f_regression":
        y = X[:, 0] * 2 + y
        X = X[:, 1:]
    whole = wb.select.univariate(X, y, score, k=3)
    Xh, yh = live_pool.scatter(X), live_pool.scatter(y)
    try:
        sharded = wb.select.univariate(Xh, yh, score, k=3)
    finally:
        Xh.free()
        yh.free()
    chunked = wb.select.univariate(da.from_array(X, chunks=(25, 7)), y, score, k=3)
    for other in (sharded, chunked):
        np.testing.assert_allclose(other.scores_, whole.scores_, rtol=1e-10)
        assert (other.support_ == whole.support_).all()
    assert not live_pool.placed  # nothing left on the engines


# -- sequential --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "estimator", "kwargs"),
    [
        ("breast_cancer", GaussianNB(), {"n_features_to_select": 3}),
        ("wine", KNeighborsClassifier(3), {"n_features_to_select": 3, "cv": 3}),
        ("iris", GaussianNB(), {"n_features_to_select": 2, "direction": "backward"}),
        ("synthetic", GaussianNB(), {"n_features_to_select": 0.3, "direction": "backward"}),
        ("synthetic", GaussianNB(), {"tol": 0.005, "scoring": "balanced_accuracy"}),
    ],
    ids=["cancer-forward", "wine-knn", "iris-backward", "synthetic-backward", "synthetic-auto"],
)
def test_sequential_equals_sklearn(live_pool, name, estimator, kwargs):
    X, y = _data(name, rows=150, cols=8)
    res = wb.select.sequential(estimator, X, y, **kwargs)
    sk = fs.SequentialFeatureSelector(estimator, **{"cv": 5, **kwargs}).fit(X, y)
    assert (res.support_ == sk.support_).all()
    assert res.support_.sum() == sk.n_features_to_select_
    assert [h["n_features"] for h in res.history] == list(
        range(1, len(res.history) + 1)
        if kwargs.get("direction", "forward") == "forward"
        else range(X.shape[1] - 1, X.shape[1] - len(res.history) - 1, -1)
    )
    assert "<svg" in res.svg()


def test_sequential_order_matches_greedy_sklearn(live_pool):
    """The pick order is sklearn's: growing n_features_to_select one at a time."""
    X, y = _data("breast_cancer", rows=150, cols=8)
    res = wb.select.sequential(GaussianNB(), X, y, n_features_to_select=3)
    previous = np.zeros(X.shape[1], dtype=bool)
    for k, feature in enumerate(res.order_, start=1):
        sk = fs.SequentialFeatureSelector(GaussianNB(), n_features_to_select=k).fit(X, y)
        assert np.flatnonzero(sk.support_ & ~previous).tolist() == [feature]
        previous = sk.support_


def test_placed_data_is_sent_once_and_reused(live_pool):
    X, y = _data("wine", cols=6)
    data = wb.select.place(X, y)
    try:
        before = len(live_pool.placed)
        a = wb.select.sequential(GaussianNB(), data, n_features_to_select=2)
        b = wb.select.rfe(DecisionTreeClassifier(random_state=0), data, n_features_to_select=3)
        assert len(live_pool.placed) == before  # nothing placed again
        assert a.support_.sum() == 2 and b.support_.sum() == 3
    finally:
        data.free()
    with pytest.raises(RuntimeError, match="freed"):
        wb.select.sequential(GaussianNB(), data, n_features_to_select=2)


# -- rfe / rfecv --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "estimator", "kwargs"),
    [
        ("breast_cancer", LogisticRegression(max_iter=500), {"n_features_to_select": 4}),
        ("wine", LogisticRegression(max_iter=500), {"n_features_to_select": 3, "step": 3}),
        ("synthetic", DecisionTreeClassifier(random_state=0), {"step": 0.2}),
    ],
    ids=["cancer", "wine-step3", "synthetic-tree"],
)
def test_rfe_equals_sklearn(live_pool, name, estimator, kwargs):
    X, y = _data(name, rows=200)
    X = StandardScaler().fit_transform(X)
    res = wb.select.rfe(estimator, X, y, **kwargs)
    sk = fs.RFE(estimator, **kwargs).fit(X, y)
    assert (res.support_ == sk.support_).all()
    assert (res.ranking_ == sk.ranking_).all()


@pytest.mark.parametrize(
    ("name", "estimator", "kwargs"),
    [
        ("breast_cancer", LogisticRegression(max_iter=500), {"step": 3, "cv": 3}),
        ("wine", LogisticRegression(max_iter=500), {"cv": 4, "min_features_to_select": 2}),
        ("synthetic", DecisionTreeClassifier(random_state=0), {"step": 2, "cv": 3}),
    ],
    ids=["cancer", "wine", "synthetic-tree"],
)
def test_rfecv_equals_sklearn(live_pool, name, estimator, kwargs):
    X, y = _data(name, rows=180, cols=12)
    X = StandardScaler().fit_transform(X)
    res = wb.select.rfe(estimator, X, y, **kwargs)
    sk = fs.RFECV(estimator, **kwargs).fit(X, y)
    assert (res.support_ == sk.support_).all()
    assert (res.ranking_ == sk.ranking_).all()
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "n_features"):
        np.testing.assert_allclose(res.cv_results_[key], sk.cv_results_[key], rtol=1e-12)
    assert "<svg" in res.svg()


# -- permutation importance -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("breast_cancer", {"n_repeats": 3, "random_state": 0}),
        ("wine", {"n_repeats": 4, "random_state": 7, "scoring": "balanced_accuracy"}),
        ("synthetic", {"n_repeats": 2, "random_state": 1, "max_samples": 0.5}),
    ],
    ids=["cancer", "wine-scoring", "synthetic-max-samples"],
)
def test_permutation_importance_equals_sklearn(live_pool, name, kwargs):
    X, y = _data(name, rows=200, cols=10)
    X = StandardScaler().fit_transform(X)
    model = LogisticRegression(max_iter=500).fit(X, y)
    res = wb.select.permutation_importance(model, X, y, **kwargs)
    sk = permutation_importance(model, X, y, **kwargs)
    np.testing.assert_array_equal(res.importances, sk.importances)
    np.testing.assert_array_equal(res.importances_mean, sk.importances_mean)
    np.testing.assert_array_equal(res.importances_std, sk.importances_std)


# -- bad input ------------------------------------------------------------------------------


class NotAnEstimator:
    def train(self, X, y):
        return self


def test_bad_input_gives_clear_errors(live_pool):
    X, y = _data("wine", cols=6)
    with pytest.raises(ValueError, match="178 rows but y has 177 values"):
        wb.select.univariate(X, y[:-1], "f_classif", k=2)
    with pytest.raises(ValueError, match="178 rows but y has 177 values"):
        wb.select.sequential(GaussianNB(), X, y[:-1], n_features_to_select=2)
    nan = X.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*row 5, column 2.*impute"):
        wb.select.univariate(nan, y, "f_classif", k=2)
    with pytest.raises(ValueError, match=r"NaN.*impute"):
        wb.select.rfe(LogisticRegression(), nan, y, n_features_to_select=2)
    with pytest.raises(ValueError, match=r"k=7 but X has only 6 features.*k='all'"):
        wb.select.univariate(X, y, "f_classif", k=7)
    with pytest.raises(ValueError, match="n_features_to_select=6 but X has 6 features"):
        wb.select.sequential(GaussianNB(), X, y, n_features_to_select=6)
    with pytest.raises(TypeError, match=r"scikit-learn estimator.*NotAnEstimator"):
        wb.select.sequential(NotAnEstimator(), X, y, n_features_to_select=2)
    with pytest.raises(TypeError, match="class GaussianNB"):
        wb.select.rfe(GaussianNB, X, y)
    with pytest.raises(ValueError, match="non-negative"):
        wb.select.univariate(X - 100, y, "chi2", k=2)
    with pytest.raises(ValueError, match="score must be one of"):
        wb.select.univariate(X, y, "anova", k=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        wb.select.univariate(X, np.zeros(len(y)), "f_classif", k=2)
    assert not live_pool.placed


def test_nan_in_scattered_shard_is_reported_by_rank(live_pool):
    X, y = _data("wine", cols=6)
    X = X.copy()
    X[-1, 0] = np.inf  # lands on the last rank
    Xh, yh = live_pool.scatter(X), live_pool.scatter(y)
    try:
        with pytest.raises(RankError, match=f"rank {live_pool.size - 1}"):
            wb.select.univariate(Xh, yh, "f_classif", k=2)
    finally:
        Xh.free()
        yh.free()


def test_no_pool_is_a_clear_error(live_pool):
    from workbench.pool import set_current

    set_current(None)
    try:
        with pytest.raises(RuntimeError, match="wb start"):
            wb.select.univariate(*_data("iris"), "f_classif", k=2)
    finally:
        set_current(live_pool)


# -- notebook -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_feature_selection_notebook(tmp_path):
    nb = run_template(
        "feature-selection.ipynb", tmp_path, "n_engines=2", "n_rows=400", "n_wide=40", "n_pick=2"
    )
    text = outputs_text(nb)
    claims = [line for line in text.splitlines() if "identical to scikit-learn:" in line]
    assert len(claims) == 7, text
    assert all(line.endswith("True") for line in claims), claims
    html = [
        o["data"]["text/html"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert sum("<svg" in h for h in html) >= 3
    assert "pool stopped" in text
