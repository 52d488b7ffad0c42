"""Tracking (``workbench.track``): a sweep's trials and a training run recorded in MLflow (a
sqlite store, no server) and in TensorBoard event files, read back with MLflow's client and
TensorBoard's own event reader, on a real MPI pool."""

from __future__ import annotations

import os

import pytest

import workbench as wb
from workbench.errors import InvalidTypeError
from workbench.sweep import TrialState, grid, sweep

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed: pip install "
                             "'workbench[track]'")  # fmt: skip
pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install "
                    "'workbench[track]'")  # fmt: skip
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
slow = pytest.mark.slow  # MLflow's sqlite store is created per test (a few seconds each)


def two_metrics(config, report):
    """``score`` and ``loss`` for three steps; x == 2 fails at step 1."""
    x = config["x"]
    for step in range(3):
        if x == 2 and step == 1:
            raise RuntimeError("x == 2 fails at step 1")
        report(step=step, score=x * (step + 1), loss=1.0 / (x + step))
    return x * 10


def _runs(uri: str, experiment: str) -> dict[int, object]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return {int(r.data.tags["workbench.trial"]): r for r in runs}


def _history(uri: str, run, key: str) -> list[tuple[int, float]]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]


def _events(folder: str) -> EventAccumulator:
    acc = EventAccumulator(folder)
    acc.Reload()
    return acc


@slow
def test_a_sweep_is_recorded_in_mlflow_and_tensorboard(live_pool, tmp_path):
    db, uri, logdir = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "tb"
    trackers = [wb.track.mlflow(uri), wb.track.tensorboard(logdir)]
    space = {"x": grid([1.0, 2.0, 3.0]), "tag": "a"}
    r = sweep(two_metrics, space, metric="score", storage=db, show=False, max_failures=0,
              callbacks=trackers)  # fmt: skip
    assert [t.state for t in r.trials] == ["done", "failed", "done"]

    runs = _runs(uri, "two_metrics")  # the experiment is named after the sweep
    assert sorted(runs) == [0, 1, 2]
    for trial in r.trials:
        run, x = runs[trial.id], trial.config["x"]
        assert run.info.run_name == f"trial-{trial.id}"
        assert run.data.params == {"x": str(x), "tag": "a"}
        steps = 1 if trial.state == TrialState.FAILED else 3
        assert _history(uri, run, "score") == [(s, x * (s + 1)) for s in range(steps)]
        assert _history(uri, run, "loss") == [(s, pytest.approx(1 / (x + s))) for s in range(steps)]
        assert run.data.tags["workbench.state"] == trial.state
        assert run.info.status == ("FAILED" if trial.state == TrialState.FAILED else "FINISHED")
    assert runs[2].data.metrics["final_score"] == 30.0
    assert [i for i, run in runs.items() if run.data.tags.get("best") == "true"] == [2]

    for trial in r.trials:
        acc = _events(str(logdir / "two_metrics" / f"trial-{trial.id}"))
        scores = [(e.step, e.value) for e in acc.Scalars("score")]
        x = trial.config["x"]
        assert scores == [(s, x * (s + 1)) for s in range(len(scores))] and scores
        hparams = acc.PluginTagToContent("hparams")
        assert "_hparams_/session_start_info" in hparams and "_hparams_/session_end_info" in hparams
        assert ("best" in acc.Tags()["scalars"]) == (trial.id == 2)


