"""Linear algebra offloaded from dask to the MPI engines and back (the Alchemist role).

``D = scatter(A)`` moves a dask/numpy array to the ranks in whole chunks (engines fetch
straight from dask workers when A lives on a cluster); ``truncated_svd``, ``pca``,
``lstsq`` and ``cg`` run on the ranks through the shared allreduce; ``D.to_dask()`` /
``gather(D)`` bring row-distributed results back lazily. New routines are one function:
``@routine(name) def f(block, comm, **kw)``, called with ``run(name, D, **kw)``.
"""

from __future__ import annotations

from typing import Any

from workbench.linalg._gather import gather, handle_of
from workbench.linalg._matrix import RowMatrix
from workbench.linalg._pca import PCAResult, pca
from workbench.linalg._registry import Rows, get_routine, routine, routines, run
from workbench.linalg._scatter import scatter
from workbench.linalg._solve import Solution, cg, lstsq
from workbench.linalg._svd import METHODS, truncated_svd

__all__ = [
    "METHODS",
    "PCAResult",
    "RowMatrix",
    "Rows",
    "Solution",
    "cg",
    "free",
    "gather",
    "get_routine",
    "handle_of",
    "lstsq",
    "pca",
    "routine",
    "routines",
    "run",
    "scatter",
    "truncated_svd",
]


def free(x: Any) -> None:
    """Release ``x``: a handle, or the handle behind a dask array made by ``to_dask()``."""
    handle_of(x).free()
