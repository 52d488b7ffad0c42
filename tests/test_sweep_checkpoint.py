"""Trials that resume where they stopped (``checkpoint``), and population-based training
on those checkpoints, on the real MPI pool: an engine killed mid-trial, a sweep stopped
mid-trial then resumed, PBT exploiting and exploring, a checkpoint folder not writable."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections import Counter

import pytest
from sweep_helpers import when

from workbench.errors import InvalidValueError
from workbench.sweep import PBT, SweepStore, choice, grid, sweep, uniform
from workbench.sweep._checkpoint import read_marker
from workbench.sweep._resume import checkpoint_root

STEPS = 30


# -- objectives (module level: the engines import them by reference) ------------------------------
def counting(config, report, checkpoint):
    """``w += lr * step`` for STEPS steps, its state a JSON file per step in the checkpoint
    folder; every start is logged in ``starts.txt`` there (the step it starts from). With
    a ``gate`` file in the config, steps past 2 wait (at most a minute) until it exists."""
    start, w = 1, 0.0
    if checkpoint.step is not None:
        start = int(checkpoint.step) + 1
        with open(os.path.join(checkpoint.path, f"state-{checkpoint.step:g}.json")) as f:
            w = json.load(f)["w"]
    with open(os.path.join(checkpoint.path, "starts.txt"), "a") as f:
        f.write(f"{start}\n")
    for step in range(start, STEPS + 1):
        if step > 2 and config.get("gate"):
            _wait_for(config["gate"])
        time.sleep(config["sleep"])
        w += config["lr"] * step
        report(step=step, score=w)  # report, then save
        path = os.path.join(checkpoint.path, f"state-{step}.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"w": w}, f)
        os.replace(path + ".tmp", path)
        checkpoint.save(step)
        if step > 1:
            os.remove(os.path.join(checkpoint.path, f"state-{step - 1}.json"))
    return w


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within a minute")
        time.sleep(0.01)


def growing(config, report, checkpoint):
    """A "training" whose score grows by ``lr`` a step (state saved with save(step, state))."""
    state = checkpoint.load(default={"step": 0, "score": 0.0})
    for step in range(state["step"] + 1, 25):
        time.sleep(0.05)
        state = {"step": step, "score": state["score"] + config["lr"]}
        report(step=step, score=state["score"])
        checkpoint.save(step, state)
    return state["score"]


def no_checkpoint(config, report):
    report(step=1, score=1.0)


def _uninterrupted(lr: float) -> float:
    return lr * STEPS * (STEPS + 1) / 2


def _check_each_step_once(db: str, name: str, n: int) -> SweepStore:
    """Every trial done with steps 1..STEPS recorded exactly once (in the whole reports
    table, every attempt), its curve continuous and its value that of a run never stopped."""
    store = SweepStore(db)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT id, step FROM reports WHERE sweep = ?", (name,)).fetchall()
    counts = Counter(rows)
    assert set(counts.values()) == {1}, [k for k, c in counts.items() if c > 1]
    for t in store.trials(name):
        assert t["state"] == "done", t
        curve = store.reports(name, t["id"])
        assert [r["step"] for r in curve] == list(range(1, STEPS + 1)), (t["id"], curve)
        w = 0.0
        for r in curve:  # the curve a run never stopped would have
            w += t["config"]["lr"] * r["step"]
            assert r["metrics"]["score"] == pytest.approx(w)
        assert t["value"] == pytest.approx(_uninterrupted(t["config"]["lr"]))
    assert len(store.trials(name)) == n
    return store


def _folder(db: str, name: str, trial_id: int) -> str:
    return os.path.join(os.path.dirname(db), f"{name}.checkpoints", f"trial-{trial_id}")


def _starts(db: str, name: str, trial_id: int) -> list[int]:
    with open(os.path.join(_folder(db, name, trial_id), "starts.txt")) as f:
        return [int(x) for x in f.read().split()]


def _saved(db: str, name: str, n: int, step: float) -> bool:
    """Trials 0..n-1 of sweep ``name`` all saved a checkpoint of ``step`` or later."""
    markers = [read_marker(_folder(db, name, i)) for i in range(n)]
    return all(m is not None and m["step"] >= step for m in markers)


# -- resume ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_engine_killed_mid_trial_resumes_from_its_checkpoint(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    victim = live_pool.engines[1].pid
    # killed once every trial saved a checkpoint (and has most of its 30 steps still to go)
    killed = when(lambda: _saved(db, "counting", 3, 2), lambda: os.kill(victim, signal.SIGKILL))
    r = sweep(counting, {"lr": grid([1.0, 2.0, 3.0]), "sleep": 0.1}, storage=db,
              show=False, metric="score", max_failures=1)  # fmt: skip
    assert killed.is_set(), "the trials never all saved a checkpoint"
    store = _check_each_step_once(db, "counting", 3)
    try:
        trials = store.trials("counting")
    finally:
        store.close()
    hit = [t for t in trials if t["failures"]]
    assert len(hit) == 1 and "died" in hit[0]["error"] and hit[0]["attempt"] == 2, trials
    # every trial ran again after the restart, from its checkpoint, not from step 1
    for t in trials:
        starts = _starts(db, "counting", t["id"])
        assert len(starts) == 2 and 1 < starts[1] <= STEPS, (t["id"], starts)
        assert [s for s, _ in r.curves[t["id"]]] == list(range(1, STEPS + 1))  # the live view
    assert not live_pool.dead_ranks()


@pytest.mark.slow
def test_stopped_sweep_resumes_each_trial_from_its_checkpoint(live_pool, tmp_path):
    """timeout= interrupts the running trials (as a second Ctrl-C or Stop-then-interrupt):
    they stay pending; resume=True continues each from its checkpoint. The trials wait at
    step 3 until the gate opens, so each has saved step 2 when the timeout comes, however
    slowly the machine runs them."""
    db = str(tmp_path / "s.db")
    gate = str(tmp_path / "gate")
    space = {"lr": grid([1.0, 2.0, 3.0]), "sleep": 0.1, "gate": gate}
    r = sweep(counting, space, storage=db, show=False, metric="score", timeout=4)
    assert [t["state"] for t in r.trials] == ["pending"] * 3
    assert _saved(db, "counting", 3, 2)
    mid = {t["id"]: t["step"] for t in r.trials}
    open(gate, "w").close()
    r = sweep(counting, space, storage=db, show=False, metric="score", resume=True)
    _check_each_step_once(db, "counting", 3).close()
    for t in r.trials:
        starts = _starts(db, "counting", t["id"])
        assert len(starts) == 2 and starts[1] > 1, (t["id"], starts, mid)
        assert t["attempt"] == 2 and t["failures"] == 0


# -- population-based training --------------------------------------------------------------------
def test_pbt_bottom_trials_copy_top_checkpoints_and_explore(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    space = {"lr": grid([0.1, 0.5, 1.0]), "act": "relu"}
    mutations = {"lr": uniform(0.05, 2.0), "act": choice(["relu"])}
    sched = PBT(perturbation_interval=4, quantile=0.25, seed=3, hyperparam_mutations=mutations)
    r = sweep(growing, space, scheduler=sched, metric="score", storage=db, show=False, seed=1)
    store = SweepStore(db)
    try:
        lineage = store.lineage("growing")
        trials = {t["id"]: t for t in store.trials("growing")}
        curves = {i: [x["step"] for x in store.reports("growing", i)] for i in trials}
    finally:
        store.close()
    assert lineage, "no trial exploited another"
    worst = next(
        i for i, t in trials.items() if t["lineage"] and t["lineage"][0]["old"]["lr"] == 0.1
    )
    first = trials[worst]["lineage"][0]
    assert first["from"] != worst and first["step"] >= 4
    assert (
        first["new"]["lr"] != 0.1 and trials[worst]["config"] == trials[worst]["lineage"][-1]["new"]
    )
    # one continuous curve: every step once, 1..24
    assert all(c == list(range(1, 25)) for c in curves.values()), curves
    assert all(t["state"] == "done" for t in trials.values())
    # the trial that started worst ends far above what its own lr would give (24 * 0.1)
    assert trials[worst]["value"] > 2 * 24 * 0.1
    df = r.to_pandas()
    assert (
        df.loc[worst, "from"] == f"{first['from']}@{first['step']:g}"
        or len(trials[worst]["lineage"]) > 1
    )
    assert "lineage" in df.columns
    with sqlite3.connect(db) as con:
        details = [d for (d,) in con.execute("SELECT detail FROM events WHERE id = ?", (worst,))]
    assert any(d and d.startswith(f"exploit: copied trial {first['from']}") for d in details)
    # the table shows where it came from
    from workbench.widgets.sweep_table import table_content

    columns, body, _, _ = table_content(list(trials.values()), "score", "max")
    assert columns[-1]["key"] == "from"
    row = next(b for b in body if b["id"] == worst)
    assert row["cells"][-1][0].startswith(f"{trials[worst]['lineage'][-1]['from']}@")
    assert f"copied trial {first['from']} at step" in row["title"]


def test_pbt_decides_on_the_bottom_quantile_and_explores_within_bounds():
    from workbench.sweep import EXPLOIT, Space, randint
    from workbench.sweep.schedulers import CONTINUE

    space = Space({"lr": uniform(0.1, 1.0), "k": randint(1, 5), "act": choice(["a", "b", "c"])})
    pbt = PBT(perturbation_interval=2, quantile=0.25, seed=0)
    pbt.setup(metric="score", mode="max")
    pbt.bind(space, 0)
    for t in range(4):  # scores 0, 1, 2, 3 at step 1: no decision before the interval
        assert pbt.on_report(t, 1, float(t)) == CONTINUE
    assert pbt.on_report(1, 2, 1.5) == CONTINUE  # not in the bottom quarter (trial 0 is)
    assert pbt.on_report(0, 2, 0.5) == EXPLOIT and pbt.target(0) == 3  # the top quarter
    assert pbt.on_report(0, 3, 0.6) == CONTINUE  # next decision 2 steps later
    config = {"lr": 0.9, "k": 4, "act": "a"}
    seen = set()
    for _ in range(50):
        new = pbt.explore(config)
        assert 0.1 <= new["lr"] <= 1.0 and 1 <= new["k"] <= 4 and new["act"] in "abc"
        seen.add(round(new["lr"], 6))
    assert {0.72, 1.0} <= seen  # 0.9 * 0.8, and 0.9 * 1.2 kept within the bound
    assert len(seen) > 2  # some drawn anew (resample_probability)


def test_pbt_needs_checkpoint_and_metric(tmp_path):
    db = str(tmp_path / "s.db")
    with pytest.raises(InvalidValueError, match="no `checkpoint` parameter"):
        sweep(no_checkpoint, {"lr": uniform(0, 1)}, n_trials=2, scheduler=PBT(), metric="score",
              storage=db)  # fmt: skip
    with pytest.raises(InvalidValueError, match="pass metric="):
        sweep(growing, {"lr": uniform(0, 1)}, n_trials=2, scheduler=PBT(), storage=db)
    with pytest.raises(InvalidValueError, match=r"names \['nope'\], not in the sweep's space"):
        sweep(growing, {"lr": uniform(0, 1)}, n_trials=2, metric="score", storage=db,
              scheduler=PBT(hyperparam_mutations={"nope": [1, 2]}))  # fmt: skip
    with pytest.raises(InvalidValueError, match="learns from finished trials"):
        sweep(growing, {"lr": uniform(0, 1)}, n_trials=2, metric="score", storage=db,
              strategy="tpe", scheduler=PBT())  # fmt: skip
    with pytest.raises(InvalidValueError, match="quantile"):
        PBT(quantile=0.9)
    assert not os.path.exists(db)  # refused before the store was made


# -- bad input ----------------------------------------------------------------------------------
def test_checkpoint_folder_not_writable_is_named_and_the_store_kept(live_pool, tmp_path):
    db = str(tmp_path / "s.db")
    sweep(no_checkpoint, {"a": grid([1, 2])}, storage=db, show=False, metric="score")
    before = SweepStore(db)
    try:
        kept = before.trials("no_checkpoint")
    finally:
        before.close()
    blocker = tmp_path / "growing.checkpoints"
    blocker.write_text("not a folder")  # root ignores permissions: a file in the way
    with pytest.raises(InvalidValueError, match=f"checkpoint folder '{blocker}'.*not a writable"):
        sweep(growing, {"lr": uniform(0, 1)}, n_trials=2, storage=db, metric="score", show=False)
    after = SweepStore(db)
    try:
        assert after.names() == ["no_checkpoint"] and after.trials("no_checkpoint") == kept
    finally:
        after.close()
    if os.geteuid() != 0:  # a read-only folder, where permissions apply
        blocker.unlink()
        blocker.mkdir(mode=0o500)
        with pytest.raises(InvalidValueError, match="not a writable folder"):
            checkpoint_root(db, "growing")
