"""joblib (scikit-learn's n_jobs) on the engines: results equal to n_jobs=1 on several
estimators and bundled data sets, large arrays sent once per engine, errors as themselves
with the rank's traceback, progress per rank, enable/disable, no pool."""

from __future__ import annotations

import os
import re

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import workbench as wb
from workbench import engine_store
from workbench.errors import NoPoolError, RankError
from workbench.joblib_backend import disable, enable, enabled, use

SEARCHES = {
    "digits-svc": (load_digits, SVC(), {"C": [0.5, 5.0], "gamma": [1e-3, 1e-4]}),
    "iris-logistic": (
        load_iris,
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]},
    ),
    "wine-forest": (
        load_wine,
        RandomForestClassifier(n_estimators=15, random_state=0),
        {"max_depth": [2, None], "max_features": ["sqrt", 0.5]},
    ),
    "breast-cancer-knn": (
        load_breast_cancer,
        make_pipeline(StandardScaler(), KNeighborsClassifier()),
        {"kneighborsclassifier__n_neighbors": [3, 7, 15]},
    ),
}


@pytest.mark.parametrize("case", list(SEARCHES))
def test_grid_search_on_the_pool_equals_n_jobs_1(live_pool, case):
    load, estimator, grid = SEARCHES[case]
    X, y = load(return_X_y=True)
    local = GridSearchCV(estimator, grid, cv=3, n_jobs=1).fit(X, y)
    with use(live_pool, progress=False) as backend:
        pooled = GridSearchCV(estimator, grid, cv=3, n_jobs=-1).fit(X, y)
    call = backend.history[0]  # the search (a forest's refit, n_jobs=None, is a second call)
    n_fits = 3 * len(local.cv_results_["params"])
    assert call["tasks"] == n_fits and sum(call["per_rank"].values()) == n_fits
    assert sum(1 for n in call["per_rank"].values() if n) >= 2, call["per_rank"]  # spread
    for k in range(3):
        key = f"split{k}_test_score"
        np.testing.assert_array_equal(pooled.cv_results_[key], local.cv_results_[key])
    assert pooled.best_params_ == local.best_params_
    assert pooled.best_score_ == local.best_score_


def test_forest_cross_val_score_and_permutation_importance_equal_n_jobs_1(live_pool):
    X, y = load_wine(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=24, random_state=1)
    local = forest.set_params(n_jobs=1).fit(X, y)
    local_scores = cross_val_score(forest, X, y, cv=4, n_jobs=1)
    local_imp = permutation_importance(local, X, y, n_repeats=4, random_state=0, n_jobs=1)
    with wb.joblib(live_pool, progress=False) as backend:
        pooled = RandomForestClassifier(n_estimators=24, random_state=1, n_jobs=-1).fit(X, y)
        scores = cross_val_score(forest, X, y, cv=4, n_jobs=-1)
        imp = permutation_importance(pooled, X, y, n_repeats=4, random_state=0, n_jobs=-1)
    assert [c["tasks"] for c in backend.history] == [24, 4, X.shape[1]]
    np.testing.assert_array_equal(pooled.predict_proba(X), local.predict_proba(X))
    np.testing.assert_array_equal(scores, local_scores)
    np.testing.assert_array_equal(imp.importances, local_imp.importances)


def _engine_pid(i):
    return os.getpid()


def test_large_arrays_reach_each_engine_once_per_call_and_are_dropped(live_pool):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 40))  # 1.9 MB: far above min_bytes
    y = (X[:, 0] + 0.1 * rng.normal(size=6000) > 0).astype(int)
    est = LogisticRegression(max_iter=200)
    local = cross_val_score(est, X, y, cv=8, n_jobs=1)
    with use(live_pool, progress=False, min_bytes=1 << 20) as backend:
        scores = cross_val_score(est, X, y, cv=8, n_jobs=-1)
    np.testing.assert_array_equal(scores, local)
    (call,) = backend.history
    assert call["tasks"] == 8
    # X only (the fold indices are below min_bytes), to each engine at most once, not per task
    assert call["arrays"] == [{"bytes": X.nbytes, "engines": call["arrays"][0]["engines"]}]
    assert 1 <= call["arrays"][0]["engines"] <= live_pool.size
    left = live_pool.run(engine_store.info)
    assert not [k for keys in left for k in keys if k.startswith("joblib-")], left


