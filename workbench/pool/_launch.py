"""Build, start, reload and stop the ipyparallel clusters behind a pool, and local pools.

A pool's cluster logs to its own file (:mod:`._logs`); how its engines start (local
``mpiexec``, a Slurm job, a step of an allocation; their setup, container and python) is a
:class:`~workbench.pool._command.LaunchSpec` kept in a file beside the cluster file, so a
restart from any process starts them the same way. Slurm starts are in
:mod:`._slurm_launch`; pool logic lives in :mod:`._pool`.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import ipyparallel as ipp
from traitlets.config import Config

from workbench import _timeouts
from workbench._util import engines
from workbench.errors import InvalidValueError, PoolError
from workbench.pool import _ipp, _logs, _ports, _procs
from workbench.pool._allocation import step_command
from workbench.pool._command import EngineCommand, LaunchSpec
from workbench.pool._diagnose import diagnose
from workbench.pool._feedback import StartFeedback
from workbench.pool._procs import alive

__all__ = [
    "batch_file",
    "check_count",
    "cluster_file_of",
    "configure",
    "engines_failed",
    "find_mpiexec",
    "load_cluster",
    "local_cluster",
    "log_file",
    "new_cluster",
    "newest_cluster_file",
    "output_files",
    "read_launch",
    "remove_cluster_file",
    "save_launch",
    "start_cluster",
    "stop_file",
    "stop_quietly",
    "wait_registered",
]

log = logging.getLogger(__name__)


def find_mpiexec() -> str:
    """``mpiexec`` of this environment (the ``mpich`` wheel puts it next to python)."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if not found:
        raise PoolError(
            "no `mpiexec` found next to this Python or on PATH: "
            "install MPI with `pip install mpich mpi4py` (or load your site's MPI module)"
        )
    return found


