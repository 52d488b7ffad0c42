"""Allreduce algorithms behind one small interface, and the ``auto`` choice.

``get_algorithm(None | name | Algorithm)`` turns what a user passed into an
object, like Optuna's ``get_storage``. ``auto`` picks per call from the message
size and the node topology, with thresholds measured by ``benchmarks/allreduce.py``
(see ``docs/allreduce.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.comm import _config
from workbench.comm._teams import is_team_comm
from workbench.comm._topology import Topology, topology
from workbench.comm.algorithms._base import Algorithm, block_bounds, scratch, take_input
from workbench.comm.algorithms._hierarchical import HierarchicalAlgorithm
from workbench.comm.algorithms._mpi import MPIAlgorithm
from workbench.comm.algorithms._rhd import RHDAlgorithm
from workbench.comm.algorithms._ring import RingAlgorithm
from workbench.comm.algorithms._shm import ShmAlgorithm
from workbench.errors import InvalidTypeError

__all__ = [
    "Algorithm",
    "AutoAlgorithm",
    "HierarchicalAlgorithm",
    "MPIAlgorithm",
    "RHDAlgorithm",
    "RingAlgorithm",
    "ShmAlgorithm",
    "Topology",
    "block_bounds",
    "get_algorithm",
    "scratch",
    "take_input",
    "topology",
]

#: Below this many bytes the MPI library's latency-tuned allreduce wins (measured).
SMALL_BYTES = 64 << 10
#: From this many bytes on, the pipelined ring wins on one node (measured: messages fall
#: out of the caches there and MPICH's single-copy path loses its edge).
LARGE_BYTES = 32 << 20


class AutoAlgorithm(Algorithm):
    """Pick per call, by size and topology (thresholds from ``benchmarks/allreduce.py``):
    native MPI for small messages; on one node, native MPI for two ranks and shared
    memory for more up to ``large_bytes``, the pipelined ring beyond; hierarchical across
    nodes. The choice depends only on the size and the communicator, so every rank makes
    the same one. ``small_bytes`` and ``large_bytes`` move the two size thresholds."""

    name = "auto"

    def __init__(self, small_bytes: int = SMALL_BYTES, large_bytes: int = LARGE_BYTES) -> None:
        self.small_bytes = small_bytes
        self.large_bytes = large_bytes

    def select(self, nbytes: int, comm: Any) -> Algorithm:
        """The algorithm ``auto`` uses for ``nbytes`` on ``comm``."""
        size = comm.Get_size()
        if nbytes < self.small_bytes or size == 1:
            return _INSTANCES["mpi"]
        if is_team_comm(comm):  # no shared windows from team threads (see _teams.py)
            return _INSTANCES["ring" if nbytes >= self.large_bytes else "mpi"]
        if not topology(comm).single_node:
            return _INSTANCES["hierarchical"]
        if nbytes >= self.large_bytes:
            return _INSTANCES["ring"]
        return _INSTANCES["mpi" if size == 2 else "shm"]

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` with the algorithm :meth:`select` picks for its size and ``comm``."""
        self.select(buf.nbytes, comm).reduce(buf, op, comm, src=src)


_INSTANCES: dict[str, Algorithm] = {
    "auto": AutoAlgorithm(),
    "mpi": MPIAlgorithm(),
    "ring": RingAlgorithm(),
    "rhd": RHDAlgorithm(),
    "shm": ShmAlgorithm(),
    "hierarchical": HierarchicalAlgorithm(),
}


def get_algorithm(algorithm: str | Algorithm | None = None) -> Algorithm:
    """An :class:`Algorithm` from ``algorithm``: ``None`` (``WORKBENCH_ALLREDUCE_ALGO``), a
    name from :data:`~workbench.comm.ALGORITHM_NAMES` or an instance (returned as is)."""
    found = _INSTANCES.get(algorithm)  # type: ignore[arg-type]
    if found is not None:
        return found
    if isinstance(algorithm, Algorithm):
        return algorithm
    if algorithm is None:
        return _INSTANCES[_config.settings().algorithm]
    if not isinstance(algorithm, str):
        raise InvalidTypeError(
            f"algorithm must be a name ({', '.join(_config.ALGORITHM_NAMES)}) or an "
            f"Algorithm instance, not {type(algorithm).__name__}"
        )
    return _INSTANCES[_config.parse_algorithm("algorithm", algorithm)]
