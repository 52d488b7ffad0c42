"""A running sweep mirrored into an Optuna study (``sweep(..., optuna_storage=...)``), on a real
MPI pool: each trial is in the study while it runs (checked from inside the trial), the
study matches the store when the sweep ends, after an interrupted sweep is resumed, and when
a sweep that ran without a mirror is resumed with one; a study that is not the sweep's is
refused before anything runs."""

from __future__ import annotations

import os
import time

import pytest
from sweep_helpers import tradeoff

from workbench.errors import InvalidValueError
from workbench.sweep import SweepStore, TrialState, grid, sweep

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def watching(config, report):
    """Reports steps 0 and 1, then waits (a minute at most) until the mirrored study shows
    this trial running with both steps: the trial sees itself mirrored while it runs."""
    import optuna

    x = config["x"]
    report(step=0, score=x)
    report(step=1, score=2 * x)
    deadline = time.monotonic() + 60
    while True:
        study = optuna.load_study(study_name=config["study"], storage=config["url"])
        mine = [t for t in study.get_trials(deepcopy=False) if t.params.get("x") == x]
        if (
            mine
            and mine[0].state.name == "RUNNING"
            and mine[0].intermediate_values
            == {
                0: x,
                1: 2 * x,
            }
        ):
            return 3 * x
        if time.monotonic() > deadline:
            raise AssertionError(f"trial x={x} not mirrored while running: {mine}")
        time.sleep(0.1)


def gated(config, report):
    """Reports step 0, waits (a minute at most) for the ``gate`` file, reports step 1."""
    x = config["x"]
    report(step=0, score=x)
    deadline = time.monotonic() + 60
    while not os.path.exists(config["gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    report(step=1, score=2 * x)
    return 3 * x


def _same_as_store(storage, name: str, db: str) -> list:
    """The mirrored study's trials, checked against the store's: one Optuna trial per
    finished workbench trial, with its state, value, parameters and learning curve."""
    store = SweepStore(db)
    try:
        trials = {t.id: t for t in store.trials(name)}
        curves = {i: {int(r["step"]): r["metrics"]["score"] for r in store.reports(name, i)}
                  for i in trials}  # fmt: skip
    finally:
        store.close()
    study = optuna.load_study(study_name=name, storage=storage)
    mirrored = study.get_trials(deepcopy=False)
    ids = [t.user_attrs["workbench_trial"] for t in mirrored]
    assert sorted(ids) == sorted(trials), (ids, list(trials))  # each once
    for ot in mirrored:
        t = trials[ot.user_attrs["workbench_trial"]]
        assert t.state == TrialState.DONE and ot.state == optuna.trial.TrialState.COMPLETE
        assert ot.value == t.value and ot.params == {"x": t.config["x"]}
        assert ot.intermediate_values == curves[t.id]
        assert ot.user_attrs["attempt"] == t.attempt
    return mirrored


def test_each_trial_is_in_the_study_while_it_runs_and_as_the_store_has_it(live_pool, tmp_path):
    db, url = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'optuna.db'}"
    space = {"x": grid([1.0, 2.0, 3.0]), "url": url, "study": "watching"}
    r = sweep(watching, space, metric="score", storage=db, show=False, optuna_storage=url)
    assert [t.state for t in r.trials] == [TrialState.DONE] * 3, [t.error for t in r.trials]
    mirrored = _same_as_store(url, "watching", db)
    assert sorted(t.value for t in mirrored) == [3.0, 6.0, 9.0]
    assert all(t.user_attrs["url"] == url for t in mirrored)  # fixed values as user attributes
    study = optuna.load_study(study_name="watching", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_trial.params == {"x": 3.0}


@pytest.mark.slow
def test_an_interrupted_mirrored_sweep_resumed_finishes_its_running_trials(live_pool, tmp_path):
    db, journal, gate = str(tmp_path / "s.db"), str(tmp_path / "optuna.log"), str(tmp_path / "g")
    space = {"x": grid([1.0, 2.0, 3.0]), "gate": gate}
    r = sweep(gated, space, metric="score", storage=db, show=False, optuna_storage=journal,
              timeout=10)  # fmt: skip
    assert [t.state for t in r.trials] == [TrialState.PENDING] * 3  # interrupted: rerun later
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    running = optuna.load_study(study_name="gated", storage=storage).get_trials(deepcopy=False)
    assert [t.state.name for t in running] == ["RUNNING"] * 3  # left running by the interrupt
    open(gate, "w").close()
    r = sweep(gated, space, metric="score", storage=db, show=False, optuna_storage=journal)
    assert [t.state for t in r.trials] == [TrialState.DONE] * 3
    _same_as_store(storage, "gated", db)


@pytest.mark.slow
def test_a_sweep_resumed_with_a_mirror_brings_the_study_in_line(live_pool, tmp_path):
    db, url, gate = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'o.db'}", str(tmp_path / "g")
    open(gate, "w").close()
    space = {"x": grid([1.0, 2.0, 3.0, 4.0]), "gate": gate}
    sweep(gated, space, n_trials=2, metric="score", storage=db, show=False)  # no mirror
    r = sweep(gated, space, n_trials=4, metric="score", storage=db, show=False,
              optuna_storage=url)  # fmt: skip
    assert len(r.trials) == 4
    assert len(_same_as_store(url, "gated", db)) == 4  # the first two added, then two more
    # the same study for the same sweep: adopted again, nothing written twice
    sweep(gated, space, n_trials=4, metric="score", storage=db, show=False, optuna_storage=url)
    assert len(_same_as_store(url, "gated", db)) == 4


def test_a_study_that_is_not_the_sweeps_is_refused_before_anything_runs(live_pool, tmp_path):
    db, url = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'o.db'}"
    other = optuna.create_study(storage=url, study_name="gated", direction="maximize")
    other.add_trial(optuna.trial.create_trial(value=1.0))
    space = {"x": grid([1.0, 2.0]), "gate": str(tmp_path)}
    with pytest.raises(InvalidValueError, match="holds 1 trials that are not this sweep's"):
        sweep(gated, space, metric="score", storage=db, show=False, optuna_storage=url)
    optuna.create_study(storage=url, study_name="down", direction="minimize")
    with pytest.raises(InvalidValueError, match=r"directions are \['minimize'\]"):
        sweep(gated, space, metric="score", storage=db, show=False, optuna_storage=url,
              name="down")  # fmt: skip
    with pytest.raises(InvalidValueError, match="optuna_storage must be"):
        sweep(gated, space, metric="score", storage=db, show=False, optuna_storage=42)
    store = SweepStore(db)
    try:
        assert store.trials("gated") == [] and store.trials("down") == []  # nothing ran
    finally:
        store.close()