@slow
def test_a_resumed_sweep_records_each_trial_once(live_pool, tmp_path):
    db, uri, logdir = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "tb"
    space = {"x": grid([1.0, 3.0, 4.0, 5.0])}

    def trackers():
        return [wb.track.mlflow(uri, experiment="mine"), wb.track.tensorboard(logdir)]

    sweep(two_metrics, space, n_trials=2, metric="score", storage=db, show=False,
          callbacks=trackers())  # fmt: skip
    sweep(two_metrics, space, n_trials=4, metric="score", storage=db, show=False,
          callbacks=trackers())  # fmt: skip
    runs = _runs(uri, "mine")
    assert sorted(runs) == [0, 1, 2, 3]  # the first two not again
    assert sorted(os.listdir(logdir / "two_metrics")) == [f"trial-{i}" for i in range(4)]
    best = {i: run.data.tags.get("best") for i, run in runs.items()}
    assert best == {0: None, 1: "false", 2: None, 3: "true"}  # x = 3, then x = 5 the best
    tb = {i: [e.value for e in _events(str(logdir / "two_metrics" / f"trial-{i}")).Scalars("best")]
          for i in (1, 3)}  # fmt: skip
    assert tb == {1: [1.0, 0.0], 3: [1.0]}


def fit_tracked(uri: str, logdir: str) -> dict:
    import numpy as np
    from mpi4py import MPI

    import workbench as wb
    import workbench.train as wt

    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = wt.MLP([8, 8, 2], seed=0)
    trackers = [wb.track.mlflow(uri, experiment="fit"), wb.track.tensorboard(logdir)]
    history = wt.fit(model, X, y, epochs=3, batch_size=MPI.COMM_WORLD.Get_size() * 8,
                     X_val=X, y_val=y, progress=False, callbacks=trackers,
                     run_name="digits-mlp")  # fmt: skip
    return {"loss": history.loss, "val": history.val_accuracy}


@slow
def test_a_training_run_is_recorded_by_rank_0(live_pool, tmp_path):
    uri, logdir = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "tb")
    out = live_pool.apply(fit_tracked, (uri, logdir), timeout=180, stream=False,
                          progress=False)  # fmt: skip
    history = out[0]
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fit").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["workbench.group"] == "digits-mlp"
    assert run.data.params["ranks"] == str(live_pool.size) and run.data.params["epochs"] == "3"
    losses = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    assert losses == [(e + 1, pytest.approx(v)) for e, v in enumerate(history["loss"])]
    (folder,) = os.listdir(os.path.join(logdir, "digits-mlp"))  # one run: rank 0's
    acc = _events(os.path.join(logdir, "digits-mlp", folder))
    got = [e.value for e in acc.Scalars("val_accuracy")]
    assert got == pytest.approx(history["val"])


def fit_in_a_timeline(uri: str, logdir: str) -> bool:
    import numpy as np
    from mpi4py import MPI

    import workbench as wb
    import workbench.train as wt

    X = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    trackers = [wb.track.mlflow(uri, experiment="timed"), wb.track.tensorboard(logdir)]
    with wb.timeline():
        wt.fit(wt.MLP([8, 8, 2], seed=0), X, y, epochs=2, batch_size=8 * MPI.COMM_WORLD.Get_size(),
               progress=False,
               callbacks=trackers, run_name="timed")  # fmt: skip
    return True


@slow
def test_a_training_run_in_a_timeline_keeps_its_trace_and_summary(live_pool, tmp_path):
    uri, logdir = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "tb")
    live_pool.apply(fit_in_a_timeline, (uri, logdir), timeout=180, stream=False, progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("timed").experiment_id])
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert files == {"timeline.json", "timeline-summary.txt"}, files
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    got = client.download_artifacts(run.info.run_id, "timeline.json", str(tmp_path))
    trace = wb.timeline.load(got)
    assert trace.ranks == list(range(live_pool.size))  # every rank's part, not rank 0's alone
    assert {"step", "forward", "backward"} <= {e["name"] for e in trace.events}
    (folder,) = os.listdir(os.path.join(logdir, "timed"))
    with open(os.path.join(logdir, "timed", folder, "timeline-summary.txt")) as f:
        text = f.read()
    assert text.startswith(f"timeline: {live_pool.size} ranks") and "waiting" in text
    tensors = _events(os.path.join(logdir, "timed", folder)).Tags()["tensors"]
    assert "timeline-summary.txt" in tensors, tensors  # also in TensorBoard's Text tab


