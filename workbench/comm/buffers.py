"""Symmetric buffers: ``wb.comm.empty`` / ``wb.comm.zeros`` allocate arrays in node-shared
memory that ``wb.allreduce(buf, out=buf)`` reduces in place with no staging copies.

Every rank calls with the same shape and dtype (the call is collective on ``comm``). The
arrays are ordinary numpy arrays (or torch tensors with ``like="torch"``) that can be
written and read as usual; slices of one buffer can be reduced too, as long as every rank
reduces the same slice. Memory is released once every rank has dropped its array (at the
next allocation on the communicator) or at exit. See ``docs/allreduce.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.comm.algorithms._symmetric import allocate
from workbench.errors import InvalidValueError, MissingDependencyError

__all__ = ["empty", "is_symmetric", "zeros"]


def empty(
    shape: int | Sequence[int],
    dtype: Any = np.float32,
    *,
    comm: Any = None,
    like: str = "numpy",
) -> Any:
    """A symmetric array of ``shape`` and ``dtype`` on every rank of ``comm`` (collective).

    Parameters
    ----------
    shape: the array's shape (same on every rank).
    dtype: float16, float32 (default), float64, int32 or int64.
    comm: the communicator whose ranks reduce it (default ``MPI.COMM_WORLD``).
    like: ``"numpy"`` for a numpy array, ``"torch"`` for a CPU torch tensor over the
        same memory (``torch.from_numpy``).

    The contents start at zero (the memory is fresh), but do not rely on it: use
    :func:`zeros` to say so.
    """
    arr = allocate(shape, dtype, comm)
    if like == "numpy":
        return arr
    if like == "torch":
        try:
            import torch
        except ImportError:
            raise MissingDependencyError(
                "wb.comm.empty(like='torch') needs PyTorch: pip install torch"
            ) from None
        return torch.from_numpy(arr)
    raise InvalidValueError(f"like must be 'numpy' or 'torch', got {like!r}")


def zeros(
    shape: int | Sequence[int],
    dtype: Any = np.float32,
    *,
    comm: Any = None,
    like: str = "numpy",
) -> Any:
    """:func:`empty`, filled with zeros."""
    buf = empty(shape, dtype, comm=comm, like=like)
    if like == "numpy":
        buf.fill(0)
    else:
        buf.zero_()
    return buf


def is_symmetric(x: Any) -> bool:
    """Whether ``x`` (a numpy array or CPU tensor, or a slice of one) lives in a symmetric
    buffer, so that ``allreduce(x, out=x)`` takes the zero-copy path."""
    from workbench.comm.algorithms._symmetric import find

    if type(x).__module__.split(".", 1)[0] == "torch":
        x = x.detach().numpy()
    return find(x) is not None
