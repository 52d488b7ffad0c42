"""Which ranks share a node: the node communicator and the node-leader communicator."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from mpi4py import MPI

__all__ = ["Topology", "topology"]


@dataclass
class Topology:
    """``node`` holds the ranks of this rank's node; ``leaders`` one rank per node
    (``None`` on ranks that are not their node's leader)."""

    node: Any
    leaders: Any
    n_nodes: int

    @property
    def single_node(self) -> bool:
        return self.n_nodes == 1


_lock = threading.Lock()
_cache: dict[tuple[int, int | None], Topology] = {}


def topology(comm: Any, ranks_per_node: int | None = None) -> Topology:
    """The node structure of ``comm`` (collective on first call per communicator).

    ``ranks_per_node`` fakes nodes of that many consecutive ranks (all ranks must
    still share memory); it lets tests drive the multi-node paths on one machine.
    """
    key = (comm.handle, ranks_per_node)
    with _lock:
        topo = _cache.get(key)
    if topo is not None:
        return topo
    if ranks_per_node is None:
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    else:
        node = comm.Split(comm.Get_rank() // ranks_per_node, key=comm.Get_rank())
    is_leader = node.Get_rank() == 0
    leaders = comm.Split(0 if is_leader else MPI.UNDEFINED, key=comm.Get_rank())
    n_nodes = comm.allreduce(1 if is_leader else 0)
    topo = Topology(node=node, leaders=leaders if is_leader else None, n_nodes=n_nodes)
    with _lock:
        _cache[key] = topo
    return topo
