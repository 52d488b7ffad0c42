"""Hyperparameter sweeps: spaces, strategies, schedulers, the store, the runner on a real MPI
pool (failures, dead engines, resume after the notebook dies, multi-rank trials), the widget."""

from __future__ import annotations

import ast
import inspect
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import outputs_text, run_template

from workbench.sweep import (
    ASHA,
    EXPLOIT,
    FIFO,
    PBT,
    MedianStopping,
    SweepStore,
    TrialPruned,
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
from workbench.sweep.strategies import get_strategy

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": uniform(-1.0, 1.0), "lr": loguniform(1e-4, 1e-1), "k": randint(1, 4),
         "act": choice(["relu", "tanh"]), "fixed": 7}  # fmt: skip
DISCRETE = {"a": grid([1, 2, 3]), "b": choice(["u", "v"]), "fixed": 7}


# -- objectives (module level: the engines import them by reference) ------------------------------
def learning_curve(config, report):
    """Accuracy rising towards ``lr`` over 9 steps."""
    acc = 0.0
    for step in range(1, 10):
        acc = config["lr"] * (1 - 0.5**step)
        report(step=step, acc=acc)
    return acc


def quick(config, report):
    report(step=1, score=float(config.get("x", config.get("a", 0))))
    return float(config.get("x", config.get("a", 0)))


def sometimes_raises(config, report):
    if config["a"] == 2:
        raise ValueError(f"bad value a={config['a']}")
    return float(config["a"])


def slow(config, report):
    for step in range(1, 4):
        time.sleep(config["sleep"])
        report(step=step, score=config["a"] * step)
    return float(config["a"])


