"""Checkpoints: rank 0 writes atomically, every rank resumes from what rank 0 read.

A checkpoint is one pickle holding the model's and optimizer's ``state_dict()``, the
number of completed epochs, every rank's random generator state and any ``extra``.
It is written to a temporary file in the same folder, fsync'ed and renamed over the
target, so a crash leaves either the old or the new checkpoint, never a torn one.
Pickles can run code when loaded: only resume from checkpoints you wrote.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from workbench.errors import CheckpointError, InvalidValueError
from workbench.train._params import resolve_comm

__all__ = ["load_checkpoint", "restore", "resume", "save_checkpoint"]

_FORMAT = 1


def _write_atomic(path: str, state: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


def _agree_on_error(comm: Any, error: BaseException | None, what: str) -> None:
    """Re-raise rank 0's error on rank 0, and a RuntimeError naming it on the others."""
    message = comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=0)
    if error is not None:
        raise error
    if message is not None:
        raise CheckpointError(f"{what} failed on rank 0: {message}")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any,
    *,
    epoch: int,
    rng: np.random.Generator | None = None,
    extra: dict[str, Any] | None = None,
    comm: Any = None,
) -> None:
    """Write model, optimizer, ``epoch`` (epochs completed) and RNG states to ``path``.

    Collective over ``comm``: every rank calls it; rank 0 writes, the others send
    their ``rng`` state; an error on rank 0 is raised on every rank. ``extra`` is any
    picklable dict stored alongside (read back by :func:`load_checkpoint`).
    """
    comm = resolve_comm(comm)
    path = os.fspath(path)
    rng_states = comm.gather(None if rng is None else rng.bit_generator.state, root=0)
    error: BaseException | None = None
    if comm.Get_rank() == 0:
        try:
            state = {
                "format": _FORMAT,
                "epoch": int(epoch),
                "ranks": comm.Get_size(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng_states,
                "extra": dict(extra or {}),
            }
            _write_atomic(path, state)
        except Exception as exc:
            error = exc
    _agree_on_error(comm, error, f"save_checkpoint({path!r})")


def load_checkpoint(path: str | os.PathLike[str], *, comm: Any = None) -> dict[str, Any]:
    """The checkpoint at ``path``, read by rank 0 and broadcast to every rank of ``comm``
    (collective; default ``MPI.COMM_WORLD``)."""
    comm = resolve_comm(comm)
    path = os.fspath(path)
    state: dict[str, Any] | None = None
    error: BaseException | None = None
    if comm.Get_rank() == 0:
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                raise InvalidValueError(f"{path} is not a workbench.train checkpoint")
        except Exception as exc:
            error = exc
    _agree_on_error(comm, error, f"load_checkpoint({path!r})")
    return comm.bcast(state, root=0)


def resume(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any,
    *,
    rng: np.random.Generator | None = None,
    missing_ok: bool = False,
    comm: Any = None,
) -> int:
    """Load the checkpoint at ``path`` into ``model``, ``optimizer`` (and ``rng``) on every
    rank of ``comm`` (collective; default ``MPI.COMM_WORLD``).

    Returns the number of completed epochs, i.e. the epoch to continue from; with
    ``missing_ok`` a missing file returns 0 and leaves everything untouched.
    """
    state = restore(path, model, optimizer, rng=rng, missing_ok=missing_ok, comm=comm)
    return 0 if state is None else int(state["epoch"])


def restore(
    path: str | os.PathLike[str],
    model: Any,
    optimizer: Any,
    *,
    rng: np.random.Generator | None = None,
    missing_ok: bool = False,
    comm: Any = None,
) -> dict[str, Any] | None:
    """:func:`resume`, returning the whole checkpoint (``epoch``, ``extra``...) instead of
    the epoch; None for a missing file with ``missing_ok``."""
    comm = resolve_comm(comm)
    exists = comm.bcast(os.path.exists(os.fspath(path)) if comm.Get_rank() == 0 else None)
    if not exists and missing_ok:
        return None
    state = load_checkpoint(path, comm=comm)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if rng is not None:
        saved = state["rng"]
        if len(saved) != comm.Get_size() or saved[comm.Get_rank()] is None:
            raise InvalidValueError(
                f"{path} holds RNG states of {len(saved)} rank(s) (saved with rng="
                f"{'None' if saved[0] is None else 'a Generator'}); resume rng= on the same "
                f"number of ranks ({comm.Get_size()} now) or leave rng out"
            )
        rng.bit_generator.state = saved[comm.Get_rank()]
    return state
