"""The one module that touches ipyparallel's private state.

Everything workbench needs from ipyparallel beyond its public API is read here, so an
ipyparallel upgrade that renames an attribute is one file's work. Each function says which
private name it reads and falls back to a public (slower or coarser) answer when it is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.errors import ControllerGoneError

if TYPE_CHECKING:
    import ipyparallel as ipp
    from ipyparallel.client.asyncresult import AsyncResult

__all__ = [
    "bound_requests",
    "child_metadata",
    "controller_pid",
    "drop_unsubmitted",
    "engines_with_outstanding_requests",
    "honest_cluster_file",
    "ping",
]


def bound_requests(client: ipp.Client, timeout: Callable[[], float]) -> None:
    """Make every request/reply call of ``client`` to its controller (``queue_status``,
    ``db_query``, ``shutdown``...) raise :class:`ControllerGoneError` after ``timeout()``
    seconds instead of waiting forever for a controller that is gone.

    Replaces ``Client._send_recv`` on this instance (ipyparallel's version waits without a
    bound); the message is sent exactly as ipyparallel sends it.
    """
    send = client._send

    def send_recv(*args: Any, **kwargs: Any) -> Any:
        future = send(*args, **kwargs)
        limit = timeout()
        if not future.wait(limit):
            raise ControllerGoneError(f"the pool's controller did not answer within {limit:g} s")
        return future.result()

    client._send_recv = send_recv


def controller_pid(cluster: ipp.Cluster) -> int | None:
    """The process id of the cluster's controller launcher (``Cluster.controller.pid``), or
    None when the cluster does not know it."""
    pid = getattr(getattr(cluster, "controller", None), "pid", None)
    return pid if isinstance(pid, int) else None


def child_metadata(ar: AsyncResult) -> list[dict[str, Any]]:
    """Each child's live metadata (stdout, outputs, data...) of ``ar``.

    Reads ``AsyncResult._metadata``: the public ``ar.metadata`` re-parses every timestamp on
    each access (a few ms per poll of a running cell).
    """
    md = getattr(ar, "_metadata", None)
    if isinstance(md, list):
        return md
    public = ar.metadata
    return public if isinstance(public, list) else [public]


def engines_with_outstanding_requests(client: ipp.Client) -> set[int]:
    """Engine ids to which this client sent a request whose reply has not arrived.

    Reads ``Client._engines`` (engine id -> uuid) and ``Client._outstanding_dict`` (uuid ->
    message ids); without them, the public ``client.outstanding`` message ids are mapped
    to engines through ``client.metadata``.
    """
    engines = getattr(client, "_engines", None)
    outstanding = getattr(client, "_outstanding_dict", None)
    if isinstance(engines, dict) and isinstance(outstanding, dict):
        return {eid for eid, uuid in list(engines.items()) if outstanding.get(uuid)}
    busy: set[int] = set()
    for msg_id in list(client.outstanding):
        eid = client.metadata.get(msg_id, {}).get("engine_id")
        if eid is not None:
            busy.add(eid)
    return busy


def ping(client: ipp.Client, engine_ids: list[int], timeout: float) -> set[int]:
    """The engines of ``engine_ids`` that answer a ``kernel_info_request`` on their control
    channel within ``timeout`` seconds (all together). Busy engines answer too (ipykernel
    serves the control channel from a thread of its own); an engine whose node is down or
    cut off does not. Engines no longer registered are left out.

    Reads ``Client._engines`` (engine id -> uuid) and ``Client._control_stream``; sends with
    ``Client._send`` as ipyparallel's own control requests (``send_signal``) do.
    """
    import time

    engines = getattr(client, "_engines", {})
    futures = {}
    for eid in engine_ids:
        uuid = engines.get(eid)
        if uuid is not None:
            futures[eid] = client._send(
                client._control_stream, "kernel_info_request", content={}, ident=uuid.encode()
            )
    deadline = time.monotonic() + timeout
    return {eid for eid, f in futures.items() if f.wait(max(0.0, deadline - time.monotonic()))}


def honest_cluster_file(cluster: ipp.Cluster, alive: Callable[[int], bool]) -> None:
    """Make ``cluster`` rewrite its cluster file only while its controller process runs
    (``alive(pid)``), and remove it otherwise. ipyparallel rewrites the file from every
    process holding the cluster whenever a launcher reports a change, so a notebook that
    attached to a pool wrote the file back after ``workbench pool stop`` removed it, and the
    stopped pool was then found as the newest one."""

    def update_cluster_file() -> None:
        if not cluster.cluster_file:
            return
        pid = controller_pid(cluster)
        if cluster._is_running() and pid is not None and alive(pid):
            cluster.write_cluster_file()
        else:
            cluster.remove_cluster_file()

    cluster.update_cluster_file = update_cluster_file


def drop_unsubmitted(cluster: ipp.Cluster) -> None:
    """Forget ``cluster``'s batch engine sets whose job was never submitted (sbatch refused
    it): ipyparallel would stop them with ``scancel ''``, at once and again at exit."""
    for key, launcher in list(cluster.engines.items()):
        if hasattr(launcher, "job_id") and not launcher.job_id:
            cluster.engines.pop(key)
