"""The MPI library's own ``MPI_Allreduce``: the baseline and the fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from workbench.comm.algorithms._base import Algorithm

__all__ = ["MPIAlgorithm"]

MPI_OPS = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}


class MPIAlgorithm(Algorithm):
    """mpi4py ``Comm.Allreduce`` (in place, or from ``src`` into ``buf``)."""

    name = "mpi"
    team_safe = True
    single_node = False
    shortcuts = False

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """See :meth:`Algorithm.reduce <workbench.comm.algorithms.Algorithm.reduce>`."""
        send = MPI.IN_PLACE if src is None or src is buf else src
        comm.Allreduce(send, buf, op=MPI_OPS[op])
