"""Hyperparameter sweeps, the parts that need no engine: spaces, strategies and schedulers
(one contract each, over every implementation), trial records, the store, the package layout,
arguments refused before anything runs. The runner on a real MPI pool is in
test_sweep_runner.py, the live view in test_sweep_widget.py, analysis and several objectives
in test_sweep_multi.py."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest
from sweep_helpers import quick, tradeoff

from workbench.sweep import (
    ASHA,
    EXPLOIT,
    FIFO,
    PBT,
    MedianStopping,
    Scheduler,
    Strategy,
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
from workbench.sweep._space import Space
from workbench.sweep.schedulers import CONTINUE, STOP, get_scheduler
from workbench.sweep.strategies import GridStrategy, OptunaStrategy, RandomStrategy, get_strategy
from workbench.trials import best, front

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": uniform(-1.0, 1.0), "lr": loguniform(1e-4, 1e-1), "k": randint(1, 4),
         "act": choice(["relu", "tanh"]), "fixed": 7}  # fmt: skip
DISCRETE = {"a": grid([1, 2, 3]), "b": choice(["u", "v"]), "fixed": 7}
MULTI = {"acc": "max", "ms": "min"}


# -- spaces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: choice([]), ValueError, "at least one value"),
        (lambda: choice("abc"), TypeError, "list of values"),
        (lambda: choice([object()]), TypeError, "stored as JSON"),
        (lambda: grid([1, 1]), ValueError, "duplicate"),
        (lambda: uniform(1, 1), ValueError, "low < high"),
        (lambda: uniform(0, float("inf")), TypeError, "finite number"),
        (lambda: loguniform(0, 1), ValueError, "0 < low"),
        (lambda: loguniform(-1, 1), ValueError, "0 < low"),
        (lambda: randint(3, 3), ValueError, "high is excluded"),
        (lambda: randint(0.5, 3), TypeError, "integers"),
        (lambda: Space({}), ValueError, "space is empty"),
        (lambda: Space({"a": {"b": uniform(0, 1)}}), TypeError, "nested"),
        (lambda: Space({"a": object()}), TypeError, "neither a domain"),
        (lambda: Space([1, 2]), TypeError, "dict of name"),
        (
            lambda: get_strategy("grid", Space(SPACE)).setup(
                Space(SPACE), metric="m", mode="max", seed=0
            ),
            ValueError,
            "continuous",
        ),
        (lambda: get_strategy("bogus", Space(SPACE)), ValueError, "unknown strategy"),
        (lambda: get_scheduler("bogus"), ValueError, "unknown scheduler"),
        (lambda: ASHA(reduction_factor=1), ValueError, "reduction_factor"),
    ],
)
def test_invalid_spaces_and_options_fail_clearly(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_sweep_arguments_checked_before_any_engine_is_used(tmp_path):
    db = str(tmp_path / "s.db")
    with pytest.raises(TypeError, match="config, report"):
        sweep(lambda config: 0, SPACE, n_trials=1, storage=db)
    with pytest.raises(ValueError, match="mode must be"):
        sweep(quick, SPACE, n_trials=1, mode="up", storage=db)
    with pytest.raises(ValueError, match="pass metric="):
        sweep(quick, SPACE, n_trials=1, scheduler="asha", storage=db)


# -- strategies: one contract, every implementation -----------------------------------------------
STRATEGIES = ["grid", "random", "tpe"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_contract(name):
    space = Space(DISCRETE)
    s = get_strategy(name, space)
    s.setup(space, metric="m", mode="max", seed=3)
    configs = [s.suggest(i) for i in range(6)]
    for i, c in enumerate(configs):
        assert set(c) == {"a", "b", "fixed"} and c["fixed"] == 7
        assert c["a"] in (1, 2, 3) and c["b"] in ("u", "v")
        s.complete(i, c, "done" if i % 3 else "failed", float(c["a"]) if i % 3 else None)
    fresh = get_strategy(name, space)  # a resumed sweep replays finished trials
    fresh.setup(space, metric="m", mode="max", seed=3)
    fresh.restore([Trial(id=i, config=c, state="done", value=1.0)
                   for i, c in enumerate(configs)])  # fmt: skip
    assert fresh.suggest(6) is None or set(fresh.suggest(7)) == {"a", "b", "fixed"}


def test_grid_covers_the_product_exactly_once():
    space = Space(DISCRETE)
    s = get_strategy(None, Space({"a": grid([1, 2, 3]), "c": grid([0, 1])}))
    assert type(s).__name__ == "GridStrategy"
    s = get_strategy("grid", space)
    s.setup(space, metric="m", mode="max", seed=0)
    points = [s.suggest(i) for i in range(s.limit())]
    assert s.limit() == 6 and s.suggest(6) is None
    assert Counter((p["a"], p["b"]) for p in points) == Counter(
        (a, b) for a in (1, 2, 3) for b in ("u", "v")
    )


def test_random_is_reproducible_with_a_seed_and_order_free():
    space = Space(SPACE)

    def draw(seed, ids):
        s = get_strategy("random", space)
        s.setup(space, metric="m", mode="max", seed=seed)
        return {i: s.suggest(i) for i in ids}

    assert draw(5, range(8)) == draw(5, reversed(range(8)))
    assert draw(5, range(8)) != draw(6, range(8))
    for c in draw(5, range(50)).values():
        assert -1 <= c["x"] < 1 and 1e-4 <= c["lr"] < 1e-1 and c["k"] in (1, 2, 3)


# -- schedulers: one contract, every implementation -----------------------------------------------
SCHEDULERS = [FIFO, lambda: ASHA(max_resource=9), lambda: MedianStopping(min_trials=1),
              lambda: PBT(perturbation_interval=2, seed=0)]  # fmt: skip


@pytest.mark.parametrize("make", SCHEDULERS, ids=["fifo", "asha", "median", "pbt"])
def test_scheduler_contract(make):
    s = make()
    s.setup(metric="acc", mode="max")
    assert list(s.milestones) == sorted(s.milestones)
    for t in range(6):
        for step in range(1, 10):
            action = s.on_report(t, step, t * 0.1 + step * 0.01)
            assert action in (CONTINUE, STOP, EXPLOIT)
            if action == EXPLOIT:  # PBT: copy a better trial (the runner asks which)
                assert s.target(t) in range(t)
            if action == STOP:
                break
        s.on_complete(t, "done" if action == CONTINUE else "pruned", t * 0.1)
    s.forget(3)
    s2 = make()
    s2.setup(metric="acc", mode="min")
    s2.restore([Trial(id=0, state="done", value=1.0)], {0: [(1, 1.0), (2, 0.5)]})


def test_asha_promotes_and_prunes_as_worked_out_by_hand():
    # eta=3, rungs at 1 and 3 (9 is a full trial). At a rung a trial goes on iff it is among
    # the top n//3 of the n values there (the best while n < 3).
    s = ASHA(min_resource=1, max_resource=9, reduction_factor=3)
    s.setup(metric="acc", mode="max")
    assert s.milestones == (1.0, 3.0)
    expected = [(0, 0.5, CONTINUE), (1, 0.3, STOP), (2, 0.7, CONTINUE), (3, 0.6, STOP),
                (4, 0.4, STOP), (5, 0.65, CONTINUE)]  # fmt: skip
    # n=1: best; n=2: 0.3 < 0.5; n=3: top 1 is 0.7; n=4,5: top 1 is 0.7; n=6: top 2 = 0.7, 0.65
    for trial, value, action in expected:
        assert s.on_report(trial, 1, value) == action, (trial, value)
    assert s.on_report(0, 2, 0.9) == CONTINUE  # between rungs: no decision
    assert s.on_report(0, 3, 0.55) == CONTINUE  # rung 3, alone: best
    assert s.on_report(2, 4, 0.5) == STOP  # past rung 3: 0.5 < 0.55
    assert s.on_report(2, 5, 0.1) == CONTINUE  # rung 3 already recorded for trial 2
    s_min = ASHA(max_resource=9)
    s_min.setup(metric="loss", mode="min")
    assert [s_min.on_report(t, 1, v) for t, v in enumerate([0.5, 0.3, 0.9])] == [
        CONTINUE, CONTINUE, STOP]  # fmt: skip


def test_median_stopping_compares_with_finished_trials_at_the_same_step():
    s = MedianStopping(min_trials=3, warmup_steps=1)
    s.setup(metric="acc", mode="max")
    for t, base in enumerate([0.2, 0.4, 0.6]):
        for step in (1, 2, 3):
            assert s.on_report(t, step, base + step * 0.01) == CONTINUE  # < min_trials done
        s.on_complete(t, "done", base)
    assert s.on_report(9, 1, 0.0) == CONTINUE  # warm-up
    assert s.on_report(9, 2, 0.45) == CONTINUE  # median at step 2 is 0.42
    assert s.on_report(9, 3, 0.10) == CONTINUE  # its best so far (0.45) beats 0.43
    assert s.on_report(8, 2, 0.41) == STOP  # 0.41 < 0.42


# -- store ----------------------------------------------------------------------------------------
def test_store_is_wal_and_logs_every_state_change(tmp_path):
    db = tmp_path / "s.db"
    store = SweepStore(db)
    store.create("s", {"metric": "m"})
    store.add_trial("s", 0, {"a": 1})
    store.update("s", 0, "running", attempt=1, ranks=[0])
    store.add_reports("s", 0, 1, [(1.0, {"m": 0.5}, 0.0)])
    store.update("s", 0, "done", value=0.5)
    assert store.events("s") == [(0, 0, "pending"), (0, 1, "running"), (0, 1, "done")]
    assert store.trials("s")[0]["ranks"] == [0] and store.reports("s")[0]["metrics"] == {"m": 0.5}
    store.close()
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_trial_states_are_a_str_enum_stored_as_plain_names(tmp_path):
    assert TrialState.DONE == "done" and {"done": 1}[TrialState.DONE] == 1
    assert f"{TrialState.PRUNED:>7}|{TrialState.FAILED}" == " pruned|failed"
    assert json.dumps({"s": TrialState.DONE}) == '{"s": "done"}'
    assert str({TrialState.DONE: 2}) == "{'done': 2}"  # what result.counts() prints
    db = tmp_path / "s.db"
    store = SweepStore(db)
    store.create("s", {})
    store.add_trial("s", 0, {})
    store.update("s", 0, TrialState.RUNNING, attempt=1)
    with pytest.raises(ValueError):
        store.update("s", 0, "finished")
    store.close()
    with sqlite3.connect(db) as con:  # what older code wrote, and reads
        assert con.execute("SELECT state, typeof(state) FROM trials").fetchall() == [
            ("running", "text")]  # fmt: skip
        con.execute("UPDATE trials SET state = 'done'")
    store = SweepStore(db)
    (row,) = store.trials("s")
    store.close()
    assert row["state"] is TrialState.DONE and row["state"].is_finished()
    assert not TrialState.QUEUED.is_finished()


# -- package layout -------------------------------------------------------------------------------
def test_public_names_come_from_one_documented_place():
    import workbench as wb
    from workbench.sweep import ASHA as asha

    package = sys.modules["workbench.sweep"]
    # the attribute of the top package is the function, the import reads the subpackage
    assert wb.sweep is package.sweep and inspect.isfunction(wb.sweep) and asha is package.ASHA
    doc = package.__doc__
    for name in package.__all__:
        assert getattr(package, name) is not None and name in doc, name
    for name in ("ASHA", "MedianStopping", "FIFO", "Scheduler", "Strategy", "TrialState",
                 "TrialPruned", "SweepResult", "Choice", "Grid", "Uniform", "LogUniform",
                 "RandInt", "GridStrategy", "RandomStrategy", "OptunaStrategy"):  # fmt: skip
        assert name in package.__all__, name
    params = inspect.signature(sweep).parameters
    assert all(f"\n    {p}\n" in sweep.__doc__ for p in params), "sweep() parameter undocumented"


def test_sweep_modules_import_no_circle():
    """Every import between files of workbench/sweep (module level or in a function), less
    the usual one of a module's own parent packages, forms no cycle."""
    root = ROOT / "workbench" / "sweep"

    def name(path: Path) -> str:
        parts = path.relative_to(ROOT).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in root.rglob("*.py")}

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph = {}
    for mod, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {known(f"{node.module}.{a.name}") for a in node.names}
        graph[mod] = {m for m in found if m and m != mod and not mod.startswith(m + ".")}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            mod, path = stack.pop()
            for nxt in graph[mod]:
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for c in map(cycle_from, graph) if c]
    assert not cycles, " -> ".join(cycles[0])


