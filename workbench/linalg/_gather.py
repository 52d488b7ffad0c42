"""Back to dask: one chunk per row block, pulled lazily from the engine that holds it.

The tasks carry the pool's cluster file, the engine id and the key, so they run anywhere:
in the notebook process (threaded scheduler, the pool's own client) or on ``distributed``
workers, which then pull straight from the engines.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import _timeouts, engine_store
from workbench.data import DistributedArray
from workbench.errors import InvalidValueError, StateError

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["gather", "handle_of", "to_dask"]

_clients: dict[str, Any] = {}  # cluster file -> ipyparallel client, in whichever process pulls
_lock = threading.Lock()


def to_dask(D: DistributedArray, *, timeout: float | None = _timeouts.TRANSFER) -> da.Array:
    """A dask array named after ``D.key``, chunked by ``D.bounds``; nothing moves until computed.

    Each chunk's task waits at most ``timeout`` seconds for its engine (None: no limit).
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    D._check()
    cluster_file = D.pool.cluster_file
    with _lock:
        _clients.setdefault(cluster_file, D.pool.client)
    name = f"wb-{D.key}"
    tail = tuple(D.shape[1:])
    dsk: dict[Any, Any] = {}
    for rank, (lo, hi) in enumerate(D.bounds):
        index = (name, rank) + (0,) * len(tail)
        engine = D.pool.engines[rank].engine_id
        dsk[index] = (_pull, cluster_file, engine, D.key, (hi - lo, *tail), D.dtype.str, timeout)
    chunks = (tuple(hi - lo for lo, hi in D.bounds), *((d,) for d in tail))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(D.shape), D.dtype))


def gather(D: DistributedArray, *, timeout: float | None = _timeouts.TRANSFER) -> da.Array:
    """Same as ``D.to_dask(timeout=timeout)``: the handle ``D`` as a lazy dask array."""
    return to_dask(D, timeout=timeout)


def handle_of(x: Any) -> DistributedArray:
    """The handle behind ``x``, a dask array made by :func:`to_dask` (or a handle itself)."""
    from workbench.pool import require

    if isinstance(x, DistributedArray):
        return x
    name = getattr(x, "name", "")
    handle = require().placed.get(name[3:]) if name.startswith("wb-") else None
    if not isinstance(handle, DistributedArray):
        raise InvalidValueError(
            f"{type(x).__name__} {name or ''} is not a workbench handle nor an array made by "
            "to_dask() on the current pool"
        )
    return handle


def _pull(
    cluster_file: str,
    engine: int,
    key: str,
    shape: tuple[int, ...],
    dtype: str,
    timeout: float | None = _timeouts.TRANSFER,
) -> Any:
    """Fetch one block from its engine (runs where dask runs the task)."""
    if shape[0] == 0:
        return np.empty(shape, dtype)
    with _lock:
        client = _clients.get(cluster_file)
        if client is None:
            import ipyparallel as ipp

            # its own logger: in a notebook ipyparallel's default one would print into cells
            log = logging.getLogger("workbench.linalg.gather")
            client = ipp.Cluster.from_file(cluster_file, log=log).connect_client_sync()
            _clients[cluster_file] = client
        ar = client[engine].apply_async(engine_store.get, key)
    block = ar.get(timeout=timeout)
    if block.shape != shape:
        raise StateError(
            f"block {key} on engine {engine} has shape {block.shape}, expected {shape}: "
            "it was replaced since the dask array was made; call to_dask() again"
        )
    return block
