"""Analysis of a finished sweep (the Optuna export, the charts) and sweeps of several
objectives (every objective recorded, the Pareto front), on a real MPI pool."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from sweep_helpers import curve_or_fail, done_once, some_report_ms, tradeoff

from workbench.sweep import (
    ASHA,
    SweepStore,
    Trial,
    TrialState,
    choice,
    grid,
    loguniform,
    randint,
    sweep,
    uniform,
)

MULTI = {"acc": "max", "ms": "min"}


# -- analysis: Optuna export and charts -----------------------------------------------------------
ANALYSIS_SPACE = {"a": grid([1, 2, 3]), "lr": loguniform(1e-3, 1.0), "k": randint(1, 4),
                  "x": uniform(-1.0, 1.0), "act": choice(["relu", "tanh"]), "fixed": 7}  # fmt: skip


def test_to_optuna_and_plot_show_every_finished_trial(live_pool, tmp_path):
    import optuna
    import optuna.visualization as vis

    # ASHA's first rung at step 2: the a == 2 trials fail there before they report it, so
    # no decision of ASHA (which depends on which trials finish first) can prune them before
    r = sweep(curve_or_fail, ANALYSIS_SPACE, n_trials=12, strategy="random", metric="acc",
              scheduler=ASHA(min_resource=2, max_resource=9), max_failures=0,
              storage=str(tmp_path / "s.db"), show=False, seed=3)  # fmt: skip
    states = Counter(str(t["state"]) for t in r.trials)
    assert states["failed"] and states["done"] and states["pruned"], states
    study = r.to_optuna()
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    by_id = {t.user_attrs["workbench_trial"]: t for t in study.trials}
    assert sorted(by_id) == [t["id"] for t in r.trials]  # every trial finished here
    expected = {"done": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
    for t in r.trials:
        o = by_id[t["id"]]
        assert o.state.name == expected[str(t["state"])], t["id"]
        assert o.params == {k: t["config"][k] for k in ("a", "lr", "k", "x", "act")}
        assert o.user_attrs["fixed"] == 7
        assert o.value == (t["value"] if t["state"] == "done" else None)
        assert o.intermediate_values == {int(s): v for s, v in r.curves[t["id"]]}
        if t["state"] == "failed":
            assert "a=2 breaks" in o.user_attrs["error"]
    dists = study.trials[0].distributions
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    assert dists["x"] == optuna.distributions.FloatDistribution(-1.0, 1.0)
    assert dists["k"] == optuna.distributions.IntDistribution(1, 3)
    assert dists["a"] == optuna.distributions.CategoricalDistribution([1, 2, 3])
    assert dists["act"] == optuna.distributions.CategoricalDistribution(["relu", "tanh"])
    assert study.best_value == pytest.approx(r.best_value)
    assert study.best_trial.user_attrs["workbench_trial"] == r.best["id"]
    for plot in (vis.plot_optimization_history, vis.plot_parallel_coordinate,
                 vis.plot_param_importances, vis.plot_intermediate_values):  # fmt: skip
        assert plot(study).data, plot.__name__

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    r.to_optuna(storage=url)
    stored = optuna.load_study(study_name=r.name, storage=url)
    assert len(stored.trials) == len(study.trials) and stored.best_value == study.best_value
    with pytest.raises(ValueError, match=r"already exists.*study_name="):
        r.to_optuna(storage=url)

    html = r.plot()
    page = html._repr_html_()
    assert page.count("<svg") == 7  # history, 5 parameters, learning curves
    for title in ("acc of each finished trial", "best acc", "acc against lr", "log10 lr",
                  "acc against act", "0 relu, 1 tanh", "acc by step"):  # fmt: skip
        assert title in page, title
    curves = page[page.index("acc by step") :]
    assert all(c in curves for c in ("#2ca02c", "#ff7f0e", "#d62728"))  # done, pruned, failed


def test_analysis_without_a_space_and_without_optuna(monkeypatch):
    from workbench.errors import MissingDependencyError
    from workbench.sweep import SweepResult

    rows = [Trial(id=i, state=TrialState.DONE, config={"lr": 0.1 * (i + 1), "n": i,
                  "opt": "ab"[i % 2], "fixed": 1}, value=float(i), values=None, started=1.0,
                  finished=2.0 + i, error=None, attempt=1) for i in range(4)]  # fmt: skip
    r = SweepResult("s", ":memory:", "m", "min", rows, {0: [(0.5, 1.0), (1.5, 0.5)]})
    study = r.to_optuna()
    d = study.trials[0].distributions
    assert set(d) == {"lr", "n", "opt"} and d["n"].low == 0 and d["n"].high == 3
    assert study.best_value == 0.0 and study.trials[0].intermediate_values == {0: 1.0, 1: 0.5}
    assert r.plot().data.count("<svg") == 5  # history, lr, n, opt, the curve of trial 0
    assert "no finished trial" in SweepResult("e", ":memory:", "m", "max", [], {}).plot().data
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match="pip install optuna"):
        r.to_optuna()


# -- several objectives ---------------------------------------------------------------------------
def _front_by_hand(trials):
    pts = {t["id"]: (t["values"]["acc"], t["values"]["ms"]) for t in trials}

    def dominated(a):
        return any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in pts.values())

    return sorted(i for i, p in pts.items() if not dominated(p))


@pytest.mark.parametrize("strategy", ["random", "grid", "tpe", "nsga2"])
def test_multi_objective_sweep_records_every_objective_and_its_pareto_front(
    live_pool, tmp_path, strategy
):
    import optuna
    import optuna.visualization as vis

    db = str(tmp_path / "s.db")
    space = ({"x": grid([0.2, 0.5, 0.9]), "c": grid([0.0, 1.0, 3.0])} if strategy == "grid"
             else {"x": uniform(0.0, 1.0), "c": uniform(0.0, 3.0)})  # fmt: skip
    r = sweep(tradeoff, space, n_trials=12, strategy=strategy, metrics=MULTI, storage=db,
              show=False, seed=2)  # fmt: skip
    assert r.metric == "acc" and r.metrics == MULTI
    trials = done_once(db, "tradeoff", 9 if strategy == "grid" else 12)
    for t in trials:
        c = t["config"]
        assert t["state"] == "done" and t["value"] == c["x"]
        assert t["values"] == {"acc": c["x"], "ms": pytest.approx(10 * c["x"] ** 2 + c["c"])}
    front = [t["id"] for t in r.pareto_front()]
    assert front == _front_by_hand(trials) and front
    if strategy == "grid":  # c = 0 is never dominated, c > 0 always is
        assert sorted(t["config"]["c"] for t in r.pareto_front()) == [0.0] * 3
    study = r.to_optuna()
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                optuna.study.StudyDirection.MINIMIZE]  # fmt: skip
    assert study.metric_names == ["acc", "ms"]
    assert sorted(t.user_attrs["workbench_trial"] for t in study.best_trials) == front
    assert vis.plot_pareto_front(study).data
    page = r.plot().data
    assert "Pareto front" in page and "acc (higher is better) against ms" in page
    assert "on the Pareto front" in r.show(widgets=True).header.value
    with pytest.raises(ValueError, match=r"other settings.*metrics"):
        sweep(tradeoff, space, n_trials=12, strategy=strategy, storage=db, show=False,
              metrics={"acc": "max", "ms": "max"})  # fmt: skip


def test_a_metric_reported_only_sometimes_fails_those_trials_naming_it(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    space = {"a": grid([1, 2, 3, 4])}
    r = sweep(some_report_ms, space, metrics=MULTI, storage=db, show=False, max_failures=2)
    by_a = {t["config"]["a"]: t for t in r.trials}
    assert [by_a[a]["state"] for a in (1, 2, 3, 4)] == ["done", "failed", "done", "failed"]
    bad = by_a[2]
    assert bad["failures"] == 1 and bad["attempt"] == 1  # not retried: it would end the same
    assert f"trial {bad['id']} ended without a value of metric 'ms'" in bad["error"]
    assert "it gave: acc" in bad["error"] and "report(step=..., acc=..., ms=...)" in bad["error"]
    assert [t["config"]["a"] for t in r.pareto_front()] == [3]
    store = SweepStore(db)  # intact: every trial and its values readable, resume runs nothing
    try:
        assert [t["values"] for t in store.trials("some_report_ms")] == [
            {"acc": 1.0, "ms": 1.0}, None, {"acc": 3.0, "ms": 1.0}, None]  # fmt: skip
    finally:
        store.close()
    again = sweep(some_report_ms, space, metrics=MULTI, storage=db, show=False)
    assert [t["attempt"] for t in again.trials] == [1, 1, 1, 1]
