"""TensorBoard: event files written with the ``tensorboard`` package alone (no TensorFlow).

Each run is a folder of event files: scalars as ``simple_value`` summaries, the parameters
as the HParams plugin's session start and end (the protobuf messages that plugin reads, as
``torch.utils.tensorboard`` writes them), and a marker file ``workbench-run.json`` written
when the run ends (so a resumed sweep knows which trials are recorded).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from workbench.errors import MissingDependencyError
from workbench.track._base import Run, Tracker, finite, plain_params

__all__ = ["TensorBoardRun", "TensorBoardTracker", "tensorboard"]

_MARKER = "workbench-run.json"


def _modules() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise MissingDependencyError(
            "wb.track.tensorboard needs tensorboard: pip install 'workbench[track]'"
        ) from None
    return event_pb2, summary_pb2, api_pb2, metadata, plugin_data_pb2, EventFileWriter


class TensorBoardRun(Run):
    """One run's folder ``path`` (a writer open until :meth:`close`)."""

    def __init__(self, path: str, trial: int | None) -> None:
        self.path, self.trial = path, trial
        (self.event_pb2, self.summary_pb2, self.api_pb2, self.metadata, self.plugin_data_pb2,
         writer) = _modules()  # fmt: skip
        self.writer = writer(path)

    def _write(self, step: int, values: list[Any]) -> None:
        summary = self.summary_pb2.Summary(value=values)
        self.writer.add_event(self.event_pb2.Event(wall_time=time.time(), step=int(step),
                                                   summary=summary))  # fmt: skip

    def _hparams(self, tag: str, **info: Any) -> None:
        data = self.plugin_data_pb2.HParamsPluginData(version=0, **info)
        meta = self.summary_pb2.SummaryMetadata(
            plugin_data=self.summary_pb2.SummaryMetadata.PluginData(
                plugin_name=self.metadata.PLUGIN_NAME, content=data.SerializeToString()
            )
        )
        self._write(0, [self.summary_pb2.Summary.Value(tag=tag, metadata=meta)])

    def start(self, params: Mapping[str, Any]) -> None:
        """The parameters, as the HParams plugin's session start."""
        info = self.plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for k, v in plain_params(params).items():
            if isinstance(v, bool):
                info.hparams[k].bool_value = v
            elif isinstance(v, (int, float)):
                info.hparams[k].number_value = float(v)
            else:
                info.hparams[k].string_value = v
        self._hparams(self.metadata.SESSION_START_INFO_TAG, session_start_info=info)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        values = [self.summary_pb2.Summary.Value(tag=k, simple_value=v)
                  for k, v in finite(metrics).items()]  # fmt: skip
        if values:
            self._write(step, values)

    def attach(self, name: str, text: str) -> None:
        """The file ``name`` in the run's folder; a ``.txt`` also as a text summary
        (TensorBoard's Text tab)."""
        with open(os.path.join(self.path, name), "w") as f:
            f.write(text)
        if name.endswith(".txt"):
            from tensorboard.plugins.text.summary_v2 import text_pb

            summary = text_pb(name, "```\n" + text + "\n```")  # markdown: keep the columns
            self.writer.add_event(self.event_pb2.Event(wall_time=time.time(), step=0,
                                                       summary=summary))  # fmt: skip

    def close(self, state: str, *, values: Mapping[str, float] | None = None) -> None:
        if values:
            self.log(0, {f"final_{k}": v for k, v in values.items()})
        status = self.api_pb2.Status.Value(
            "STATUS_SUCCESS" if state == "done" else "STATUS_FAILURE"
            if state == "failed" else "STATUS_ABORTED"
        )  # fmt: skip
        end = self.plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
        self._hparams(self.metadata.SESSION_END_INFO_TAG, session_end_info=end)
        self.writer.close()
        with open(os.path.join(self.path, _MARKER), "w") as f:
            json.dump({"trial": self.trial, "state": state}, f)


class TensorBoardTracker(Tracker):
    """Runs as folders ``logdir/<group>/<name>`` (``tensorboard --logdir logdir``)."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = os.fspath(logdir)

    def open_run(
        self, group: str, name: str, params: Mapping[str, Any], *, trial: int | None = None
    ) -> Run:
        run = TensorBoardRun(os.path.join(self.logdir, group, name), trial)
        run.start(params)
        return run

    def _ended(self, group: str) -> dict[int, tuple[str, dict[str, Any]]]:
        """Trial id -> (folder, marker) of the runs of ``group`` recorded to their end."""
        root, out = os.path.join(self.logdir, group), {}
        for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            marker = os.path.join(root, name, _MARKER)
            if os.path.exists(marker):
                with open(marker) as f:
                    info = json.load(f)
                if info.get("trial") is not None:
                    out[int(info["trial"])] = (os.path.join(root, name), info)
        return out

    def recorded_trials(self, group: str) -> set[int]:
        return set(self._ended(group))

    def mark_best(self, group: str, trial: int) -> None:
        """A ``best`` scalar: 1 on trial ``trial``, 0 (later) on a former best; each in an
        event file of its own (the runs have ended), noted in the run's marker."""
        for t, (path, info) in self._ended(group).items():
            if (t == trial) != bool(info.get("best")):
                run = TensorBoardRun(path, t)
                run.log(0, {"best": float(t == trial)})
                run.writer.close()
                with open(os.path.join(path, _MARKER), "w") as f:
                    json.dump(dict(info, best=t == trial), f)


def tensorboard(logdir: str | os.PathLike[str] = "runs") -> TensorBoardTracker:
    """Record sweep trials and training runs as TensorBoard event files under ``logdir``
    (``callbacks=[wb.track.tensorboard("runs")]``, then ``tensorboard --logdir runs``).

    A sweep's trials are the folders ``logdir/<sweep>/trial-<id>``: every reported metric as
    a scalar per step, ``final_<metric>`` values, the parameters and the trial's end in the
    HParams dashboard, and a ``best`` scalar of 1 on the sweep's best trial. A training run
    is ``logdir/<run_name>/fit-<time>``.
    """
    _modules()  # a missing package is said now, in the notebook, not on the engines
    return TensorBoardTracker(logdir)
