"""Start and stop the ipyparallel clusters behind a pool: local ``mpiexec`` or a Slurm job.

Pool logic lives in :mod:`workbench.pool._pool`; this module only knows processes and launchers.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

import ipyparallel as ipp
import psutil
from traitlets.config import Config

from workbench import _timeouts
from workbench._util import engines
from workbench.errors import InvalidValueError, PoolError
from workbench.pool import _ipp, _logs
from workbench.pool._feedback import StartFeedback
from workbench.pool._slurm import (
    ENDED,
    SlurmOptions,
    batch_template,
    job_state,
    require_slurm,
)
from workbench.pool._status import EngineInfo

__all__ = [
    "alive",
    "cluster_file_of",
    "find_mpiexec",
    "load_cluster",
    "local_cluster",
    "log_file",
    "newest_cluster_file",
    "output_files",
    "rss",
    "slurm_cluster",
    "slurm_job_id",
    "stop_file",
    "stop_quietly",
    "wait_gone",
    "wait_registered",
    "wait_started",
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


def _check_count(n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidValueError(f"n must be a positive number of engines, got {n!r}")
    return n


def _cluster(
    n: int, engines: str, ip: str, detach: bool, profile: str | None, timeout: float
) -> ipp.Cluster:
    """A cluster that logs to its own file, never to the notebook (see :mod:`._logs`)."""
    kwargs: dict[str, Any] = {"profile": profile} if profile else {}
    cluster_id = _logs.new_cluster_id()
    cluster = ipp.Cluster(
        n=n,
        engines=engines,
        controller_ip=ip,
        shutdown_atexit=not detach,
        delay=0,
        engine_timeout=int(timeout),
        cluster_id=cluster_id,
        log=_logs.cluster_logger(cluster_id),
        **kwargs,
    )
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
        config.BatchSystemLauncher.batch_file_name = _batch_file(profile_dir, cluster_id)
        # ipyparallel keeps no batch template in the cluster file: without this one a
        # restart from here (an attached notebook, the panel) would start lone engines
        with (
            contextlib.suppress(OSError),
            open(_batch_file(profile_dir, cluster_id, "template")) as f,
        ):
            config.SlurmEngineSetLauncher.batch_template = f.read()
    cluster = ipp.Cluster.from_dict(state, log=log, cluster_file=cluster_file, config=config)
    _ipp.honest_cluster_file(cluster, alive)
    if state.get("engines", {}).get("class") == "mpi":  # a local pool: restart like its starter
        _local_engines(cluster, int(info.get("n") or 1), local_mpiexec())
    return cluster


def _local_engines(cluster: ipp.Cluster, n: int, mpiexec: str) -> None:
    """Engines of ``cluster`` start as ``n`` ranks of a one-node ``mpiexec``."""
    cluster.config.MPIEngineSetLauncher.mpi_cmd = [mpiexec]
    cluster.config.MPIEngineSetLauncher.environment = {**LOCAL_MPI_ENV, **thread_caps(n)}


def _batch_file(profile_dir: str, cluster_id: str, kind: str = "sbatch") -> str:
    """Where a Slurm pool's batch script (``kind`` "sbatch") and its template ("template")
    go: with the cluster's files, not into the user's working folder."""
    return os.path.join(profile_dir, "security", f"slurm-{cluster_id}.{kind}")


def cluster_file_of(cluster_id: str, profile: str | None) -> str:
    """The cluster file of ``cluster_id`` in ``profile`` (default: the current profile)."""
    kwargs: dict[str, Any] = {"profile": profile} if profile else {}
    return ipp.Cluster(cluster_id=cluster_id, log=log, **kwargs).cluster_file


def local_cluster(
    n: int,
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
    _check_count(n)
    mpiexec = local_mpiexec()
    cluster = _cluster(n, "mpi", "127.0.0.1", detach, profile, timeout)
    _local_engines(cluster, n, mpiexec)
    feedback.say(f"starting {engines(n)} ({os.path.basename(mpiexec)})…")
    client = None
    try:
        cluster.start_cluster_sync()
        client = cluster.connect_client_sync()
        wait_registered(cluster, client, n, timeout, feedback)
    except BaseException as e:
        if client is not None:
            client.close()
        stop_quietly(cluster)
        if isinstance(e, (TimeoutError, RuntimeError)) and not isinstance(e, PoolError):
            raise PoolError(f"could not start {engines(n)}: {e}") from None
        raise
    return cluster, client


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
        ended = _engines_ended(cluster)
        if ended:
            raise PoolError(
                f"could not start {engines(n)}: their launcher {ended} with {count}/{n} "
                f"registered (log: {log_file(cluster)}){_job_output(cluster)}"
            )
        if time.monotonic() > deadline:
            raise PoolError(
                f"could not start {engines(n)}: {count}/{n} registered after {timeout:g} s "
                f"(log: {log_file(cluster)}){_job_output(cluster)}"
            )
        time.sleep(0.1)


def default_controller_ip() -> str:
    """The address compute nodes reach this machine on: that of its hostname."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def slurm_cluster(
    n: int,
    opts: SlurmOptions,
    *,
    controller_ip: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    feedback: StartFeedback,
) -> tuple[ipp.Cluster, ipp.Client]:
    """``n`` engines as one MPI job in a Slurm allocation; shows the queue state while waiting
    (``feedback``).

    Ctrl-C or ``timeout`` while waiting cancels the job.
    """
    _check_count(n)
    try:
        require_slurm()
    except RuntimeError as e:
        raise PoolError(str(e)) from None
    ip = controller_ip or default_controller_ip()
    cluster = _cluster(n, "slurm", ip, detach, profile, timeout)
    # engines on other nodes are known dead only by their heartbeats: a silent node is
    # declared dead after ~12 s instead of ipyparallel's ~33 s (see _timeouts)
    cluster.controller_args = [
        f"--HeartMonitor.period={int(_timeouts.HEARTBEAT * 1000)}",
        f"--HeartMonitor.max_heartmonitor_misses={_timeouts.HEARTBEAT_MISSES}",
    ]
    template = batch_template(opts, find_mpiexec())
    cluster.config.SlurmEngineSetLauncher.batch_template = template
    # the batch script goes with the cluster's files, not into the user's working folder;
    # its template too, for a restart by a process that attached (see load_cluster)
    script = _batch_file(cluster.profile_dir, cluster.cluster_id)
    cluster.config.SlurmEngineSetLauncher.batch_file_name = script
    kept = _batch_file(cluster.profile_dir, cluster.cluster_id, "template")
    with open(os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(template)
    feedback.say(f"starting {engines(n)} as a Slurm job (ranks started by {opts.launcher})…")
    client = None
    try:
        cluster.start_cluster_sync()
        client = cluster.connect_client_sync()
        _wait_in_queue(cluster, client, n, timeout, feedback)
    except BaseException as e:
        refused = isinstance(e, subprocess.CalledProcessError) and slurm_job_id(cluster) is None
        why = _sbatch_refusal(script) if refused else ""
        if client is not None:
            client.close()
        stop_quietly(cluster)
        if refused:
            raise PoolError(
                f"sbatch refused the job: {why}; check the options given (partition, time, "
                "account, nodes, extra)"
            ) from None
        raise
    return cluster, client


def _sbatch_refusal(script: str) -> str:
    """Why ``sbatch`` refuses ``script``, in its own words (``sbatch --test-only`` submits
    nothing): ipyparallel's launcher lets sbatch's message go to stderr and raises only
    "returned non-zero exit status 1"."""
    try:
        run = subprocess.run(["sbatch", "--test-only", script], capture_output=True, text=True,
                             timeout=_timeouts.QUERY, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(sbatch --test-only did not say why: {e})"
    lines = [ln.removeprefix("sbatch: error: ").strip() for ln in run.stderr.splitlines()]
    return "; ".join(ln for ln in lines if ln) or f"sbatch exited with status {run.returncode}"


def slurm_job_id(cluster: ipp.Cluster) -> str | None:
    """The Slurm job id of the cluster's engines, if they run through Slurm."""
    for engine_set in cluster.engines.values():
        job = getattr(engine_set, "job_id", None)
        if job:
            return str(job)
    return None


def wait_started(
    cluster: ipp.Cluster,
    client: ipp.Client,
    n: int,
    timeout: float,
    feedback: StartFeedback,
    *,
    ignore: frozenset[int] = frozenset(),
) -> None:
    """Wait for ``n`` engines besides ``ignore`` (a restart): :func:`wait_registered`, or
    for a Slurm pool the queue first (see :func:`slurm_cluster`)."""
    if slurm_job_id(cluster):
        _wait_in_queue(cluster, client, n, timeout, feedback, ignore=ignore)
    else:
        wait_registered(cluster, client, n, timeout, feedback, ignore=ignore)


def _wait_in_queue(
    cluster: ipp.Cluster,
    client: ipp.Client,
    n: int,
    timeout: float,
    feedback: StartFeedback,
    *,
    ignore: frozenset[int] = frozenset(),
) -> None:
    """Show each change of the job's state (pending, running, engines registered).

    Registrations are watched every 0.1 s; ``squeue`` is asked at most once a second
    (each call costs CPU the starting engines could use).
    """
    job = slurm_job_id(cluster)
    deadline = time.monotonic() + timeout
    state, detail, asked = "UNKNOWN", "", -1.0
    while len(set(client.ids) - ignore) < n:
        now = time.monotonic()
        if job and now - asked >= 1.0:
            state, detail = job_state(job)
            asked = now
        line = f"slurm job {job}: {state.lower()}" + (f" ({detail})" if detail else "")
        if state == "RUNNING":
            count = len(set(client.ids) - ignore)
            line = f"slurm job {job}: running on {detail}; engines registered {count}/{n}"
        feedback.state(line)
        if state in ENDED:
            raise PoolError(
                f"slurm job {job} ended ({state}) before its engines registered"
                f"{_job_output(cluster)}"
            )
        if now > deadline:
            raise PoolError(
                f"{len(set(client.ids) - ignore)}/{n} engines registered after {timeout:g} s "
                f"(slurm job {job}: {state}); the job was cancelled"
            )
        time.sleep(0.1)
    feedback.state(f"slurm job {job}: {n}/{n} engines registered")


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


def _job_output(cluster: ipp.Cluster) -> str:
    for engine_set in cluster.engines.values():
        with contextlib.suppress(Exception):
            text = engine_set.get_output(remove=False)
            if text:
                tail = "\n".join(text.splitlines()[-15:])
                return f"; its output ends with:\n{tail}"
    return ""


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


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def rss(e: EngineInfo) -> int | None:
    """Resident memory of a local engine, None for engines on other hosts."""
    if e.host != socket.gethostname():
        return None
    try:
        return psutil.Process(e.pid).memory_info().rss
    except psutil.Error:
        return None


def wait_gone(engines: list[EngineInfo], timeout: float) -> None:
    """Wait (bounded) for local engine processes to exit; kill what is left."""
    here = socket.gethostname()
    procs = []
    for e in engines:
        if e.host == here:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(e.pid))
    _, left = psutil.wait_procs(procs, timeout=timeout)
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


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
    try:
        cluster.stop_cluster_sync()
    except Exception as e:  # the cluster may be half started or already gone
        log.warning("while stopping the pool %s: %s", cluster.cluster_id, e)
    where, cid = cluster.profile_dir, cluster.cluster_id
    files = [_batch_file(where, cid, kind) for kind in ("sbatch", "template")]
    pid = _ipp.controller_pid(cluster)
    if pid is None or not alive(pid):  # a controller stopped as it started leaves these
        files += [os.path.join(where, "security", f"ipcontroller-{cid}-{kind}.json")
                  for kind in ("client", "engine")]  # fmt: skip
    for path in files:
        with contextlib.suppress(OSError):
            os.remove(path)