class _OneMetricStrategy(Strategy):
    def suggest(self, trial_id):
        return {"x": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"metrics": {"acc": "up"}}, ValueError, r"metrics\['acc'\] = 'up'.*'max'.*'min'"),
        ({"metrics": {"acc": "max"}, "metric": "acc"}, ValueError, "not both"),
        ({"metrics": {"acc": "max", "ms": "min"}, "mode": "min"}, ValueError, "not both"),
        ({"metrics": ["acc", "ms"]}, TypeError, "non-empty dict"),
        ({"metrics": {}}, TypeError, "non-empty dict"),
        ({"metrics": MULTI, "scheduler": "asha"}, ValueError,
         "ASHA stops trials by comparing one metric.*2 objectives \\(acc, ms\\).*scheduler=None"),
        ({"metrics": MULTI, "scheduler": MedianStopping()}, ValueError,
         "MedianStopping stops trials by comparing one metric"),
        ({"metrics": MULTI, "strategy": _OneMetricStrategy()}, ValueError,
         "_OneMetricStrategy optimises one metric"),
    ],
)  # fmt: skip
def test_bad_multi_objective_arguments_fail_before_any_engine_is_used(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sweep(tradeoff, {"x": uniform(0, 1), "c": 0.0}, n_trials=2, storage=str(tmp_path / "s.db"),
              pool=None, **kwargs)  # fmt: skip


def test_a_store_from_before_trial_values_opens_unchanged(tmp_path):
    from workbench.sweep._store import _SCHEMA

    db = tmp_path / "old.db"
    old_schema = _SCHEMA[: _SCHEMA.index("CREATE TABLE IF NOT EXISTS trial_values")]
    with sqlite3.connect(db) as con:
        con.executescript(old_schema)
        con.execute("INSERT INTO sweeps VALUES ('s', '{}', 0)")
        con.execute("INSERT INTO trials (sweep, id, state, config, value) "
                    "VALUES ('s', 0, 'done', '{}', 0.5)")  # fmt: skip
    store = SweepStore(db)
    try:
        (row,) = store.trials("s")
        assert row["value"] == 0.5 and row["values"] is None
        store.update("s", 0, "done", values={"a": 1.0, "b": 2.0})
        assert store.trials("s")[0]["values"] == {"a": 1.0, "b": 2.0}
    finally:
        store.close()


# -- trial records --------------------------------------------------------------------------------
def test_a_trial_is_a_frozen_record_that_still_reads_as_the_dict_it_was():
    t = Trial(id=3, state="done", config={"lr": 0.1}, value=0.5, started=10.0, finished=12.5)
    assert t.state is TrialState.DONE and t.duration == 2.5 and Trial(id=0).duration is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.value = 1.0
    assert t["value"] == t.value == 0.5 and t["config"] == {"lr": 0.1}
    assert t.get("values") is None and t.get("nope", 7) == 7 and "lineage" in t
    with pytest.raises(KeyError):
        t["nope"]
    d = t.to_dict()
    assert dict(t) == d and list(d) == [f.name for f in dataclasses.fields(Trial)]
    assert d["state"] == "done" and len(d) == 14
    later = dataclasses.replace(t, state=TrialState.PRUNED)
    assert later.state == "pruned" and t.state == "done"  # replaced, never changed in place
    with pytest.raises(ValueError):
        Trial(id=0, state="finished")
    with pytest.raises(TypeError):
        Trial(0)  # keyword-only


def test_best_and_front_are_chosen_once_for_the_result_and_the_table():
    from workbench.sweep import SweepResult
    from workbench.widgets.sweep_table import table_content

    trials = [
        Trial(id=0, state="done", value=0.5, finished=3.0),
        Trial(id=1, state="done", value=0.9, finished=2.0),
        Trial(id=2, state="done", value=0.9, finished=1.0),  # a tie: the lowest id wins
        Trial(id=3, state="pruned", value=2.0),
        Trial(id=4, state="running", value=5.0),
        Trial(id=5, state="done", value=None),
    ]
    assert best(trials, "max").id == 1 and best(trials, "min").id == 0
    assert best([], "max") is None and best(trials[3:], "max") is None
    result = SweepResult("s", ":memory:", "acc", "max", trials, {})
    assert result.best is best(trials, "max") and result.best_value == 0.9
    assert table_content(trials, "acc", "max")[2] == 1  # the bold row is the same trial
    assert [t.id for t in result.pareto_front()] == [1, 2]  # one objective: the best ones
    multi = [
        Trial(id=0, state="done", value=0.9, values={"acc": 0.9, "ms": 5.0}),
        Trial(id=1, state="done", value=0.8, values={"acc": 0.8, "ms": 6.0}),  # dominated
        Trial(id=2, state="done", value=0.7, values={"acc": 0.7, "ms": 1.0}),
        Trial(id=3, state="done", value=0.7, values={"acc": 0.7, "ms": float("nan")}),
        Trial(id=4, state="failed"),
    ]
    assert [t.id for t in front(multi, MULTI)] == [0, 2]
    assert SweepResult("m", ":memory:", "acc", "max", multi, {}, metrics=MULTI).objective_values(
        multi[3]) is None  # fmt: skip


# -- plug-in bases --------------------------------------------------------------------------------
def test_plugins_implement_an_abstract_base_and_declare_what_they_need():
    with pytest.raises(TypeError, match="suggest"):
        Strategy()
    with pytest.raises(TypeError, match="on_report"):
        Scheduler()
    assert [(c.multi_objective, c.learns_from_results)
            for c in (GridStrategy, RandomStrategy, OptunaStrategy)] == [
        (True, False), (True, False), (True, True)]  # fmt: skip
    assert [(c.multi_objective, c.needs_checkpoint, c.changes_config)
            for c in (FIFO, ASHA, MedianStopping, PBT)] == [
        (True, False, False), (False, False, False), (False, False, False),
        (False, True, True)]  # fmt: skip
    space = Space(DISCRETE)
    assert [type(get_strategy(n, space)).__name__ for n in ("grid", "random", "tpe", "nsga2")] == [
        "GridStrategy", "RandomStrategy", "OptunaStrategy", "OptunaStrategy"]  # fmt: skip
    assert get_strategy("nsga2", space).sampler == "nsga2"
    with pytest.raises(ValueError, match="'grid', 'random', 'tpe', 'nsga2'"):
        get_strategy("bogus", space)
    assert FIFO().target(0) is None and FIFO().explore({"a": 1}) == {"a": 1}


def test_plan_is_made_with_keywords_only():
    from workbench.sweep._plan import Plan

    with pytest.raises(TypeError):
        Plan("s", print, False, "m", "max", 1)
