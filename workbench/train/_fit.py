"""``fit``: data-parallel training of a numpy model, with live progress and checkpoints."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench import _spans, track
from workbench.comm import allreduce
from workbench.errors import InvalidValueError
from workbench.pool import checkpoint_requests
from workbench.progress import progress as report
from workbench.track import Run, Tracker
from workbench.train._checkpoint import restore, save_checkpoint
from workbench.train._data import ShardSampler, shard
from workbench.train._optimizer import SGD, DistributedOptimizer
from workbench.train._params import broadcast_parameters, resolve_comm

__all__ = ["History", "evaluate", "fit"]


@dataclass
class History:
    """Per-epoch results of :func:`fit` (averaged over all ranks)."""

    epochs: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    steps: int = 0
    #: The step training continued from (0: from scratch); with ``checkpoint=`` it is
    #: where the checkpoint left off, also in the middle of an epoch.
    resumed_from: int = 0


def evaluate(model: Any, X: Any, y: Any, *, comm: Any = None) -> float:
    """Accuracy of ``model`` on ``(X, y)``: each rank scores its shard, one allreduce sums.

    Collective over ``comm`` (default ``MPI.COMM_WORLD``); every rank passes the whole
    ``(X, y)`` and gets the same number.
    """
    comm = resolve_comm(comm)
    X_part, y_part = shard(X, y, comm=comm)
    correct = (model.predict(X_part) == y_part).sum() if len(y_part) else 0
    counts = allreduce(np.array([correct, len(y_part)], dtype=np.int64), "sum", comm=comm)
    return float(counts[0] / max(counts[1], 1))


def _check_data(model: Any, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    n_in = getattr(model, "sizes", [None])[0]
    if X.ndim != 2 or (n_in is not None and X.shape[1] != n_in) or y.shape != (len(X),):
        raise InvalidValueError(
            f"fit expects X of shape (n, {n_in}) and y of shape (n,), got X {X.shape} and "
            f"y {y.shape}"
        )
    return X, y


def fit(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    X_val: Any = None,
    y_val: Any = None,
    bucket_bytes: int | str | None = None,
    overlap: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
    comm: Any = None,
    callbacks: Sequence[Tracker] | Tracker | None = None,
    run_name: str = "wb.train.fit",
) -> History:
    """Train a numpy model (e.g. :class:`~workbench.train.MLP`) data-parallel; collective.

    Every rank passes the full ``(X, y)``; a :class:`ShardSampler` gives each rank its
    slice of every global batch of ``batch_size`` (a multiple of the number of ranks),
    reshuffled each epoch with ``seed``. Rank 0's initial weights are broadcast first.
    Each step reports ``loss`` and ``accuracy`` (this rank's batch) through
    :func:`workbench.progress` (unless ``progress=False``). With ``checkpoint``, training
    resumes from that file when it exists and rewrites it after every epoch, and also at
    the step after the pool warned that its Slurm job ends soon
    (:func:`workbench.pool.checkpoint_requests`; the ranks agree on the step through one
    small allreduce per step), so that a new allocation resumes from there, mid-epoch.

    ``epochs`` passes over the data; ``lr``, ``momentum`` and ``weight_decay`` configure the
    :class:`SGD` update; ``bucket_bytes`` and ``overlap`` are those of
    :class:`DistributedOptimizer`; with ``X_val``/``y_val`` the validation accuracy is
    recorded after each epoch; ``comm`` defaults to ``MPI.COMM_WORLD``.

    ``callbacks``: trackers (:func:`workbench.track.mlflow`,
    :func:`workbench.track.tensorboard`) in which rank 0 records the run ``run_name`` (the
    MLflow experiment, the TensorBoard folder): the settings, the number of ranks, and each
    epoch's loss, accuracy and validation accuracy; the run ends ``done``, or ``failed``
    when training raises.
    """
    comm = resolve_comm(comm)
    X, y = _check_data(model, X, y)
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise InvalidValueError(f"epochs must be a positive integer, got {epochs!r}")
    sampler = ShardSampler(len(X), batch_size, seed=seed, comm=comm)
    broadcast_parameters(model, comm=comm)
    opt = DistributedOptimizer(
        SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay),
        bucket_bytes=bucket_bytes,
        overlap=overlap,
        comm=comm,
    )
    state = None
    if checkpoint is not None:
        state = restore(checkpoint, model, opt, missing_ok=True, comm=comm)
    start = 0 if state is None else int(state["epoch"])
    skip = 0 if state is None else int(state["extra"].get("batch", 0))
    history = History()
    handled = [0]  # requests to checkpoint acted on (see _asked_to_checkpoint)
    total = epochs * len(sampler)
    step = history.resumed_from = start * len(sampler) + skip
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
                "weight_decay": weight_decay, "seed": seed, "ranks": comm.Get_size(),
                "model": type(model).__name__, "resumed_from_epoch": start}  # fmt: skip
    given = track.trackers(callbacks)
    runs = _open_runs(given, run_name, settings, comm)
    since = _spans.mark() if given and _spans.on else None  # the timeline goes with the run
    state_at_end = "failed"
    try:
        for epoch in range(start, epochs):
            sampler.set_epoch(epoch)
            sums = np.zeros(3)  # loss, accuracy, steps of this rank
            for batch, idx in enumerate(sampler):
                if batch < skip:  # done before the checkpoint this run resumed from
                    continue
                t0 = _spans.now() if _spans.on else 0
                loss, acc = model.loss_and_grad(X[idx], y[idx])
                opt.step()
                step += 1
                if t0:
                    _spans.add("step", "train", t0, 0, {"step": step, "epoch": epoch + 1})
                sums += (loss, acc, 1)
                if progress:
                    report(step, total=total, loss=loss, accuracy=acc, epoch=epoch + 1)
                if checkpoint is not None and _asked_to_checkpoint(comm, handled):
                    done = (epoch + 1, 0) if batch + 1 == len(sampler) else (epoch, batch + 1)
                    _save_now(checkpoint, model, opt, done, f"{step} of {total}", comm)
            skip = 0
            sums = allreduce(sums, "sum", comm=comm)
            history.epochs.append(epoch + 1)
            history.loss.append(float(sums[0] / sums[2]))
            history.accuracy.append(float(sums[1] / sums[2]))
            if X_val is not None:
                history.val_accuracy.append(evaluate(model, X_val, y_val, comm=comm))
                if progress:
                    report(step, total=total, val_accuracy=history.val_accuracy[-1])
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, opt, epoch=epoch + 1, comm=comm)
            for run in runs:
                run.log(epoch + 1, _epoch_metrics(history))
        if since is not None:
            try:
                _attach_timeline(runs, since, comm)
            except Exception as e:  # the training is done: say what was not kept
                warnings.warn(f"wb.train.fit: the timeline was not kept with the run "
                              f"({type(e).__name__}: {e})", stacklevel=2)  # fmt: skip
        state_at_end = "done"
    finally:
        opt.close()
        for run in runs:
            run.close(state_at_end)
    history.steps = step
    return history


def _open_runs(
    trackers: list[Tracker], name: str, settings: dict[str, Any], comm: Any
) -> list[Run]:
    """On rank 0, a run of ``name`` in each tracker (none elsewhere)."""
    if comm.Get_rank() != 0:
        return []
    return track.kept_runs(trackers, name, time.strftime("fit-%Y%m%d-%H%M%S"), settings)


def _attach_timeline(runs: list[Run], since: tuple[int, int], comm: Any) -> None:
    """While a timeline is recorded: this training's part of it, from every rank, kept with
    rank 0's runs as ``timeline.json`` (Chrome trace) and ``timeline-summary.txt``."""
    from workbench.timeline import merge
    from workbench.timeline._record import gather

    record = _spans.take(comm.Get_rank(), since=since, keep=True)
    records = gather(record, comm)
    if records is None or not runs:
        return
    trace = merge(records)
    for run in runs:
        run.attach("timeline.json", json.dumps(trace.data, separators=(",", ":")))
        run.attach("timeline-summary.txt", str(trace.summary()))


def _epoch_metrics(history: History) -> dict[str, float]:
    out = {"loss": history.loss[-1], "accuracy": history.accuracy[-1]}
    if history.val_accuracy:
        out["val_accuracy"] = history.val_accuracy[-1]
    return out


def _asked_to_checkpoint(comm: Any, handled: list[int]) -> bool:
    """Whether a request to checkpoint arrived since the last one handled (``handled[0]``,
    updated): the most requests any rank received, so every rank answers the same at the
    same step and a request reaching the ranks at different steps is acted on once."""
    mine = np.array([checkpoint_requests()], dtype=np.int64)
    most = int(allreduce(mine, "max", comm=comm)[0])
    if most > handled[0]:
        handled[0] = most
        return True
    return False


def _save_now(
    path: str | os.PathLike[str], model: Any, opt: Any, done: tuple[int, int], at: str, comm: Any
) -> None:
    """Checkpoint in the middle of an epoch: ``done`` is (epochs, batches of the next)."""
    extra = {"batch": done[1], "why": "time limit"}
    save_checkpoint(path, model, opt, epoch=done[0], extra=extra, comm=comm)
    if comm.Get_rank() == 0:
        print(f"wb.train.fit: the job ends soon: checkpoint written to {os.fspath(path)} at "
              f"step {at}", flush=True)  # fmt: skip
