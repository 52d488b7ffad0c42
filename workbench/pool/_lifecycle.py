"""The steps of a pool's life that need only its cluster and client: attach to a running
one, replace its engines (restart), and tear it down (stop) leaving nothing behind.

:class:`~workbench.pool.Pool` calls these and keeps its own records (engine map, placed data,
job watch) up to date around them.
"""

from __future__ import annotations

import logging
import os
import time

import ipyparallel as ipp

from workbench import _timeouts
from workbench.errors import PoolError
from workbench.pool import _ipp, _launch
from workbench.pool._enginemap import remove_map
from workbench.pool._feedback import StartFeedback
from workbench.pool._procs import alive, remove_stale_segments, wait_gone
from workbench.pool._slurm_launch import slurm_job_id, wait_in_queue
from workbench.pool._status import EngineInfo

__all__ = ["connect", "replace_engines", "tear_down"]

log = logging.getLogger("workbench.pool")


def connect(
    cluster_file: str | None, cluster_id: str | None, profile: str | None, timeout: float
) -> tuple[ipp.Cluster, ipp.Client]:
    """The running cluster of ``cluster_file`` (or ``cluster_id`` in ``profile``, or the
    newest one there) and a client whose engines answered within ``timeout`` seconds."""
    if cluster_file is None and cluster_id is None:
        cluster_file = _launch.newest_cluster_file(profile)
    if cluster_file is not None and not os.path.exists(cluster_file):
        raise PoolError(f"cluster file {cluster_file} does not exist; is the pool running?")
    if cluster_file is None:
        cluster_file = _launch.cluster_file_of(cluster_id or "", profile)
    try:
        cluster = _launch.load_cluster(cluster_file)
    except FileNotFoundError as e:
        raise PoolError(f"no pool found ({e}); start one with `%wb start`") from None
    client = cluster.connect_client_sync()
    try:
        client.wait_for_engines(timeout=timeout, interactive=False)
    except TimeoutError:
        client.close()
        raise PoolError(
            f"pool {cluster.cluster_id} has no engines after {timeout:g} s; "
            "it may have stopped: start a new one with `%wb start`"
        ) from None
    return cluster, client


def replace_engines(
    cluster: ipp.Cluster,
    client: ipp.Client,
    engines: list[EngineInfo],
    *,
    slurm: bool,
    timeout: float,
) -> list[int]:
    """Stop ``engines`` and start as many again on the same controller (for a Slurm pool: a
    new job); return the ids of the new engines once registered (``timeout`` seconds)."""
    n = len(engines)
    old = frozenset(client.ids) | {e.engine_id for e in engines}
    try:
        cluster.stop_engines_sync()
    except Exception as e:  # e.g. scancel of a job Slurm has already forgotten
        log.warning("restart of pool %s: stopping its engines: %s", cluster.cluster_id, e)
    wait_gone(engines, timeout=_timeouts.ENGINES_EXIT)
    # engines of a lost node stay registered until the controller misses their heartbeats;
    # the controller reuses the ids of engines gone, so wait for them (bounded), and leave
    # out any still there when the new engines come
    silent = _timeouts.HEARTBEAT * (_timeouts.HEARTBEAT_MISSES + 2)
    deadline = time.monotonic() + (silent if slurm else _timeouts.QUERY)
    while set(client.ids) & old and time.monotonic() < deadline:
        time.sleep(0.1)
    old = frozenset(client.ids) & old
    cluster.start_engines_sync(n)
    quiet = StartFeedback(show=False)
    if slurm_job_id(cluster):  # a new job: the queue first
        wait_in_queue(cluster, client, n, timeout, quiet, ignore=old)
    else:
        _launch.wait_registered(cluster, client, n, timeout, quiet, ignore=old)
    return sorted(set(client.ids) - old)[:n]


def tear_down(cluster: ipp.Cluster, engines: list[EngineInfo]) -> None:
    """Stop the controller and ``engines`` (bounded waits; what does not exit is killed)
    and remove the pool's files. Engines another process started (it attached and
    restarted the pool) are found through the cluster file and stopped too."""
    others = None
    if cluster.cluster_file and os.path.exists(cluster.cluster_file):
        try:
            others = _launch.load_cluster(cluster.cluster_file)
        except (OSError, ValueError):  # unreadable: only what this process knows is stopped
            log.debug("reading %s before stopping", cluster.cluster_file, exc_info=True)
    _launch.stop_quietly(cluster)
    if others is not None and set(others.engines) - set(cluster.engines):
        try:
            others.stop_engines_sync()
        except Exception as e:  # a launcher already gone
            log.debug("stopping the engines another process started: %s", e, exc_info=True)
    wait_gone(engines, timeout=_timeouts.ENGINES_EXIT)
    remove_stale_segments()
    remove_map(cluster)
    # ipyparallel may write the cluster file back while its controller exits: once it is
    # gone (bounded wait), the file goes too, so nothing finds a stopped pool
    pid = _ipp.controller_pid(cluster)
    deadline = time.monotonic() + _timeouts.ENGINES_EXIT
    while pid is not None and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is None or not alive(pid):
        _launch.remove_cluster_file(cluster)
