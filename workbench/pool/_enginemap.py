"""Which engine is which MPI rank: asked of the engines when a pool connects, and kept in a
file beside the cluster file so that a process attaching later need not ask again (busy
engines would make it wait).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import TYPE_CHECKING

from workbench import _timeouts
from workbench.errors import PoolError
from workbench.pool import _engine
from workbench.pool._status import EngineInfo

if TYPE_CHECKING:
    import ipyparallel as ipp

__all__ = ["map_engines", "remove_map"]


def _map_file(cluster: ipp.Cluster) -> str:
    folder = os.path.dirname(cluster.cluster_file) or "."
    return os.path.join(folder, f"workbench-{cluster.cluster_id}.json")


def map_engines(
    cluster: ipp.Cluster,
    client: ipp.Client,
    *,
    ids: list[int] | None = None,
    reuse: bool = False,
) -> list[EngineInfo]:
    """The engines ``ids`` (default: all registered) by MPI rank, with ``comm``, ``rank`` and
    ``size`` defined on each (:func:`workbench.pool._engine.bootstrap`).

    With ``reuse``, the map saved by the process that started the pool is taken when it
    still names exactly the registered engines. :class:`PoolError` when the engines were not
    started as one MPI job.
    """
    if reuse:
        saved = _load(cluster, client)
        if saved is not None:
            return saved
    view = client[ids] if ids else client[:]
    infos = view.apply_async(_engine.bootstrap).get(timeout=_timeouts.ENGINE_START)
    engines = sorted(
        (
            EngineInfo(i["rank"], eid, i["host"], i["pid"])
            for i, eid in zip(infos, view.targets, strict=False)
        ),
        key=lambda e: e.rank,
    )
    sizes = {i["size"] for i in infos}
    if sizes != {len(infos)}:
        raise PoolError(
            f"engines disagree on the MPI world (sizes {sorted(sizes)} for {len(infos)} "
            "engines): they were not started as one MPI job; restart the pool"
        )
    if cluster.cluster_file:
        fd = os.open(_map_file(cluster), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([dataclasses.asdict(e) for e in engines], f)
    return engines


def _load(cluster: ipp.Cluster, client: ipp.Client) -> list[EngineInfo] | None:
    try:
        with open(_map_file(cluster)) as f:
            engines = [EngineInfo(**e) for e in json.load(f)]
    except (OSError, ValueError, TypeError):  # none saved, or not one of ours: ask the engines
        return None
    if sorted(e.engine_id for e in engines) != sorted(client.ids):
        return None
    return sorted(engines, key=lambda e: e.rank)


def remove_map(cluster: ipp.Cluster) -> None:
    """Remove the saved map (the pool stopped)."""
    with contextlib.suppress(OSError):  # never saved, or removed by another process
        os.remove(_map_file(cluster))
