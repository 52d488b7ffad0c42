"""Start a pool's engines through Slurm: as a new job (``sbatch``), or as a step of the
allocation this process already runs in (``srun``, no job submitted).

The controller stays in this process's machine and listens where the nodes reach it
(:mod:`._address`). While a new job waits, its queue state shows; a job that can never start
(its partition forbids it) fails at once with Slurm's reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import ipyparallel as ipp

from workbench import _timeouts
from workbench._util import engines
from workbench.errors import InvalidValueError, PoolError
from workbench.pool import _address
from workbench.pool._allocation import Allocation
from workbench.pool._command import LaunchSpec
from workbench.pool._feedback import StartFeedback
from workbench.pool._launch import (
    batch_file,
    check_count,
    configure,
    engines_failed,
    find_mpiexec,
    new_cluster,
    save_launch,
    start_cluster,
    wait_registered,
)
from workbench.pool._slurm import ENDED, SlurmOptions, batch_template, job_state, require_slurm

__all__ = [
    "NEVER",
    "allocation_cluster",
    "slurm_cluster",
    "slurm_job_id",
    "wait_in_queue",
]

#: Pending reasons of a job that no wait will cure: the request is outside what the partition
#: (or the account) allows.
NEVER = frozenset(
    ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "AccountNotAllowed",
     "QOSMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit", "InvalidAccount", "InvalidQOS",
     "ReqNodeNotAvail, UnavailableNodes:", "BadConstraints", "PartitionDown",
     "AssocMaxWallDurationPerJobLimit", "AssocMaxNodesPerJob", "QOSMaxCpuPerJobLimit")
)  # fmt: skip

_NEVER_HINT = {
    "PartitionConfig": "the partition cannot give that many nodes or tasks: ask for fewer, "
    "or choose another partition (sinfo -s lists them)",
    "PartitionNodeLimit": "more nodes than the partition allows: ask for fewer nodes",
    "PartitionTimeLimit": "a longer time than the partition allows: ask for less time",
    "AccountNotAllowed": "this account may not use the partition: pass another account",
}


def _prepare(cluster: ipp.Cluster, spec: LaunchSpec, n: int) -> str:
    """Configure ``cluster`` for engines on other nodes and keep ``spec``; return what the
    start message says of the controller and the engines' command."""
    # engines on other nodes are known dead only by their heartbeats: a silent node is
    # declared dead after ~12 s instead of ipyparallel's ~33 s (see _timeouts)
    cluster.controller_args = [
        f"--HeartMonitor.period={int(_timeouts.HEARTBEAT * 1000)}",
        f"--HeartMonitor.max_heartmonitor_misses={_timeouts.HEARTBEAT_MISSES}",
    ]
    configure(cluster, spec, n)
    save_launch(cluster, spec)
    extra = f"; {spec.command.describe()}" if spec.command.describe() else ""
    return f"controller on {spec.controller}: {spec.controller_why}{extra}"


def _listen(spec: LaunchSpec, nodes: list[str], interface: str | None) -> LaunchSpec:
    """``spec`` with the controller address chosen for engines on ``nodes``: loopback when
    they all are this machine, else an address they reach (see :mod:`._address`)."""
    if spec.controller:
        return spec.replace(controller_why=spec.controller_why or "given")
    here = {socket.gethostname(), socket.gethostname().split(".")[0], "localhost"}
    if nodes and set(nodes) <= here:
        return spec.replace(controller="127.0.0.1", controller_why="the engines run here")
    address, why = _address.controller_address(nodes, interface=interface)
    return spec.replace(controller=address, controller_why=why)