class _Broken(wb.track.Tracker):
    """A tracker whose runs fail on their second epoch."""

    def open_run(self, group, name, params, *, trial=None):
        class Failing(wb.track.Run):
            def log(self, step, metrics):
                if step == 2:
                    raise OSError("the tracking disk is full")

            def attach(self, name, text):
                pass

            def close(self, state, *, values=None):
                pass

        return Failing()

    def recorded_trials(self, group):
        return set()

    def mark_best(self, group, trial):
        pass


def fit_with_broken_tracker() -> list:
    import warnings

    import numpy as np

    import workbench.train as wt

    X = np.random.default_rng(0).standard_normal((48, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = wt.fit(wt.MLP([4, 4, 2], seed=0), X, y, epochs=3, batch_size=24,
                         progress=False, callbacks=[_Broken()])  # fmt: skip
    return [history.epochs, [str(w.message) for w in caught]]


@slow
def test_a_failing_tracker_is_warned_about_and_training_goes_on(live_pool):
    out = live_pool.apply(fit_with_broken_tracker, timeout=120, stream=False, progress=False)
    assert all(epochs == [1, 2, 3] for epochs, _ in out)  # every rank trained to the end
    warned = out[0][1]
    assert warned == ["_Broken: recording stopped: OSError: the tracking disk is full"]
    assert all(messages == [] for _, messages in out[1:])  # only rank 0 records


def test_callbacks_that_are_not_trackers_are_refused_before_anything_runs(live_pool, tmp_path):
    with pytest.raises(InvalidTypeError, match="callbacks must be trackers"):
        sweep(two_metrics, {"x": grid([1.0])}, metric="score", storage=str(tmp_path / "s.db"),
              show=False, callbacks=[print])  # fmt: skip
    assert not (tmp_path / "s.db").exists()
    with pytest.raises(InvalidTypeError, match="got 3"):
        wb.track.trackers(3)


def test_without_the_libraries_the_trackers_say_what_to_install(monkeypatch):
    import sys

    from workbench.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if they were not installed
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    for make in (wb.track.mlflow, wb.track.tensorboard):
        with pytest.raises(MissingDependencyError, match=r"pip install 'workbench\[track\]'"):
            make()


def gated(config, report):
    """Reports step 0, waits (a minute at most) for the ``gate`` file, reports step 1."""
    import time

    report(step=0, score=config["x"])
    deadline = time.monotonic() + 60
    while not os.path.exists(config["gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    report(step=1, score=2 * config["x"])
    return 3 * config["x"]


@slow
def test_an_interrupted_sweep_resumed_goes_on_in_the_same_runs(live_pool, tmp_path):
    db, uri, logdir = str(tmp_path / "s.db"), f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "tb"
    gate = tmp_path / "gate"
    space = {"x": grid([1.0, 2.0]), "gate": str(gate)}

    def trackers():
        return [wb.track.mlflow(uri), wb.track.tensorboard(logdir)]

    r = sweep(gated, space, metric="score", storage=db, show=False, timeout=10,
              callbacks=trackers())  # fmt: skip
    assert [t.state for t in r.trials] == [TrialState.PENDING] * 2  # interrupted
    left = _all_runs(uri, "gated")
    assert [run.info.status for run in left] == ["RUNNING"] * 2, left  # the runs stay open
    gate.touch()
    sweep(gated, space, metric="score", storage=db, show=False, callbacks=trackers())
    runs = _runs(uri, "gated")
    assert sorted(runs) == [0, 1] and len(_all_runs(uri, "gated")) == 2  # one run per trial
    for i, run in runs.items():
        assert run.info.status == "FINISHED"
        assert _history(uri, run, "score") == [(0, i + 1.0), (1, 2 * (i + 1.0))]  # each once
    assert sorted(os.listdir(logdir / "gated")) == ["trial-0", "trial-1"]


def _all_runs(uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
