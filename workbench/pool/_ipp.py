"""The one module that touches ipyparallel's private state.

Everything workbench needs from ipyparallel beyond its public API is read here, so an
ipyparallel upgrade that renames an attribute is one file's work. Each function says which
private name it reads and falls back to a public (slower or coarser) answer when it is gone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipyparallel import error as ipp_error

from workbench.errors import ControllerGoneError

if TYPE_CHECKING:
    import ipyparallel as ipp
    from ipyparallel.client.asyncresult import AsyncResult

__all__ = [
    "Failure",
    "bound_requests",
    "child_metadata",
    "classify_failure",
    "controller_pid",
    "drop_unsubmitted",
    "engines_with_outstanding_requests",
    "execute",
    "failure_details",
    "honest_cluster_file",
    "launcher_output",
    "outstanding_by_engine",
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


class Failure(str, enum.Enum):
    """Why a task on an engine did not return a value (see :func:`classify_failure`)."""

    ENGINE_DIED = "engine died"  # the engine went away while the task ran
    INTERRUPTED = "interrupted"  # SIGINT reached the task (Ctrl-C, a timeout, an abort)
    ABORTED = "aborted"  # the task was dropped before it began
    RAISED = "raised"  # the task's own code raised


def _remote_name(exc: BaseException) -> str | None:
    """The name of the exception an engine raised, for ipyparallel's ``RemoteError``."""
    return exc.ename if isinstance(exc, ipp_error.RemoteError) else None


def classify_failure(exc: BaseException) -> Failure:
    """What ``exc``, taken from a task's result, means for the work that sent it.

    ipyparallel reports an engine that vanished mid-task as an ``EngineError`` and a task
    aborted before it began as ``TaskAborted``, either raised as such or wrapped in a
    ``RemoteError`` that carries only the exception's name; a ``KeyboardInterrupt`` raised on
    the engine arrives wrapped the same way. Anything else is the task's own error.
    """
    name = _remote_name(exc)
    if isinstance(exc, ipp_error.EngineError) or name == ipp_error.EngineError.__name__:
        return Failure.ENGINE_DIED
    if isinstance(exc, ipp_error.TaskAborted) or name == ipp_error.TaskAborted.__name__:
        return Failure.ABORTED
    if isinstance(exc, KeyboardInterrupt) or name == KeyboardInterrupt.__name__:
        return Failure.INTERRUPTED
    return Failure.RAISED


def failure_details(exc: BaseException) -> tuple[str, str, str, int]:
    """``(exception name, message, traceback text, engine id)`` of ``exc`` taken from a
    task's result: what the engine raised for ipyparallel's ``RemoteError`` (engine id -1
    when it is not known), else ``exc``'s own name and message with no traceback."""
    if isinstance(exc, ipp_error.RemoteError):
        eid = (exc.engine_info or {}).get("engine_id", -1)
        return exc.ename, str(exc.evalue), exc.traceback or "", eid
    return type(exc).__name__, str(exc), "", -1


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


def outstanding_by_engine(client: ipp.Client) -> dict[int, set[str]]:
    """Engine id -> ids of the messages this client sent there whose reply has not arrived.

    Reads ``Client._engines`` and ``Client._outstanding_dict``; without them, asks the
    controller which of the client's outstanding messages wait or run where.
    """
    engines = getattr(client, "_engines", None)
    outstanding = getattr(client, "_outstanding_dict", None)
    if isinstance(engines, dict) and isinstance(outstanding, dict):
        return {eid: set(outstanding[uuid]) for eid, uuid in list(engines.items())
                if outstanding.get(uuid)}  # fmt: skip
    mine = set(client.outstanding)
    if not mine:
        return {}
    queues = client.queue_status(verbose=True)
    return {
        int(eid): mine & set(q.get("queue", []))
        for eid, q in queues.items()
        if isinstance(q, dict) and mine & set(q.get("queue", []))
    }


def engines_with_outstanding_requests(client: ipp.Client) -> set[int]:
    """Engine ids to which this client sent a request whose reply has not arrived."""
    return set(outstanding_by_engine(client))


def execute(view: Any, code: str) -> AsyncResult:
    """``view.execute(code, silent=False, block=False)``, except that an error in ``code``
    does not make the engines abort what they receive next.

    ipykernel aborts the requests that reach a kernel while it is "aborting the queue"
    after a failed ``execute_request`` (``stop_on_error``, on by default); the window ends
    with a message the kernel sends itself, so on a loaded machine the next cell, sent as
    soon as the failed one returned, was aborted on some ranks (``TaskAborted``). A pool
    never queues a cell behind another, so nothing is lost by asking ``stop_on_error=False``.

    Builds the request as ``DirectView.execute`` does, with ``Client._build_targets``,
    ``Client._send`` and ``DirectView._socket``; without them, the public ``execute``
    (which keeps ipykernel's default).
    """
    from ipyparallel.client.asyncresult import AsyncResult

    client = view.client
    build = getattr(client, "_build_targets", None)
    send = getattr(client, "_send", None)
    socket = getattr(view, "_socket", None)
    if build is None or send is None or socket is None:
        return view.execute(code, silent=False, block=False)
    idents, targets = build(view.targets)
    content = {"code": code, "silent": False, "user_expressions": {}, "stop_on_error": False}
    meta = {"label": view.label}
    futures = [
        send(socket, "execute_request", content=content, ident=ident, metadata=meta,
             track_outstanding=True)
        for ident in idents
    ]  # fmt: skip
    if isinstance(view.targets, int):
        futures = futures[0]
    return AsyncResult(client, futures, fname="execute", targets=targets, owner=True)


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


def launcher_output(launcher: Any) -> str:
    """What an engine launcher (local ``mpiexec``, ``srun``, a batch job) printed so far.

    Reads the launcher's ``output_file`` itself: ipyparallel's ``get_output()`` caches the
    first answer, so asked while the engines start it would keep an empty one for good.
    Without that file, ``get_output()`` (right once the launcher ended).
    """
    path = getattr(launcher, "output_file", "")
    if isinstance(path, str) and path:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
    return str(launcher.get_output(remove=False) or "")


def drop_unsubmitted(cluster: ipp.Cluster) -> None:
    """Forget ``cluster``'s batch engine sets whose job was never submitted (sbatch refused
    it): ipyparallel would stop them with ``scancel ''``, at once and again at exit."""
    for key, launcher in list(cluster.engines.items()):
        if hasattr(launcher, "job_id") and not launcher.job_id:
            cluster.engines.pop(key)
