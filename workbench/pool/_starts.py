"""The three ways a pool starts, with their settings resolved: argument, else the site
profile (:mod:`._site`), else workbench's default.

``local``: ``mpiexec`` on this machine. ``slurm``: a new Slurm job. ``here``: a step of the
Slurm allocation this process runs in. Each returns the started cluster and its client;
:class:`~workbench.pool.Pool` wraps them.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipyparallel as ipp

from workbench.errors import InvalidValueError
from workbench.pool import _launch, _slurm_launch
from workbench.pool._allocation import Allocation
from workbench.pool._command import EngineCommand, LaunchSpec
from workbench.pool._feedback import StartFeedback
from workbench.pool._site import SiteProfile, load_site
from workbench.pool._slurm import SlurmOptions

__all__ = ["start_here", "start_local", "start_slurm"]

Started = tuple[ipp.Cluster, ipp.Client]


def _command(
    site: SiteProfile, setup: str | Sequence[str] | None, container: str | None,
    python: str | None,
) -> EngineCommand:  # fmt: skip
    lines = (setup,) if isinstance(setup, str) else setup
    command = EngineCommand(
        tuple(site.pick("setup", None if lines is None else tuple(lines), ())),
        site.pick("container", container),
        site.pick("python", python),
    )
    command.check_here()
    return command


def _spec(
    site: SiteProfile, kind: str, launcher: str, setup: str | Sequence[str] | None,
    container: str | None, python: str | None, controller_ip: str | None,
) -> LaunchSpec:  # fmt: skip
    command = _command(site, setup, container, python)
    controller = site.pick("controller_ip", controller_ip)
    return LaunchSpec(kind=kind, command=command, launcher=launcher, controller=controller)


def start_local(
    n: int,
    *,
    setup: str | Sequence[str] | None,
    container: str | None,
    python: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    progress: bool,
) -> Started:
    """``n`` engines on this machine (the site profile is for compute nodes: not used)."""
    command = _command(SiteProfile(), setup, container, python)
    return _launch.local_cluster(n, command, detach=detach, profile=profile, timeout=timeout,
                                 feedback=StartFeedback(show=progress))  # fmt: skip


def start_slurm(
    n: int,
    *,
    partition: str | None,
    time: str | None,
    account: str | None,
    nodes: int | None,
    extra: str | None,
    launcher: str | None,
    setup: str | Sequence[str] | None,
    container: str | None,
    python: str | None,
    controller_ip: str | None,
    controller_interface: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    progress: bool,
) -> Started:
    """``n`` engines as a new Slurm job."""
    site = load_site()
    opts = SlurmOptions(
        site.pick("partition", partition), site.pick("time", time),
        site.pick("account", account), nodes, site.pick("extra", extra),
        site.pick("launcher", launcher, "mpiexec"),
    )  # fmt: skip
    spec = _spec(site, "slurm", opts.launcher, setup, container, python, controller_ip)
    cluster, client, _ = _slurm_launch.slurm_cluster(
        n, opts, spec, interface=site.pick("controller_interface", controller_interface),
        detach=detach, profile=profile, timeout=timeout, feedback=StartFeedback(show=progress),
    )  # fmt: skip
    return cluster, client


def start_here(
    n: int | None,
    *,
    launcher: str | None,
    setup: str | Sequence[str] | None,
    container: str | None,
    python: str | None,
    controller_ip: str | None,
    controller_interface: str | None,
    detach: bool,
    profile: str | None,
    timeout: float,
    progress: bool,
) -> Started:
    """``n`` engines (default: the allocation's tasks) in the allocation this process
    runs in; :class:`InvalidValueError` outside one."""
    allocation = Allocation.current()
    if allocation is None:
        raise InvalidValueError(
            "this process is not inside a Slurm allocation (no SLURM_JOB_ID): run it under "
            "salloc or sbatch, or use Pool.slurm(...) for a new job, Pool.local(...) here"
        )
    site = load_site()
    how = site.pick("launcher", launcher, "srun")
    if how not in ("srun", "mpiexec"):
        raise InvalidValueError(f"launcher must be 'srun' or 'mpiexec', got {how!r}")
    spec = _spec(site, "allocation", how, setup, container, python, controller_ip)
    cluster, client, _ = _slurm_launch.allocation_cluster(
        n, allocation, spec, interface=site.pick("controller_interface", controller_interface),
        detach=detach, profile=profile, timeout=timeout, feedback=StartFeedback(show=progress),
    )  # fmt: skip
    return cluster, client
