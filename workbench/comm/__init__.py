"""The shared allreduce of workbench.

``allreduce(x, op="sum")`` on numpy arrays and CPU torch tensors, ``allreduce([...])``
fused, ``allreduce_async(tensors, team="name")`` in thread teams; all elementwise work
in numba kernels (:mod:`workbench.comm.kernels`), algorithms in
:mod:`workbench.comm.algorithms`, tuning through arguments or ``WORKBENCH_*``
environment variables (:mod:`workbench.comm._config`).
"""

from __future__ import annotations

from workbench.comm._config import (
    ALGORITHM_NAMES,
    ENV_ALGO,
    ENV_CHECK,
    ENV_FUSION,
    ENV_SEGMENT,
    ENV_STALL,
    Settings,
    settings,
)
from workbench.comm._teams import AllreduceHandle
from workbench.comm.algorithms import Algorithm, get_algorithm
from workbench.comm.allreduce import allreduce, allreduce_async
from workbench.comm.buffers import empty, is_symmetric, zeros
from workbench.errors import AllreduceMismatchError

__all__ = [
    "ALGORITHM_NAMES",
    "ENV_ALGO",
    "ENV_CHECK",
    "ENV_FUSION",
    "ENV_SEGMENT",
    "ENV_STALL",
    "Algorithm",
    "AllreduceHandle",
    "AllreduceMismatchError",
    "Settings",
    "allreduce",
    "allreduce_async",
    "empty",
    "get_algorithm",
    "is_symmetric",
    "settings",
    "zeros",
]