def test_a_sweep_of_several_objectives_is_mirrored_with_each_value(live_pool, tmp_path):
    db, url = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'o.db'}"
    space = {"x": grid([0.5, 1.0]), "c": 0.0}
    r = sweep(tradeoff, space, metrics={"acc": "max", "ms": "min"}, storage=db, show=False,
              optuna_storage=url)  # fmt: skip
    study = optuna.load_study(study_name="tradeoff", storage=url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["acc", "ms"]
    got = {t.user_attrs["workbench_trial"]: t.values for t in study.get_trials()}
    assert got == {t.id: [t.values["acc"], t.values["ms"]] for t in r.trials}


def test_a_value_outside_the_space_is_kept_as_a_user_attribute():
    """PBT's explore may leave the space (lr 2.5 of uniform(0, 2)): that value goes to the
    trial's user attributes instead of breaking the export."""
    from workbench.sweep import Space, SweepResult, Trial, choice, randint, uniform

    space = Space({"lr": uniform(0.0, 2.0), "k": randint(1, 4), "act": choice(["relu", "tanh"])})
    rows = [
        Trial(id=0, state="done", config={"lr": 1.0, "k": 2, "act": "relu"}, value=1.0),
        Trial(id=1, state="done", config={"lr": 2.5, "k": 9, "act": "gelu"}, value=2.0),
        Trial(id=2, state="done", config={"lr": 0.5, "k": 2.5, "act": True}, value=3.0),
    ]
    study = SweepResult("s", ":memory:", "m", "max", rows, {}, space=space).to_optuna()
    inside, outside, wrong_types = study.trials
    assert inside.params == {"lr": 1.0, "k": 2, "act": "relu"}
    assert outside.params == {} and outside.user_attrs["lr"] == 2.5
    assert outside.user_attrs["k"] == 9 and outside.user_attrs["act"] == "gelu"
    assert wrong_types.params == {"lr": 0.5}  # 2.5 is no IntDistribution value, True no option
