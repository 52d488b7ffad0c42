"""Experiment tracking: sweeps and training runs recorded in MLflow or TensorBoard.

>>> import workbench as wb
>>> wb.sweep(objective, space, n_trials=20, metric="acc",
...          callbacks=[wb.track.mlflow("sqlite:///mlflow.db"), wb.track.tensorboard("runs")])
>>> wb.train.fit(model, X, y, callbacks=[wb.track.mlflow("sqlite:///mlflow.db")])

- :func:`mlflow` records each sweep trial (or training run) as an MLflow run: parameters,
  every reported metric per step, the final value(s), the state, and a ``best`` tag on the
  sweep's best trial. Any tracking URI works; ``sqlite:///mlflow.db`` needs no server.
- :func:`tensorboard` writes TensorBoard event files: a folder per trial under
  ``logdir/<sweep>/``, every metric as a scalar per step, the parameters in the HParams
  dashboard, and a ``best`` scalar (1 on the best trial).
- :class:`Tracker` is the base of both (``open_run`` returning a :class:`Run` with ``log``
  and ``close``): subclass it to send runs elsewhere.

In a sweep, the notebook (the sweep's only writer) records the trials as they start, report
and end; a resumed sweep does not record a finished trial twice. In ``wb.train.fit`` rank 0
records the run: its settings, and the loss and accuracies of every epoch. The libraries are
optional: ``pip install 'workbench[track]'``.
"""

from __future__ import annotations

from workbench.track._base import Run, Tracker, kept_runs, trackers
from workbench.track._mlflow import MLflowTracker, mlflow
from workbench.track._tensorboard import TensorBoardTracker, tensorboard

__all__ = [
    "MLflowTracker",
    "Run",
    "TensorBoardTracker",
    "Tracker",
    "kept_runs",
    "mlflow",
    "tensorboard",
    "trackers",
]
