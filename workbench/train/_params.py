"""Parameters as numpy views, agreement of their layout across ranks, and broadcast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench._util import format_ranks
from workbench.errors import AllreduceMismatchError, InvalidTypeError, InvalidValueError
from workbench.train._torch import is_torch_object, torch_params

__all__ = [
    "ParameterMismatchError",
    "as_arrays",
    "broadcast_parameters",
    "check_same_layout",
    "describe",
    "layout_differences",
    "resolve_comm",
]


class ParameterMismatchError(AllreduceMismatchError):
    """Ranks hold parameters of different shapes or dtypes (raised on every rank)."""


def resolve_comm(comm: Any) -> Any:
    """``comm``, or ``MPI.COMM_WORLD`` when None."""
    if comm is not None:
        return comm
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _view(x: Any, k: int) -> np.ndarray:
    if is_torch_object(x):
        if x.device.type != "cpu":
            raise InvalidTypeError(
                f"parameter {k} is on {x.device}; only CPU tensors are supported"
            )
        x = x.detach().numpy()
    if not isinstance(x, np.ndarray):
        raise InvalidTypeError(
            f"parameter {k} is a {type(x).__name__}; pass numpy arrays, torch tensors, "
            "a torch.nn.Module or a model with a `params` list"
        )
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise InvalidValueError(
            f"parameter {k} of shape {x.shape} must be a writable C-contiguous array "
            "(use np.ascontiguousarray / tensor.contiguous() when building the model)"
        )
    return x


def as_arrays(params: Any) -> list[np.ndarray]:
    """Numpy views (sharing memory) of a model's parameters.

    ``params`` is a list of numpy arrays or torch tensors, a model with a ``params``
    list (:class:`~workbench.train.MLP`) or a ``torch.nn.Module`` (parameters and buffers).
    """
    if hasattr(params, "params") and isinstance(params.params, list):
        params = params.params
    elif is_torch_object(params):
        params = torch_params(params)
    return [_view(x, k) for k, x in enumerate(params)]


def describe(arrays: Sequence[np.ndarray]) -> str:
    """One line naming the shapes and dtypes of ``arrays``."""
    return ", ".join(f"{tuple(a.shape)} {a.dtype.name}" for a in arrays) or "(no parameters)"


def layout_differences(mine: str, comm: Any) -> str | None:
    """None when every rank of ``comm`` passes the same ``mine`` (collective), else one
    line per group of ranks naming what they hold."""
    everyone = comm.allgather(mine)
    if len(set(everyone)) == 1:
        return None
    groups: dict[str, list[int]] = {}
    for r, d in enumerate(everyone):
        groups.setdefault(d, []).append(r)
    return "\n".join(f"  rank(s) {format_ranks(rs)}: [{d}]" for d, rs in groups.items())


def check_same_layout(arrays: Sequence[np.ndarray], comm: Any, what: str) -> None:
    """ParameterMismatchError on every rank of ``comm`` unless all ranks pass ``arrays`` of
    the same shapes and dtypes; ``what`` names the caller in the message."""
    lines = layout_differences(describe(arrays), comm)
    if lines is None:
        return
    raise ParameterMismatchError(
        f"{what}: ranks hold different parameters (communicator size {comm.Get_size()}):\n"
        f"{lines}\nBuild the same model on every rank (same sizes and dtype); "
        "nothing was sent."
    )


def broadcast_parameters(params: Any, root: int = 0, *, comm: Any = None) -> None:
    """Overwrite every rank's parameters ``params``, in place, with those of rank ``root``.

    ``params`` is what :func:`as_arrays` takes: a list of arrays or CPU tensors, a model
    with a ``params`` list (:class:`~workbench.train.MLP`) or a ``torch.nn.Module``.

    Collective: call it on every rank of ``comm`` (default ``MPI.COMM_WORLD``) before
    training, so all ranks start from identical weights. Ranks whose parameters differ
    in shape or dtype all raise :class:`ParameterMismatchError`.
    """
    comm = resolve_comm(comm)
    if not 0 <= root < comm.Get_size():
        raise InvalidValueError(
            f"root={root} is not a rank of this communicator of {comm.Get_size()}"
        )
    arrays = as_arrays(params)
    check_same_layout(arrays, comm, "broadcast_parameters")
    for a in arrays:
        comm.Bcast(a, root=root)
