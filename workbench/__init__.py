"""workbench: supercomputer-scale data science from a Jupyter notebook.

A pool of MPI engines runs heavy cells; every parallel feature reduces through one
numba-compiled allreduce (:mod:`workbench.comm`) and reports through one progress
channel (:mod:`workbench.progress`) that ipywidgets draw live.
"""

from __future__ import annotations

import os as _os
from typing import Any

from workbench import _provided, _spans

# Eager, and light: these functions must win over the submodules of the same name.
from workbench.progress import progress
from workbench.sweep import choice, grid, loguniform, randint, sweep, uniform

__version__ = "0.1.0"

__all__ = [
    "Pool",
    "__version__",
    "allreduce",
    "allreduce_async",
    "choice",
    "grid",
    "joblib",
    "load_ipython_extension",
    "loguniform",
    "progress",
    "randint",
    "sweep",
    "uniform",
    "unload_ipython_extension",
]

# Imported on first use: engines and the notebook should not pay for numba or
# ipyparallel start-up unless they use the piece that needs it.
_LAZY = {
    "Pool": ("workbench.pool", "Pool"),
    "allreduce": ("workbench.comm", "allreduce"),
    "allreduce_async": ("workbench.comm", "allreduce_async"),
}


_SUBMODULES = {
    "comm", "data", "pool", "train", "select", "linalg", "widgets", "track", "timeline",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def joblib(pool: Any = None, **options: Any) -> Any:
    """``with wb.joblib():`` runs joblib's ``n_jobs`` (scikit-learn's) on the engines of
    ``pool`` (default: the current pool) inside the block; ``options`` (``n_jobs``,
    ``min_bytes``, ``progress``) as for :func:`workbench.joblib_backend.use`."""
    from workbench.pool import require

    return _joblib(require(pool), **options)


def _scatter(pool: Any, x: Any, *, key: str | None = None) -> Any:
    from workbench.data import scatter_rows

    return scatter_rows(pool, x, key=key)


def _broadcast(pool: Any, obj: Any, *, key: str | None = None) -> Any:
    from workbench.data import broadcast

    return broadcast(pool, obj, key=key)


def _joblib(pool: Any, **options: Any) -> Any:
    from workbench.joblib_backend import use

    return use(pool, **options)


# pool.scatter, pool.broadcast and pool.joblib: the pool must not import what implements
# them (it is built on the pool), so the package provides them (see workbench._provided)
_provided.provide("scatter", _scatter)
_provided.provide("broadcast", _broadcast)
_provided.provide("joblib", _joblib)


if _os.environ.get(_spans.ENV):  # this process is recorded (workbench.timeline)
    from workbench.timeline._record import record_process

    record_process(_os.environ[_spans.ENV])


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%wb`` and ``%%distributed`` magics (``%load_ext workbench``)."""
    from workbench.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo: magics stay registered until the kernel ends."""
