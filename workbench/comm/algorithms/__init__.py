"""Allreduce algorithms behind one small interface, and the ``auto`` choice.

``get_algorithm(None | name | Algorithm)`` turns what a user passed into an
object, like Optuna's ``get_storage``. ``auto`` picks per call from the message
size and the communicator's node layout: from the table that
``python -m workbench.comm.tune`` measured on this machine when there is one for the
layout, else from built-in thresholds (see ``docs/allreduce.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.comm import _config
from workbench.comm._teams import is_team_comm
from workbench.comm._topology import Topology, topology
from workbench.comm._tuning import Layout, Plan, builtin_plan, load_plans, node_layout
from workbench.comm.algorithms._base import Algorithm, block_bounds, scratch, take_input
from workbench.comm.algorithms._cma import CmaAlgorithm, available
from workbench.comm.algorithms._hierarchical import HierarchicalAlgorithm
from workbench.comm.algorithms._mpi import MPIAlgorithm
from workbench.comm.algorithms._rhd import RHDAlgorithm
from workbench.comm.algorithms._ring import RingAlgorithm
from workbench.comm.algorithms._shm import ShmAlgorithm
from workbench.errors import InvalidTypeError, SetupError

__all__ = [
    "Algorithm",
    "AutoAlgorithm",
    "CmaAlgorithm",
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

#: Without a tuning table: below this many bytes the MPI library's allreduce wins (measured
#: on the 2-core machine of docs/allreduce.md).
SMALL_BYTES = 64 << 10
#: From this many bytes on, the pipelined ring wins on one node (measured: messages fall
#: out of the caches there and MPICH's single-copy path loses its edge).
LARGE_BYTES = 32 << 20
#: From this many bytes on, two ranks of one node copy straight between their arrays
#: (``cma``, where the kernel allows it; measured in docs/allreduce.md: 1.13x native at
#: 512 KiB, 0.50x at 128 KiB).
CMA_BYTES = 512 << 10


class AutoAlgorithm(Algorithm):
    """Pick per call, by message size and the communicator's node layout.

    With a table from ``python -m workbench.comm.tune`` (:func:`~workbench.comm._config.
    tune_file`) that has an entry for the layout, the winner measured at the nearest size,
    never one measured slower than ``mpi`` there. Otherwise the built-in thresholds: native
    MPI below ``small_bytes``; on one node native MPI for two ranks and shared memory for
    more up to ``large_bytes``, the pipelined ring beyond; hierarchical across nodes.
    ``tuned=False`` ignores the table. Teams never get window-based algorithms.

    The plan is made once per communicator, at its first ``auto`` call (collective: rank 0
    reads the table and broadcasts its plan), so every rank makes the same choice even when
    their files differ; after that a call costs one ``bisect``.
    """

    name = "auto"
    team_safe = True  # on a team's communicator it never picks one that is not
    single_node = False
    shortcuts = True

    def __init__(
        self, small_bytes: int = SMALL_BYTES, large_bytes: int = LARGE_BYTES, *, tuned: bool = True
    ) -> None:
        self.small_bytes = small_bytes
        self.large_bytes = large_bytes
        self.tuned = tuned
        self._plans: dict[int, Plan] = {}

    def plan(self, comm: Any) -> Plan:
        """The size plan for ``comm`` (made on first use: every rank of ``comm`` must call)."""
        found = self._plans.get(comm.handle)
        if found is None:
            layout = node_layout(comm)
            tuned = self._tuned_plan(comm, layout) if self.tuned else None
            found = tuned or builtin_plan(layout, self.small_bytes, self.large_bytes,
                                          cma=self._cma_bytes(comm, layout))  # fmt: skip
            self._plans[comm.handle] = found
        return found

    @staticmethod
    def _cma_bytes(comm: Any, layout: Layout) -> int:
        """:data:`CMA_BYTES` where ``cma`` works for ``comm`` (one node, not a team's
        communicator, a kernel that allows it: probed collectively), else 0."""
        if layout.nodes != 1 or layout.ranks != 2 or is_team_comm(comm):
            return 0
        return CMA_BYTES if available(comm) is None else 0

    @staticmethod
    def _tuned_plan(comm: Any, layout: Layout) -> Plan | None:
        """Rank 0's plan for ``layout`` from its table, on every rank (collective)."""
        mine: Plan | None = None
        failure = None
        if comm.Get_rank() == 0:
            try:
                mine = load_plans(_config.tune_file()).get(layout.key)
            except Exception as exc:  # the other ranks wait in bcast: tell them, never hang
                failure = f"{type(exc).__name__}: {exc}"
        mine, failure = comm.bcast((mine, failure), root=0)
        if failure is not None:
            raise SetupError(
                f"auto could not read its tuning table on rank 0 ({failure}); set "
                f"{_config.ENV_TUNE_FILE} to a readable file, or choose an algorithm with "
                f"{_config.ENV_ALGO} or algorithm="
            )
        return mine

    def select(self, nbytes: int, comm: Any) -> Algorithm:
        """The algorithm ``auto`` uses for ``nbytes`` on ``comm``."""
        if comm.Get_size() == 1:
            return _NAMED["mpi"]
        return _NAMED[self._plan_of(comm).pick(nbytes, is_team_comm(comm))]

    def stages(self, nbytes: int, comm: Any) -> bool:
        """Whether the node window of ``comm`` may take a message of ``nbytes`` where it fits
        (:meth:`Plan.stages`: a table that measured the window, only where it won)."""
        return self._plan_of(comm).stages(nbytes)

    def _plan_of(self, comm: Any) -> Plan:
        """The plan of ``comm``: cached, else made (collective the first time)."""
        return self._plans.get(comm.handle) or self.plan(comm)

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` with the algorithm :meth:`select` picks for its size and ``comm``."""
        self.select(buf.nbytes, comm).reduce(buf, op, comm, src=src)


#: Every algorithm by name (:data:`~workbench.comm.ALGORITHM_NAMES`). Instances, not classes
#: (unlike the sweep schedulers' registry): they are shared by every call, so that ``auto``
#: keeps its per-communicator plans and a call costs one dict lookup.
_NAMED: dict[str, Algorithm] = {
    "auto": AutoAlgorithm(),
    "mpi": MPIAlgorithm(),
    "ring": RingAlgorithm(),
    "rhd": RHDAlgorithm(),
    "shm": ShmAlgorithm(),
    "hierarchical": HierarchicalAlgorithm(),
    "cma": CmaAlgorithm(),
}


def get_algorithm(algorithm: str | Algorithm | None = None) -> Algorithm:
    """An :class:`Algorithm` from ``algorithm``: ``None`` (``WORKBENCH_ALLREDUCE_ALGO``), a
    name from :data:`~workbench.comm.ALGORITHM_NAMES` or an instance (returned as is)."""
    found = _NAMED.get(algorithm)  # type: ignore[arg-type]  # None or an instance: a miss
    if found is not None:
        return found
    if isinstance(algorithm, Algorithm):
        return algorithm
    if algorithm is None:
        return _NAMED[_config.settings().algorithm]
    if not isinstance(algorithm, str):
        raise InvalidTypeError(
            f"algorithm must be a name ({', '.join(_config.ALGORITHM_NAMES)}) or an "
            f"Algorithm instance, not {type(algorithm).__name__}"
        )
    return _NAMED[_config.parse_algorithm("algorithm", algorithm)]
