"""Hierarchical allreduce: shared memory inside each node, a ring between nodes.

1. shared-memory allreduce inside the node (every rank gets the node's partial),
2. ring allreduce between the node leaders (one rank per node),
3. broadcast of the result from the leader inside the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.comm import _config
from workbench.comm._topology import topology
from workbench.comm.algorithms._base import Algorithm, take_input
from workbench.comm.algorithms._ring import ring_allreduce
from workbench.comm.algorithms._shm import shm_allreduce

__all__ = ["HierarchicalAlgorithm"]


class HierarchicalAlgorithm(Algorithm):
    """Two-level allreduce; ``ranks_per_node`` fakes nodes (for tests on one machine)."""

    name = "hierarchical"
    team_safe = False  # creates shared windows on first use
    single_node = False
    shortcuts = False

    def __init__(self, ranks_per_node: int | None = None) -> None:
        self.ranks_per_node = ranks_per_node

    def reduce(self, buf: np.ndarray, op: str, comm: Any, *, src: np.ndarray | None = None) -> None:
        """Reduce ``buf`` over ``comm``: shm in each node, ring between leaders, node Bcast."""
        if comm.Get_size() == 1 or buf.size == 0:
            take_input(buf, src)
            return
        topo = topology(comm, self.ranks_per_node)
        shm_allreduce(buf, op, topo.node, src)
        if topo.single_node:
            return
        if topo.leaders is not None:
            ring_allreduce(buf, op, topo.leaders, _config.settings().segment_bytes)
        topo.node.Bcast(buf, root=0)