# One node: MPI over shared memory only, so no rank opens a network socket.
LOCAL_MPI_ENV = {"UCX_TLS": "self,sm", "FI_PROVIDER": "shm"}


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_caps(n: int) -> dict[str, str]:
    """Cap each engine's BLAS/OpenMP/numba threads at its share of this machine's cores,
    so ``n`` engines do not oversubscribe them; variables the user set are left alone."""
    share = str(max(1, (os.cpu_count() or 1) // n))
    return {var: share for var in _THREAD_VARS if var not in os.environ}


def local_mpiexec() -> str:
    """The launcher for a one-node pool: MPICH's fork-based ``mpiexec.gforker`` when present
    (no control socket on the network, unlike hydra's), else ``mpiexec``."""
    mpiexec = find_mpiexec()
    gforker = os.path.join(os.path.dirname(mpiexec), "mpiexec.gforker")
    return gforker if os.access(gforker, os.X_OK) else mpiexec


def check_count(n: Any) -> int:
    """``n`` if it is a positive number of engines, else :class:`InvalidValueError`."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidValueError(f"n must be a positive number of engines, got {n!r}")
    return n


def new_cluster(
    n: int, engine_launcher: str, ip: str | None, detach: bool, profile: str | None
) -> ipp.Cluster:
    """A cluster (not started) whose controller listens on ``ip`` and that logs to its own
    file, never to the notebook (see :mod:`._logs`)."""
    kwargs: dict[str, Any] = {"profile": profile} if profile else {}
    cluster_id = _logs.new_cluster_id()
    cluster = ipp.Cluster(
        n=n,
        engines=engine_launcher,
        controller_ip=ip or "127.0.0.1",
        shutdown_atexit=not detach,
        delay=0,
        cluster_id=cluster_id,
        log=_logs.cluster_logger(cluster_id),
        **kwargs,
    )
    # the controller's forked schedulers die with it, however it ends (see _with_children)
    cluster.config.LocalControllerLauncher.controller_cmd = [
        sys.executable, "-m", "workbench.pool._with_children", "ipyparallel.controller"
    ]  # fmt: skip
    _logs.log_to(cluster.log, log_file(cluster))
    return cluster


def log_file(cluster: ipp.Cluster) -> str:
    """Where ``cluster`` logs: ``<profile_dir>/log/workbench-<cluster_id>.log``."""
    return _logs.log_path(cluster.profile_dir, cluster.cluster_id)


def output_files(cluster: ipp.Cluster) -> list[str]:
    """The files ipyparallel's launchers send the engines' output to (may be gone once the
    engines stopped: ipyparallel removes them)."""
    files = (getattr(es, "output_file", "") for es in cluster.engines.values())
    return [f for f in files if isinstance(f, str) and f]


def load_cluster(cluster_file: str) -> ipp.Cluster:
    """The running cluster that ``cluster_file`` describes, logging to the pool's file (the
    one its starter writes to), not to the notebook. :class:`FileNotFoundError` if it is gone."""
    with open(cluster_file) as f:
        state = json.load(f)
    info = state.get("cluster", {})
    cluster_id = str(info.get("cluster_id", ""))
    profile_dir = info.get("profile_dir") or os.path.dirname(os.path.dirname(cluster_file))
    log = _logs.cluster_logger(cluster_id)
    _logs.log_to(log, _logs.log_path(profile_dir, cluster_id))
    # ipyparallel restores a batch launcher trait by trait, and computes its default output
    # file before its profile_dir is set, making a stray ./log folder in the working folder:
    # a configured output file (each set's own replaces it) keeps that default from running
    outputs = [s.get("output_file") for s in state.get("engines", {}).get("sets", {}).values()]
    config = Config()
    if any(outputs):
        config.BatchSystemLauncher.output_file = next(o for o in outputs if o)
        config.BatchSystemLauncher.batch_file_name = batch_file(profile_dir, cluster_id)
        # ipyparallel keeps no batch template in the cluster file: without this one a
        # restart from here (an attached notebook, the panel) would start lone engines
        with (
            contextlib.suppress(OSError),
            open(batch_file(profile_dir, cluster_id, "template")) as f,
        ):
            config.SlurmEngineSetLauncher.batch_template = f.read()
    cluster = ipp.Cluster.from_dict(state, log=log, cluster_file=cluster_file, config=config)
    _ipp.honest_cluster_file(cluster, alive)
    spec = read_launch(cluster)
    if spec is None and state.get("engines", {}).get("class") == "mpi":
        spec = LaunchSpec()  # a local pool of a workbench without launch files
    if spec is not None:  # restart like its starter
        configure(cluster, spec, int(info.get("n") or 1))
    return cluster


def configure(cluster: ipp.Cluster, spec: LaunchSpec, n: int) -> None:
    """Make ``cluster``'s engine launchers start ``n`` engines as ``spec`` says."""
    mpi = cluster.config.MPIEngineSetLauncher
    if spec.kind == "local":  # one node: MPI over shared memory, threads capped to the cores
        mpi.mpi_cmd = [local_mpiexec()]
        mpi.environment = {**LOCAL_MPI_ENV, **thread_caps(n)}
    elif spec.kind == "allocation":
        cmd, opts = step_command(spec.launcher, find_mpiexec())
        if spec.launcher == "srun":  # on as few of the nodes as the free tasks allow
            opts += [f"-N1-{max(1, len(spec.nodes))}", f"--job-name=workbench-{cluster.cluster_id}"]
        mpi.mpi_cmd, mpi.mpi_args = cmd, opts
    if spec.command != EngineCommand():
        mpi.engine_cmd = spec.command.argv()
        cluster.config.SlurmEngineSetLauncher.engine_cmd = spec.command.argv()
    # on the command line too (ipyparallel passes them in the environment only), for a
    # container that starts the engine with an environment of its own
    where = [f"--profile-dir={cluster.profile_dir}", f"--cluster-id={cluster.cluster_id}"]
    mpi.engine_args = cluster.config.SlurmEngineSetLauncher.engine_args = where


def _launch_file(profile_dir: str, cluster_id: str) -> str:
    return os.path.join(profile_dir, "security", f"workbench-{cluster_id}.launch.json")


def save_launch(cluster: ipp.Cluster, spec: LaunchSpec) -> None:
    """Keep ``spec`` beside ``cluster``'s files (private: it names the site's setup)."""
    path = _launch_file(cluster.profile_dir, cluster.cluster_id)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(spec.to_dict(), f)


def read_launch(cluster: ipp.Cluster) -> LaunchSpec | None:
    """The launch spec kept for ``cluster``, or None (a pool started without one)."""
    try:
        with open(_launch_file(cluster.profile_dir, cluster.cluster_id)) as f:
            return LaunchSpec.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


def batch_file(profile_dir: str, cluster_id: str, kind: str = "sbatch") -> str:
    """Where a Slurm pool's batch script (``kind`` "sbatch") and its template ("template")
    go: with the cluster's files, not into the user's working folder."""
    return os.path.join(profile_dir, "security", f"slurm-{cluster_id}.{kind}")


def cluster_file_of(cluster_id: str, profile: str | None) -> str:
    """The cluster file of ``cluster_id`` in ``profile`` (default: the current profile)."""
    kwargs: dict[str, Any] = {"profile": profile} if profile else {}
    return ipp.Cluster(cluster_id=cluster_id, log=log, **kwargs).cluster_file


def local_cluster(
    n: int,
    command: EngineCommand,
    *,
    detach: bool,
    profile: str | None,
    timeout: float,
    feedback: StartFeedback,
) -> tuple[ipp.Cluster, ipp.Client]:
    """``n`` MPI engines on this machine, controller on loopback; returns (cluster, client).

    Says which launcher starts them, then shows the engines registering (``feedback``);
    Ctrl-C or ``timeout`` while waiting stops what was started.
    """
    check_count(n)
    command.check_here()
    _procs.remove_stale_segments()  # (a stale one can make MPI_Init abort: see there)
    spec = LaunchSpec(command=command, controller="127.0.0.1", controller_why="a local pool")
    cluster = new_cluster(n, "mpi", "127.0.0.1", detach, profile)
    configure(cluster, spec, n)
    save_launch(cluster, spec)
    extra = f"; {command.describe()}" if command.describe() else ""
    feedback.say(f"starting {engines(n)} ({os.path.basename(local_mpiexec())}{extra})…")
    client = start_cluster(cluster, lambda c: wait_registered(cluster, c, n, timeout, feedback))
    return cluster, client


def _guard(cluster_file: str) -> subprocess.Popen[bytes]:
    """Start the guard (:mod:`._guard`) of the pool whose cluster file will be
    ``cluster_file``: it stops the pool if this process dies without stopping it."""
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.pool._guard", str(os.getpid()), cluster_file],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )  # fmt: skip


def start_cluster(
    cluster: ipp.Cluster,
    wait: Callable[[ipp.Client], None],
    *,
    refused: Callable[[BaseException], str | None] | None = None,
) -> ipp.Client:
    """Start ``cluster``, connect, ``wait(client)`` for its engines; on any failure (Ctrl-C
    included) stop what was started and raise (:class:`PoolError` with ``refused(error)``'s
    words when it has some)."""
    # not detached: stopped too if this process is killed
    guarded = _guard(cluster.cluster_file) if cluster.shutdown_atexit else None
    client = None
    # ports no process binding port 0 (srun's, starting the engines) can take (see _ports)
    ports = _ports.controller_args()
    cluster.controller_args = [*cluster.controller_args, *ports]
    cluster.log.info("controller: %s", " ".join(ports) or "ports of ipyparallel's choice")
    try:
        cluster.start_cluster_sync()
        client = cluster.connect_client_sync()
        wait(client)
    except BaseException as e:
        why = refused(e) if refused is not None else None
        if client is not None:
            client.close()
        stop_quietly(cluster)
        if guarded is not None:
            guarded.terminate()  # nothing left to guard
        if why:
            raise PoolError(why) from None
        if isinstance(e, (TimeoutError, RuntimeError)) and not isinstance(e, PoolError):
            raise PoolError(f"could not start the engines: {e}") from None
        raise
    return client


def wait_registered(
    cluster: ipp.Cluster,
    client: ipp.Client,
    n: int,
    timeout: float,
    feedback: StartFeedback,
    *,
    ignore: frozenset[int] = frozenset(),
) -> None:
    """Wait until ``n`` engines registered, showing each new count (``1/2 engines
    registered``); :class:`PoolError` when the engines exit first or after ``timeout`` s.
    Engines of ``ignore`` (those of a restarted job that the controller has not yet
    declared dead) do not count.

    Replaces ``client.wait_for_engines``, whose progress bar (tqdm, a widget in a notebook)
    is not what a person should see.
    """
    deadline = time.monotonic() + timeout
    while True:
        count = len(set(client.ids) - ignore)
        if count:
            feedback.state(f"{count}/{n} engines registered")
        if count >= n:
            return
        failed = engines_failed(cluster, n, count, ended=_engines_ended(cluster))
        if failed:
            raise PoolError(failed)
        if time.monotonic() > deadline:
            raise PoolError(
                f"could not start {engines(n)}: {count}/{n} registered after {timeout:g} s "
                f"(log: {log_file(cluster)}){_job_output(cluster)}"
            )
        time.sleep(0.1)


def engines_failed(
    cluster: ipp.Cluster, n: int, count: int, *, ended: str | bool | None = None
) -> str | None:
    """Why the engines of ``cluster`` failed, from their launcher's output (a setup line, a
    missing program, an unreachable controller, a full allocation: :mod:`._diagnose`); when
    the output says nothing known, a line saying how the launcher ``ended`` (if it did)."""
    output = _output(cluster)
    why = diagnose(output, read_launch(cluster) or LaunchSpec())
    if why:
        return f"could not start {engines(n)}: {why}"
    if not ended:
        return None
    how = ended if isinstance(ended, str) else "ended"
    return (f"could not start {engines(n)}: their launcher {how} with {count}/{n} registered "
            f"(log: {log_file(cluster)}){_job_output(cluster)}")  # fmt: skip


def _engines_ended(cluster: ipp.Cluster) -> str | None:
    """How the process that launched the engines ended (``exited (exit code 1)``), or None
    while it runs. Looks at the process itself too: ipyparallel notices an exit through an
    event loop that, outside a kernel, stopped with the call that started the engines."""
    for engine_set in cluster.engines.values():
        if getattr(engine_set, "state", "") == "after":
            code = (getattr(engine_set, "stop_data", None) or {}).get("exit_code")
            return f"exited (exit code {code})"
        pid = getattr(engine_set, "pid", -1)
        if isinstance(pid, int) and pid > 0 and not alive(pid):
            return "exited"
    return None


def _output(cluster: ipp.Cluster) -> str:
    """What the engines' launcher printed so far ("" when it cannot be read)."""
    texts = []
    for engine_set in cluster.engines.values():
        try:
            texts.append(_ipp.launcher_output(engine_set))
        except Exception:  # (a launcher of another ipyparallel version, a file gone)
            log.debug("reading the output of %s", engine_set, exc_info=True)
    return "\n".join(texts)


def _job_output(cluster: ipp.Cluster) -> str:
    """The end of what the engines' launcher printed, to add to an error (or where to
    look when it could not be read)."""
    text = _output(cluster)
    if text.strip():
        tail = "\n".join(text.splitlines()[-15:])
        return f"; its output ends with:\n{tail}"
    where = ", ".join(output_files(cluster)) or log_file(cluster)
    return f"; see {where}"


def newest_cluster_file(profile: str | None = None) -> str:
    """The most recently written cluster file of ``profile`` (default profile if None)."""
    profile_dir = ipp.Cluster(profile=profile or "default", log=log).profile_dir
    files = glob.glob(os.path.join(profile_dir, "security", "cluster-*.json"))
    if not files:
        raise PoolError(
            f"no running pool found in {profile_dir}/security; start one with `%wb start` "
            "or `workbench pool start --detach`, or pass the cluster file"
        )
    return max(files, key=os.path.getmtime)


def remove_cluster_file(cluster: ipp.Cluster) -> None:
    """Remove ``cluster``'s cluster file (the pool stopped), if it is still there."""
    with contextlib.suppress(OSError):  # removed already (by another process that stopped it)
        os.remove(cluster.cluster_file)


def stop_file(cluster_file: str) -> None:
    """Stop what still runs of the pool ``cluster_file`` describes (controller, engines)
    without connecting to it, and remove the file: for a pool whose engines are gone."""
    try:
        cluster = load_cluster(cluster_file)
    except (OSError, ValueError):
        cluster = None
    if cluster is not None:
        stop_quietly(cluster)
    with contextlib.suppress(OSError):
        os.remove(cluster_file)


def stop_quietly(cluster: ipp.Cluster) -> None:
    """Stop the controller and engines; report, don't raise, if that half fails.

    What ipyparallel says about it (the engines' exit codes, mpiexec's complaint about
    being stopped) goes to the pool's log file, like everything else the cluster logs.
    """
    _ipp.drop_unsubmitted(cluster)  # (stopping them would run `scancel ''`)
    # whatever of the controller's family outlives the stop is ended: the controller itself
    # when ipyparallel's stop failed, and its schedulers where the kernel does not end them
    # with it (they do on Linux: see _with_children)
    controller = _procs.family(_ipp.controller_pid(cluster))
    try:
        cluster.stop_cluster_sync()
    except Exception as e:  # the cluster may be half started or already gone
        log.warning("while stopping the pool %s: %s", cluster.cluster_id, e)
    _procs.reap(controller, _timeouts.CONTROLLER)
    where, cid = cluster.profile_dir, cluster.cluster_id
    files = [batch_file(where, cid, kind) for kind in ("sbatch", "template")]
    files.append(_launch_file(where, cid))
    pid = _ipp.controller_pid(cluster)
    if pid is None or not alive(pid):  # a controller stopped as it started leaves these
        files += [os.path.join(where, "security", f"ipcontroller-{cid}-{kind}.json")
                  for kind in ("client", "engine")]  # fmt: skip
    for path in files:
        with contextlib.suppress(OSError):
            os.remove(path)
