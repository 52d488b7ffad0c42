"""The sweep runner on a real MPI pool: every strategy with every scheduler, failures and
retries, a dead engine, short trials sharing tasks, multi-rank trials, Ctrl-C, resume after
the notebook dies, the live view of a real sweep, the notebook template.

Every wait on the sweep from the outside is a condition polled with a deadline (the store's
trial states, the tasks the client sent), never a fixed sleep: which trial finishes first
depends on the machine, what the tests assert does not."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from helpers import outputs_text, run_template
from sweep_helpers import (
    distributed,
    distributed_slow,
    done_once,
    learning_curve,
    prunes_itself,
    quick,
    slow,
    sometimes_raises,
    two_reports,
    when,
)

from workbench.sweep import (
    ASHA,
    MedianStopping,
    SweepStore,
    choice,
    grid,
    loguniform,
    randint,
    sweep,
    uniform,
)

SPACE = {"x": uniform(-1.0, 1.0), "lr": loguniform(1e-4, 1e-1), "k": randint(1, 4),
         "act": choice(["relu", "tanh"]), "fixed": 7}  # fmt: skip
DISCRETE = {"a": grid([1, 2, 3]), "b": choice(["u", "v"]), "fixed": 7}
STRATEGIES = ["grid", "random", "tpe"]


def _count(db: str, state: str) -> int:
    """Trials of the store ``db`` in ``state`` (0 while the store is not there yet)."""
    if not os.path.exists(db):
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            cur = con.execute("SELECT count(*) FROM trials WHERE state = ?", (state,))
            return cur.fetchone()[0]
    except sqlite3.OperationalError:  # its tables are not there yet
        return 0


@pytest.mark.parametrize("scheduler", ["fifo", "asha", "median"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_with_every_scheduler_on_the_pool(live_pool, tmp_path, strategy, scheduler):
    db = str(tmp_path / "s.db")
    space = {"lr": grid([0.1, 0.4, 0.9, 0.7, 0.2, 0.5])}
    sched = ASHA(max_resource=9) if scheduler == "asha" else scheduler
    sched = MedianStopping(min_trials=2) if scheduler == "median" else sched
    result = sweep(learning_curve, space, n_trials=6, strategy=strategy, scheduler=sched,
                   metric="acc", storage=db, show=False, seed=1)  # fmt: skip
    trials = done_once(db, "learning_curve", 6)
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


@pytest.mark.slow
def test_engine_killed_mid_trial_fails_that_trial_restarts_pool_and_completes(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    old = [e.pid for e in live_pool.engines]
    victim = old[1]
    # once a trial is done, the engine runs its next one (queued there already): kill it then
    killed = when(lambda: _count(db, "done") >= 1, lambda: os.kill(victim, signal.SIGKILL))
    r = sweep(slow, {"a": grid(list(range(9))), "sleep": 0.25}, storage=db, show=False,
              max_failures=1, metric="score")  # fmt: skip
    assert killed.is_set(), "no trial finished: the engine was never killed"
    trials = done_once(db, "slow", 9)
    assert all(t["state"] == "done" for t in trials)
    hit = [t for t in trials if t["failures"]]
    assert len(hit) == 1 and "died" in hit[0]["error"] and hit[0]["attempt"] == 2
    assert [e.pid for e in live_pool.engines] != old  # restarted
    assert not live_pool.dead_ranks() and r.best["config"]["a"] == 8


def test_short_trials_share_tasks_with_nothing_lost(live_pool, tmp_path, monkeypatch):
    """Trials of microseconds go several to a task (far fewer round trips than trials); each
    still finishes once, with its reports, its value and its own failure."""
    from workbench.sweep import _runner

    # "short" is measured: on a loaded machine a trial of microseconds can take ~10 ms on
    # the engine, and tasks of 20 ms would hold 2 of them (hog run: 40 tasks). Tasks of 2 s
    # make every such trial short, whatever the load.
    monkeypatch.setattr(_runner, "_BATCH_SECONDS", 2.0)
    db = str(tmp_path / "s.db")
    sent = len(live_pool.client.history)
    r = sweep(two_reports, {"a": grid(list(range(80)))}, storage=db, show=False,
              metric="score", max_failures=1)  # fmt: skip
    tasks = len(live_pool.client.history) - sent
    trials = done_once(db, "two_reports", 80)
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


@pytest.mark.slow
def test_ctrl_c_stops_gracefully_and_a_queued_multi_rank_trial_never_starts(live_pool, tmp_path):
    """First Ctrl-C: the running 3-rank trial finishes; the one queued behind it on the same
    engines is told to skip (all its ranks together, no hang) and stays pending; a resume
    then runs every trial exactly once."""
    db = str(tmp_path / "s.db")
    space = {"a": grid([1, 2, 3, 4])}
    client = live_pool.client

    def both_sent() -> bool:  # two trials running in the store, and both tasks sent (3 ranks)
        return _count(db, "running") >= 2 and len(client.outstanding) >= 2 * live_pool.size

    pressed = when(both_sent, lambda: os.kill(os.getpid(), signal.SIGINT))
    r = sweep(distributed_slow, space, trial_ranks=3, storage=db, show=False, metric="score")
    assert pressed.is_set(), "the two trials never showed running"
    assert [t["state"] for t in r.trials] == ["done", "pending"]
    with sqlite3.connect(db) as con:
        detail = con.execute(
            "SELECT detail FROM events WHERE id = 1 ORDER BY rowid DESC"
        ).fetchone()
    assert detail[0] == "not started: the sweep was stopped"
    r = sweep(distributed_slow, space, trial_ranks=3, storage=db, show=False, metric="score")
    assert [t["state"] for t in done_once(db, "distributed_slow", 4)] == ["done"] * 4
    assert r.best["config"]["a"] == 4


_RESUME_SCRIPT = """
import sys
import workbench as wb
from workbench.sweep import grid, sweep
from sweep_helpers import slow
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
    trials = {t["id"]: t for t in done_once(db, "resumed", 8)}
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
    r = sweep(prunes_itself, {"a": grid([1, 2])}, storage=str(tmp_path / "s.db"), show=False,
              metric="score")  # fmt: skip
    assert [t["state"] for t in r.trials] == ["pruned", "done"]


# -- the live view of a real sweep ----------------------------------------------------------------
def test_result_show_and_live_widget_from_a_sweep(live_pool, tmp_path):
    r = sweep(learning_curve, {"lr": grid([0.1, 0.5])}, storage=str(tmp_path / "s.db"),
              metric="acc", show=True)  # fmt: skip
    view = r.show(widgets=True)
    assert view.best_value == pytest.approx(r.best_value)
    assert "acc by trial" in view.chart.value and len(view.table.rows) == 2


# -- the notebook template ------------------------------------------------------------------------
@pytest.mark.slow
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
