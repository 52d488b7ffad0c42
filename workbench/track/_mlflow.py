"""MLflow: each sweep trial (or training run) an MLflow run, through ``MlflowClient``."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.errors import MissingDependencyError
from workbench.track._base import Run, Tracker, finite, plain_params

__all__ = ["MLflowRun", "MLflowTracker", "mlflow"]

_STATUS = {"done": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
_GROUP, _TRIAL = "workbench.group", "workbench.trial"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError(
            "wb.track.mlflow needs mlflow: pip install 'workbench[track]' (or mlflow-skinny, "
            "with sqlalchemy and alembic for a sqlite:/// store)"
        ) from None
    return mlflow


class MLflowRun(Run):
    """One MLflow run, written through ``client``."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, int(step)) for k, v in finite(metrics).items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def logged_steps(self, metric: str) -> set[float]:
        return {float(m.step) for m in self.client.get_metric_history(self.run_id, metric)}

    def attach(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def close(self, state: str, *, values: Mapping[str, float] | None = None) -> None:
        if values:
            self.log(0, {f"final_{k}": v for k, v in values.items()})
        self.client.set_tag(self.run_id, "workbench.state", state)
        self.client.set_terminated(self.run_id, status=_STATUS.get(state, "FAILED"))


class MLflowTracker(Tracker):
    """Runs in the MLflow experiment ``experiment`` (default: the sweep's or training's
    name) at ``tracking_uri`` (default: MLflow's own, ``MLFLOW_TRACKING_URI``)."""

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:  # the client stays where it was made
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment, "_client": None}

    def client(self) -> Any:
        """The ``MlflowClient`` of ``tracking_uri`` (made once)."""
        if self._client is None:
            self._client = _mlflow().MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, group: str) -> str:
        client, name = self.client(), self.experiment or group
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=self._artifacts())

    def _artifacts(self) -> str | None:
        """Beside a ``sqlite:///`` database, its runs' files (``mlartifacts/``): not in
        MLflow's default ``./mlruns`` of whatever folder each rank runs in."""
        uri = self.tracking_uri or ""
        if not uri.startswith("sqlite:///"):
            return None  # a file store keeps them inside; a server knows its own place
        folder = os.path.dirname(os.path.abspath(uri[len("sqlite:///") :]))
        return Path(folder, "mlartifacts").as_uri()

    def open_run(
        self, group: str, name: str, params: Mapping[str, Any], *, trial: int | None = None
    ) -> Run:
        from mlflow.entities import Param

        tags = {_GROUP: group} | ({} if trial is None else {_TRIAL: str(trial)})
        client = self.client()
        if trial is not None:  # a trial an interrupted sweep left running goes on in its run
            left = self._runs(group, f" and tags.`{_TRIAL}` = '{trial}' "
                                     "and attributes.status = 'RUNNING'")  # fmt: skip
            if left:
                return MLflowRun(client, left[0].info.run_id)
        run = client.create_run(self._experiment_id(group), run_name=name, tags=tags)
        given = [Param(k, str(v)[:6000]) for k, v in plain_params(params).items()]
        if given:
            client.log_batch(run.info.run_id, params=given)
        return MLflowRun(client, run.info.run_id)

    def _runs(self, group: str, where: str = "") -> list[Any]:
        query = f"tags.`{_GROUP}` = '{group}'" + where
        return list(self.client().search_runs([self._experiment_id(group)], query,
                                              max_results=50000))  # fmt: skip

    def recorded_trials(self, group: str) -> set[int]:
        return {
            int(r.data.tags[_TRIAL])
            for r in self._runs(group)
            if _TRIAL in r.data.tags and r.info.status != "RUNNING"
        }

    def mark_best(self, group: str, trial: int) -> None:
        client = self.client()
        for run in self._runs(group):
            best = run.data.tags.get(_TRIAL) == str(trial)
            if best or run.data.tags.get("best") == "true":
                client.set_tag(run.info.run_id, "best", "true" if best else "false")


def mlflow(tracking_uri: str | None = None, experiment: str | None = None) -> MLflowTracker:
    """Record sweep trials and training runs in MLflow (``callbacks=[wb.track.mlflow()]``).

    ``tracking_uri``: where (``"sqlite:///mlflow.db"`` needs no server; ``http://host:5000``
    an MLflow server; default ``MLFLOW_TRACKING_URI`` or MLflow's default); ``experiment``:
    the experiment's name (default: the sweep's name, or ``wb.train.fit``'s ``run_name``).
    Each trial is a run named ``trial-<id>`` with the trial's parameters, every reported
    metric per step, ``final_<metric>`` values, the tag ``workbench.state`` (done, pruned,
    failed; the run FINISHED, KILLED or FAILED) and ``best=true`` on the sweep's best trial.
    """
    _mlflow()  # a missing package is said now, in the notebook, not on the engines
    return MLflowTracker(tracking_uri, experiment)