def slurm_cluster(
    n: int,
    opts: SlurmOptions,
    spec: LaunchSpec,
    *,
    interface: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    feedback: StartFeedback,
) -> tuple[ipp.Cluster, ipp.Client, LaunchSpec]:
    """``n`` engines as one new Slurm job; shows the queue state while waiting
    (``feedback``). Ctrl-C or ``timeout`` while waiting cancels the job."""
    check_count(n)
    try:
        require_slurm()
    except RuntimeError as e:
        raise PoolError(str(e)) from None
    spec = _listen(spec, _address.partition_nodes(opts.partition), interface)
    cluster = new_cluster(n, "slurm", spec.controller, detach, profile)
    template = batch_template(opts, find_mpiexec())
    cluster.config.SlurmEngineSetLauncher.batch_template = template
    # the batch script goes with the cluster's files, not into the user's working folder;
    # its template too, for a restart by a process that attached (see load_cluster)
    script = batch_file(cluster.profile_dir, cluster.cluster_id)
    cluster.config.SlurmEngineSetLauncher.batch_file_name = script
    kept = batch_file(cluster.profile_dir, cluster.cluster_id, "template")
    with open(os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(template)
    said = _prepare(cluster, spec, n)
    feedback.say(f"starting {engines(n)} as a Slurm job (ranks started by {opts.launcher}; "
                 f"{said})…")  # fmt: skip

    def refused(e: BaseException) -> str | None:
        if isinstance(e, subprocess.CalledProcessError) and slurm_job_id(cluster) is None:
            return (f"sbatch refused the job: {_sbatch_refusal(script)}; check the options "
                    "given (partition, time, account, nodes, extra)")  # fmt: skip
        return None

    client = start_cluster(
        cluster, lambda c: wait_in_queue(cluster, c, n, timeout, feedback), refused=refused
    )
    return cluster, client, spec


def allocation_cluster(
    n: int | None,
    allocation: Allocation,
    spec: LaunchSpec,
    *,
    interface: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    feedback: StartFeedback,
) -> tuple[ipp.Cluster, ipp.Client, LaunchSpec]:
    """``n`` engines (default: every task of the allocation) as a step of ``allocation``:
    nothing is submitted; the step ends with the pool, the allocation stays."""
    n = allocation.tasks if n is None else check_count(n)
    allocation.check(n)
    spec = _listen(spec.replace(allocation=allocation.job_id, nodes=allocation.nodes),
                   list(allocation.nodes), interface)  # fmt: skip
    cluster = new_cluster(n, "mpi", spec.controller, detach, profile)
    said = _prepare(cluster, spec, n)
    feedback.say(f"starting {engines(n)} {allocation.describe()} with {spec.launcher} "
                 f"({said})…")  # fmt: skip
    client = start_cluster(cluster, lambda c: wait_registered(cluster, c, n, timeout, feedback))
    return cluster, client, spec


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
    """The Slurm job id of the cluster's engines, if they run as a job of their own."""
    for engine_set in cluster.engines.values():
        job = getattr(engine_set, "job_id", None)
        if job:
            return str(job)
    return None


def _never(reason: str) -> str | None:
    """The hint for a pending ``reason`` that no wait cures, else None."""
    key = next((r for r in NEVER if reason.startswith(r.rstrip(":"))), None)
    if key is None:
        return None
    return _NEVER_HINT.get(key, "the request is outside what the partition or account allows")


def wait_in_queue(
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
    (each call costs CPU the starting engines could use). A job pending for a reason that
    no wait cures, a job that ended, and engines that failed fail at once.
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
            failed = engines_failed(cluster, n, count)
            if failed:
                raise PoolError(failed)
        feedback.state(line)
        hint = _never(detail) if state == "PENDING" else None
        if hint:
            raise InvalidValueError(
                f"slurm job {job} can never start ({detail}): {hint}; it was cancelled"
            )
        if state in ENDED:
            raise PoolError(
                engines_failed(cluster, n, len(set(client.ids) - ignore), ended=True)
                or f"slurm job {job} ended ({state}) before its engines registered"
            )
        if now > deadline:
            raise PoolError(
                f"{len(set(client.ids) - ignore)}/{n} engines registered after {timeout:g} s "
                f"(slurm job {job}: {state}); the job was cancelled"
            )
        time.sleep(0.1)
    feedback.state(f"slurm job {job}: {n}/{n} engines registered")