class Fails(ClassifierMixin, BaseEstimator):
    """Fits unless ``bad`` (module level: the engines import it from the test module)."""

    def __init__(self, bad=0):
        self.bad = bad

    def fit(self, X, y):
        if self.bad:
            raise ValueError(f"cannot fit with bad={self.bad}")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_a_task_error_is_raised_as_itself_with_the_rank_traceback(live_pool):
    X, y = load_iris(return_X_y=True)
    with use(live_pool, progress=False), pytest.raises(ValueError, match="bad=3") as info:
        cross_val_score(Fails(bad=3), X, y, cv=3, n_jobs=-1, error_score="raise")
    cause = info.value.__cause__
    assert isinstance(cause, RankError) and cause.ranks[0] in range(live_pool.size)
    assert "in fit" in cause.failures[0].traceback and "Traceback" in cause.failures[0].traceback
    with use(live_pool, progress=False):  # the pool still works after the failed call
        assert cross_val_score(Fails(), X, y, cv=3, n_jobs=-1).shape == (3,)


def test_progress_counts_tasks_per_rank(live_pool, capfd):
    X, y = load_iris(return_X_y=True)
    with use(live_pool, progress=True) as backend:  # the widget, outside a notebook
        cross_val_score(LogisticRegression(max_iter=300), X, y, cv=5, n_jobs=-1)
    view = backend._view
    bars = {rank: bar.value for rank, (bar, _) in view.rows.items()}
    assert sum(bars.values()) == pytest.approx(1.0)  # each rank's share of the 5 tasks
    with use(live_pool, progress=None) as backend:  # text, outside a notebook
        cross_val_score(LogisticRegression(max_iter=300), X, y, cv=5, n_jobs=-1)
    line = capfd.readouterr().out.strip().splitlines()[-1]
    done = [int(n) for n in re.findall(r"r\d (\d+)/5", line)]
    assert line.endswith("[done]") and sum(done) == 5, line


def test_n_jobs_1_stays_in_the_notebook_and_enable_disable(live_pool):
    engines = {e.pid for e in live_pool.engines}
    with use(live_pool, progress=False) as backend:
        assert joblib.Parallel(n_jobs=1)(joblib.delayed(_engine_pid)(i) for i in range(3)) == [
            os.getpid()] * 3  # fmt: skip
        pids = joblib.Parallel()(joblib.delayed(_engine_pid)(i) for i in range(9))  # n_jobs=None
    assert set(pids) <= engines and len(backend.history) == 1
    try:
        be = enable(live_pool, progress=False)
        assert enabled() is be
        pids = joblib.Parallel(n_jobs=-1)(joblib.delayed(_engine_pid)(i) for i in range(9))
        assert set(pids) <= engines
        squares = joblib.Parallel(n_jobs=2)(joblib.delayed(lambda v: v * v)(i) for i in range(5))
        assert squares == [0, 1, 4, 9, 16]  # a lambda from here: pickled by value
    finally:
        assert disable() and enabled() is None and not disable()
    pids = joblib.Parallel(n_jobs=2, backend="threading")(
        joblib.delayed(_engine_pid)(i) for i in range(4)
    )
    assert not set(pids) & engines


def test_joblib_needs_a_running_pool(live_pool):
    from workbench.pool import set_current

    set_current(None)
    try:
        with pytest.raises(NoPoolError, match="no pool of engines is running"), wb.joblib():
            pass
    finally:
        set_current(live_pool)


def _sleepy(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_ctrl_c_interrupts_the_engines_tasks(live_pool):
    import signal
    import threading

    from helpers import wait_idle

    timer = threading.Timer(2.0, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with use(live_pool, progress=False), pytest.raises(KeyboardInterrupt):
            joblib.Parallel(n_jobs=-1)(joblib.delayed(_sleepy)(60) for _ in range(6))
    finally:
        timer.cancel()
    # the engines' 60 s sleeps were interrupted, not waited for (no wall-clock bound on the
    # call itself: a loaded machine may take its time; idle before the sleeps end is the proof)
    wait_idle(live_pool, timeout=30)
    with use(live_pool, progress=False):
        assert joblib.Parallel(n_jobs=-1)(joblib.delayed(_sleepy)(0) for _ in range(3)) == [0] * 3


def test_wb_joblib_on_off_and_pool_method(live_pool, shell, capsys):
    from IPython.core.error import UsageError

    engines = {e.pid for e in live_pool.engines}
    shell.run_line_magic("wb", "joblib on")
    try:
        assert "joblib runs on the 3 MPI engines" in capsys.readouterr().out
        pids = joblib.Parallel(n_jobs=-1)(joblib.delayed(_engine_pid)(i) for i in range(6))
        assert set(pids) <= engines
    finally:
        shell.run_line_magic("wb", "joblib off")
    assert "runs in the notebook again" in capsys.readouterr().out
    with pytest.raises(UsageError, match="joblib on"):
        shell.run_line_magic("wb", "joblib maybe")
    with live_pool.joblib(progress=False) as be:
        assert set(joblib.Parallel()(joblib.delayed(_engine_pid)(i) for i in range(6))) <= engines
    assert be.history[0]["tasks"] == 6