def distributed(config, report, comm):
    import workbench as wb

    total = wb.allreduce(np.array([comm.rank + 1.0]), op="sum", comm=comm)
    report(step=1, score=float(total[0]))
    assert report.comm is comm
    return {"score": float(total[0]), "size": float(comm.size)}


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
    fresh.restore([{"id": i, "config": c, "state": "done", "value": 1.0}
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
    s2.restore([{"id": 0, "state": "done", "value": 1.0}], {0: [(1, 1.0), (2, 0.5)]})


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


# -- the runner on the live pool ------------------------------------------------------------------
def _done_once(db: str, name: str, n: int) -> list[dict]:
    store = SweepStore(db)
    try:
        trials, events = store.trials(name), store.events(name)
    finally:
        store.close()
    assert [t["id"] for t in trials] == list(range(n))
    finals = Counter(i for i, _, state in events if state in ("done", "pruned", "failed"))
    assert all(finals[i] == 1 for i in range(n)), finals  # none lost, none finished twice
    return trials


@pytest.mark.parametrize("scheduler", ["fifo", "asha", "median"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_with_every_scheduler_on_the_pool(live_pool, tmp_path, strategy, scheduler):
    db = str(tmp_path / "s.db")
    space = {"lr": grid([0.1, 0.4, 0.9, 0.7, 0.2, 0.5])}
    sched = ASHA(max_resource=9) if scheduler == "asha" else scheduler
    sched = MedianStopping(min_trials=2) if scheduler == "median" else sched
    result = sweep(learning_curve, space, n_trials=6, strategy=strategy, scheduler=sched,
                   metric="acc", storage=db, show=False, seed=1)  # fmt: skip
    trials = _done_once(db, "learning_curve", 6)
    assert {t["state"] for t in trials} <= {"done", "pruned"}
    assert result.best["value"] == max(t["value"] for t in trials if t["state"] == "done")
    if scheduler == "fifo":
        assert all(t["state"] == "done" and t["step"] == 9 for t in trials)
    if scheduler == "asha":  # every pruned trial stopped right at a rung
        assert all(t["step"] in (1, 3) for t in trials if t["state"] == "pruned")
    df = result.to_pandas()
    assert len(df) == 6 and "config.lr" in df.columns


def test_grid_sweep_runs_each_point_once_and_random_sweep_is_reproducible(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    r = sweep(quick, DISCRETE, strategy="grid", storage=db, show=False, metric="score")
    assert len(r.trials) == 6
    assert sorted((t["config"]["a"], t["config"]["b"]) for t in r.trials) == sorted(
        (a, b) for a in (1, 2, 3) for b in ("u", "v")
    )
    a = sweep(quick, SPACE, n_trials=5, seed=11, storage=db, name="r1", show=False)
    b = sweep(quick, SPACE, n_trials=5, seed=11, storage=db, name="r2", show=False)
    assert [t["config"] for t in a.trials] == [t["config"] for t in b.trials]


def test_raising_trial_is_retried_then_recorded_failed_with_traceback(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    r = sweep(sometimes_raises, {"a": grid([1, 2, 3])}, storage=db, max_failures=2, show=False)
    bad = next(t for t in r.trials if t["config"]["a"] == 2)
    assert bad["state"] == "failed" and bad["failures"] == 3 and bad["attempt"] == 3
    assert "ValueError: bad value a=2" in bad["error"] and "Traceback" in bad["error"]
    assert [t["state"] for t in r.trials if t["config"]["a"] != 2] == ["done", "done"]
    assert r.best["config"]["a"] == 3


def test_engine_killed_mid_trial_fails_that_trial_restarts_pool_and_completes(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    old = [e.pid for e in live_pool.engines]
    victim = old[1]
    timer = threading.Timer(1.5, os.kill, args=(victim, signal.SIGKILL))
    timer.start()
    try:
        r = sweep(slow, {"a": grid(list(range(9))), "sleep": 0.25}, storage=db, show=False,
                  max_failures=1, metric="score")  # fmt: skip
    finally:
        timer.cancel()
    trials = _done_once(db, "slow", 9)
    assert all(t["state"] == "done" for t in trials)
    hit = [t for t in trials if t["failures"]]
    assert len(hit) == 1 and "died" in hit[0]["error"] and hit[0]["attempt"] == 2
    assert [e.pid for e in live_pool.engines] != old  # restarted
    assert not live_pool.dead_ranks() and r.best["config"]["a"] == 8


def two_reports(config, report):
    if config["a"] == 13:
        raise ValueError("thirteen")
    report(step=1, score=config["a"] * 0.5)
    report(step=2, score=float(config["a"]))
    return float(config["a"])


def test_short_trials_share_tasks_with_nothing_lost(live_pool, tmp_path):
    """Trials of microseconds go several to a task (far fewer round trips than trials); each
    still finishes once, with its reports, its value and its own failure."""
    db = str(tmp_path / "s.db")
    sent = len(live_pool.client.history)
    r = sweep(two_reports, {"a": grid(list(range(80)))}, storage=db, show=False,
              metric="score", max_failures=1)  # fmt: skip
    tasks = len(live_pool.client.history) - sent
    trials = _done_once(db, "two_reports", 80)
    assert tasks < 40, f"{tasks} tasks for 80 trials: short trials were not batched"
    assert [t["state"] for t in trials] == ["failed" if i == 13 else "done" for i in range(80)]
    assert trials[13]["failures"] == 2 and "ValueError: thirteen" in trials[13]["error"]
    assert all(t["value"] == t["config"]["a"] for t in trials if t["state"] == "done")
    store = SweepStore(db)
    try:
        steps = Counter(rep["id"] for rep in store.reports("two_reports"))
        curve = [(rep["step"], rep["metrics"]["score"]) for rep in store.reports("two_reports", 7)]
    finally:
        store.close()
    assert all(steps[i] == 2 for i in range(80) if i != 13)
    assert curve == [(1.0, 3.5), (2.0, 7.0)] and r.curves[7] == curve
    assert r.best["config"]["a"] == 79


@pytest.mark.parametrize("k", [2, 3])
def test_multi_rank_trials_get_a_sub_communicator(live_pool, tmp_path, k):
    db = str(tmp_path / "s.db")
    r = sweep(distributed, {"a": grid([1, 2, 3])}, trial_ranks=k, storage=db, show=False,
              metric="score")  # fmt: skip
    assert all(t["state"] == "done" for t in r.trials)
    assert {t["value"] for t in r.trials} == {k * (k + 1) / 2}  # allreduce over k ranks
    assert all(t["ranks"] == list(range(k)) for t in r.trials)


def distributed_slow(config, report, comm):
    import workbench as wb

    for step in range(1, 4):
        time.sleep(0.3)
        total = wb.allreduce(np.array([1.0]), op="sum", comm=comm)
        report(step=step, score=float(total[0]) * config["a"])
    return float(config["a"])


def _ctrl_c_when_running(db: str, n: int) -> threading.Thread:
    """SIGINT this process once ``n`` trials show running in the store (bounded wait)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    running = con.execute("SELECT count(*) FROM trials WHERE state = 'running'")
                    if running.fetchone()[0] >= n:
                        time.sleep(0.1)
                        os.kill(os.getpid(), signal.SIGINT)
                        return
            except sqlite3.OperationalError:  # not created yet
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_stops_gracefully_and_a_queued_multi_rank_trial_never_starts(live_pool, tmp_path):
    """First Ctrl-C: the running 3-rank trial finishes; the one queued behind it on the same
    engines is told to skip (all its ranks together, no hang) and stays pending; a resume
    then runs every trial exactly once."""
    db = str(tmp_path / "s.db")
    space = {"a": grid([1, 2, 3, 4])}
    watcher = _ctrl_c_when_running(db, 2)
    r = sweep(distributed_slow, space, trial_ranks=3, storage=db, show=False, metric="score")
    watcher.join(timeout=5)
    assert [t["state"] for t in r.trials] == ["done", "pending"]
    with sqlite3.connect(db) as con:
        detail = con.execute(
            "SELECT detail FROM events WHERE id = 1 ORDER BY rowid DESC"
        ).fetchone()
    assert detail[0] == "not started: the sweep was stopped"
    r = sweep(distributed_slow, space, trial_ranks=3, storage=db, show=False, metric="score")
    assert [t["state"] for t in _done_once(db, "distributed_slow", 4)] == ["done"] * 4
    assert r.best["config"]["a"] == 4


_RESUME_SCRIPT = """
import sys
import workbench as wb
from workbench.sweep import grid, sweep
from test_sweep import slow
wb.Pool.attach(sys.argv[1])
sweep(slow, {"a": grid(list(range(8))), "sleep": 0.2}, storage=sys.argv[2], name="resumed",
      metric="score", show=False)
"""


def test_resume_after_the_notebook_dies_mid_sweep(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    script = tmp_path / "run_sweep.py"
    script.write_text(_RESUME_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), live_pool.cluster_file, db],
                            env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if os.path.exists(db):
                with sqlite3.connect(db) as c:
                    try:
                        done = c.execute(
                            "SELECT count(*) FROM trials WHERE state='done'"
                        ).fetchone()[0]
                    except sqlite3.OperationalError:
                        continue
            if done >= 3:
                break
    finally:
        proc.kill()
        out = proc.communicate(timeout=30)[0].decode()
    assert done >= 3, f"the sweep in the subprocess did not progress: {out}"
    before = {t["id"]: t for t in SweepStore(db).trials("resumed")}
    running = [i for i, t in before.items() if t["state"] == "running"]
    finished = [i for i, t in before.items() if t["state"] == "done"]
    assert running and finished
    r = sweep(slow, {"a": grid(list(range(8))), "sleep": 0.2}, storage=db, name="resumed",
              metric="score", show=False)  # fmt: skip
    trials = {t["id"]: t for t in _done_once(db, "resumed", 8)}
    assert all(t["state"] == "done" for t in trials.values()) and len(r.trials) == 8
    for i in finished:  # not rerun
        assert (
            trials[i]["attempt"] == before[i]["attempt"]
            and trials[i]["started"] == before[i]["started"]
        )
    for i in running:  # rerun
        assert trials[i]["attempt"] == before[i]["attempt"] + 1


def test_resume_refuses_a_different_space_and_an_existing_name(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    sweep(quick, {"a": grid([1, 2])}, storage=db, show=False)
    again = sweep(quick, {"a": grid([1, 2])}, storage=db, show=False)  # finished: nothing to do
    assert len(again.trials) == 2
    with pytest.raises(ValueError, match="other settings"):
        sweep(quick, {"a": grid([1, 2, 3])}, storage=db, show=False)
    with pytest.raises(ValueError, match="already exists"):
        sweep(quick, {"a": grid([1, 2])}, storage=db, show=False, resume=False)


def test_objective_can_raise_trial_pruned_itself(live_pool, tmp_path):
    r = sweep(_prunes_itself, {"a": grid([1, 2])}, storage=str(tmp_path / "s.db"), show=False,
              metric="score")  # fmt: skip
    assert [t["state"] for t in r.trials] == ["pruned", "done"]


def _prunes_itself(config, report):
    report(step=1, score=config["a"])
    if config["a"] == 1:
        raise TrialPruned("not promising")
    return config["a"]


# -- the widget -----------------------------------------------------------------------------------
def _rows(states):
    return [{"id": i, "state": s, "config": {"lr": 0.1 * i}, "step": 3.0, "value": 0.1 * i,
             "best": 0.1 * i, "ranks": [i % 3], "failures": 0, "error": None,
             "finished": float(i)} for i, s in enumerate(states)]  # fmt: skip


def test_sweep_widget_updates_in_place_with_rows_best_and_controls():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max")
    stops, trial_stops = [], []
    w.on_stop, w.on_stop_trial = (lambda: stops.append(1)), trial_stops.append
    w.update(_rows(["done", "running", "pending"]), {0: [(1, 0.0), (2, 0.0)], 1: [(1, 0.1)]})
    box, table = w.box, w.table
    assert w.best_value == 0.0 and "1 running" in w.header.value
    assert len(w.table.rows) == 3 and w.trial_pick.options == (("trial 1", 1),)
    w.update(_rows(["done", "done", "running", "done"]), {0: [(1, 0.0)], 1: [(1, 0.1)]})
    assert w.box is box and w.table is table  # same widgets, new values
    assert w.best_value == pytest.approx(0.3) and "3 done" in w.header.value
    assert "acc of each finished trial" in w.chart.value and "acc by trial" in w.chart.value
    w.trial_pick.value = 2
    w.stop_trial_button.click()
    w.stop_button.click()
    assert trial_stops == [2] and stops == [1] and w.stop_button.disabled
    w.update(_rows(["done"] * 4), {}, final=True)
    assert "finished" in w.header.value


def test_trial_table_has_a_column_per_parameter_and_agrees_with_the_header():
    """Each parameter its own column (strings as they are, floats to 4 digits with the full
    value on hover, no JSON escapes); the header's best is the bold row's metric cell."""
    from workbench.widgets.sweep_table import SweepWidget

    rows = _rows(["done", "done", "running"])
    for r, loss in zip(rows, ["hinge", 'modified_huber "x"', "log_loss"], strict=True):
        r["config"] = {"loss": loss, "alpha": 1 / 3 * (r["id"] + 1), "layers": [64, 32]}
    rows[0]["value"], rows[1]["value"] = 0.953712345, 0.95
    w = SweepWidget("accuracy", "max", controls=False)
    w.update(rows, {})
    labels = [c["label"] for c in w.table.columns]
    assert labels[:5] == ["trial", "state", "loss", "alpha", "layers"]
    assert "accuracy" in labels and "config" not in labels
    loss_at, alpha_at = labels.index("loss"), labels.index("alpha")
    acc_at = labels.index("accuracy")
    by_id = {r["id"]: r["cells"] for r in w.table.rows}
    assert by_id[1][loss_at][0] == 'modified_huber "x"'  # unescaped, whole
    assert by_id[0][alpha_at][:2] == ["0.3333", repr(1 / 3)]  # 4 digits, full on hover
    assert by_id[0][labels.index("layers")][0] == "[64, 32]"
    assert w.table.best == 0 and by_id[0][acc_at][0] == "0.9537"
    assert "best accuracy 0.9537 (trial 0)" in w.header.value
    assert "&amp;" not in str(w.table.rows) and "&quot;" not in str(w.table.rows)


def test_finished_sweep_greys_its_stop_button_and_says_finished():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max")
    w.update(_rows(["running"]), {})
    assert w.stop_button.button_style == "warning" and not w.stop_button.disabled
    w.update(_rows(["done"]), {}, final=True)
    assert w.stop_button.disabled and w.stop_button.button_style == ""
    assert w.stop_button.description == "Finished"


def test_history_chart_has_a_dot_per_finished_trial_and_a_best_step_line():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max", controls=False)
    w.update(_rows(["done", "done", "pruned", "done"]), {})
    chart = w.chart.value
    assert "trials finished" in chart and "step 3" not in chart
    assert chart.count("fill-opacity") == 3 and "trial 3: acc 0.3" in chart  # one per done
    assert "best acc" in chart  # the step line, in the legend


def test_text_view_prints_changes_and_a_final_table():
    from workbench.widgets.sweep_table import TextSweepView

    buf = io.StringIO()
    v = TextSweepView("acc", "max", stream=buf, interval=0)
    v.update(_rows(["running"]), {})
    v.update(_rows(["running"]), {})  # unchanged: not printed again
    v.update(_rows(["done", "pruned"]), {}, final=True)
    text = buf.getvalue()
    assert text.count("[sweep]") == 2 and "1 done, 1 pruned" in text and "best acc" in text
    head = next(line for line in text.splitlines() if line.startswith("trial"))
    assert head.split() == ["trial", "state", "lr", "step", "acc", "best", "report"]


def test_result_show_and_live_widget_from_a_sweep(live_pool, tmp_path):
    r = sweep(learning_curve, {"lr": grid([0.1, 0.5])}, storage=str(tmp_path / "s.db"),
              metric="acc", show=True)  # fmt: skip
    view = r.show(widgets=True)
    assert view.best_value == pytest.approx(r.best_value)
    assert "acc by trial" in view.chart.value and len(view.table.rows) == 2


# -- the notebook template ------------------------------------------------------------------------
def test_hyperparameter_sweep_notebook(tmp_path):
    nb = run_template(
        "hyperparameter-sweep.ipynb", tmp_path, "n_engines=2", f"storage={tmp_path / 'sweeps.db'}"
    )
    cells = [c for c in nb.cells if c.cell_type == "code"]
    text = outputs_text(nb)
    assert "started 2 MPI engines" in text
    assert "best validation accuracy" in text and "pruned" in text
    widgets = [o for c in cells for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # fmt: skip
    assert widgets, "the live sweep table should be a widget"
    plots = [o["data"]["text/html"] for c in cells for o in c.get("outputs", [])
             if "workbench-sweep-plots" in str(o.get("data", {}).get("text/html", ""))]  # fmt: skip
    assert (
        plots and "accuracy of each finished trial" in plots[0] and "accuracy by step" in plots[0]
    )
    assert "optuna study 'digits-sgd'" in text and "optuna best value" in text
    assert "pool stopped" in text


# -- analysis: Optuna export and charts -----------------------------------------------------------
def curve_or_fail(config, report):
    """A 9-step curve towards ``lr``; trials with ``a == 2`` fail at step 2."""
    acc = 0.0
    for step in range(1, 10):
        if config["a"] == 2 and step == 2:
            raise ValueError("a=2 breaks")
        acc = config["lr"] * (1 - 0.5**step) + 0.01 * config["k"]
        report(step=step, acc=acc)
    return acc


ANALYSIS_SPACE = {"a": grid([1, 2, 3]), "lr": loguniform(1e-3, 1.0), "k": randint(1, 4),
                  "x": uniform(-1.0, 1.0), "act": choice(["relu", "tanh"]), "fixed": 7}  # fmt: skip


def test_to_optuna_and_plot_show_every_finished_trial(live_pool, tmp_path):
    import optuna
    import optuna.visualization as vis

    r = sweep(curve_or_fail, ANALYSIS_SPACE, n_trials=12, strategy="random", metric="acc",
              scheduler=ASHA(max_resource=9), max_failures=0, storage=str(tmp_path / "s.db"),
              show=False, seed=3)  # fmt: skip
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

    rows = [{"id": i, "state": TrialState.DONE, "config": {"lr": 0.1 * (i + 1), "n": i,
             "opt": "ab"[i % 2], "fixed": 1}, "value": float(i), "values": None, "started": 1.0,
             "finished": 2.0 + i, "error": None, "attempt": 1} for i in range(4)]  # fmt: skip
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
def tradeoff(config, report):
    """Accuracy grows with ``x``, latency with ``x`` squared plus ``c``: a Pareto front."""
    acc, ms = config["x"], 10 * config["x"] ** 2 + config["c"]
    report(step=1, acc=acc * 0.5, ms=ms)
    report(step=2, acc=acc)  # the last report of each metric counts
    return {"ms": ms}


def _front_by_hand(trials):
    pts = {t["id"]: (t["values"]["acc"], t["values"]["ms"]) for t in trials}

    def dominated(a):
        return any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in pts.values())

    return sorted(i for i, p in pts.items() if not dominated(p))


MULTI = {"acc": "max", "ms": "min"}


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
    trials = _done_once(db, "tradeoff", 9 if strategy == "grid" else 12)
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


def some_report_ms(config, report):
    """Reports ``ms`` only for odd ``a``."""
    if config["a"] % 2:
        report(step=1, acc=float(config["a"]), ms=1.0)
    else:
        report(step=1, acc=float(config["a"]))
    return float(config["a"])


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


class _OneMetricStrategy(__import__("workbench.sweep", fromlist=["Strategy"]).Strategy):
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


def test_widget_draws_the_pareto_front_with_dominated_trials_faded():
    from workbench.widgets.sweep_table import SweepWidget, TextSweepView

    rows = _rows(["done", "done", "done", "running"])
    for r, (acc, ms) in zip(rows, [(0.9, 5.0), (0.8, 6.0), (0.7, 1.0), (0.0, 0.0)], strict=True):
        r["value"], r["values"] = acc, ({"acc": acc, "ms": ms} if r["state"] == "done" else None)
    w = SweepWidget("acc", "max", controls=False, metrics=MULTI)
    w.update(rows, {})
    assert "2 on the Pareto front" in w.header.value
    chart = w.chart.value
    assert "acc (higher is better) against ms: Pareto front" in chart
    front = chart[chart.index("trial 0: acc 0.9") - 200 : chart.index("trial 0: acc 0.9")]
    assert "#1f77b4" in front  # on the front: coloured
    faded = chart[chart.index("trial 1: acc 0.8") - 200 : chart.index("trial 1: acc 0.8")]
    assert "#c7c7c7" in faded  # dominated by trial 0: faded
    labels = [c["label"] for c in w.table.columns]
    assert labels[labels.index("acc") + 1] == "ms"
    by_id = {r["id"]: r["cells"] for r in w.table.rows}
    assert by_id[2][labels.index("ms")][0] == "1"
    buf = io.StringIO()
    TextSweepView("acc", "max", stream=buf, metrics=MULTI).update(rows, {}, final=True)
    assert "2 on the Pareto front" in buf.getvalue() and " ms " in buf.getvalue()
