"""The test session leaves nothing running, however it ends: no ipyparallel controller or
engine, no ``mpiexec``, no pool guard, no Slurm job of its own.

Every process the suite starts inherits the session's private ``IPYTHONDIR`` (conftest.py
sets it), and every Slurm pool's batch script lies in that folder, so what belongs to this
session is told apart from other runs on the same machine. At the end of the session (after
the fixtures stopped their pools) whatever is still there is listed, stopped, and the
session fails. A ``SIGTERM`` to pytest (a CI time limit, ``kill``) becomes a
``KeyboardInterrupt``, so fixtures and ipyparallel's exit handlers still stop what they
started instead of leaving it orphaned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

_MARKS = (
    "ipyparallel",
    "mpiexec",
    "hydra_pmi_proxy",
    "ipcontroller",
    "ipengine",
    "workbench.pool._guard",
)
_found: list[str] = []


def _ours(proc: psutil.Process, ipythondir: str) -> bool:
    try:
        if not any(m in " ".join(proc.cmdline()) for m in _MARKS):
            return False
        return proc.environ().get("IPYTHONDIR") == ipythondir
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False  # gone, or not ours to read


def processes(ipythondir: str) -> list[psutil.Process]:
    """Pool processes of the session whose ``IPYTHONDIR`` is ``ipythondir``."""
    me = os.getpid()
    return [p for p in psutil.process_iter() if p.pid != me and _ours(p, ipythondir)]


def slurm_jobs(ipythondir: str) -> list[tuple[str, str]]:
    """``(job id, batch script)`` of the queued or running Slurm jobs whose batch script lies
    in ``ipythondir`` (the pools' scripts go with their cluster files)."""
    try:
        run = subprocess.run(["squeue", "-h", "-o", "%i|%o|%T"], capture_output=True,
                             text=True, timeout=20, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []  # no Slurm here
    jobs = [line.split("|") for line in run.stdout.splitlines() if line.count("|") == 2]
    return [(job, script) for job, script, state in jobs
            if script.startswith(ipythondir) and state != "COMPLETING"]  # fmt: skip


def _stop(procs: list[psutil.Process], jobs: list[tuple[str, str]]) -> None:
    for job, _ in jobs:
        subprocess.run(["scancel", job], capture_output=True, timeout=20, check=False)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            continue  # exited meanwhile
    _, left = psutil.wait_procs(procs, timeout=5)
    for p in left:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue


def _describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid} (parent {p.ppid()}): {' '.join(p.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {p.pid} (gone)"


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"pytest received signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _terminated)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Runs after the session's fixtures were torn down (pytest's own sessionfinish)."""
    ipythondir = os.environ.get("IPYTHONDIR", "")
    if not ipythondir:
        return
    deadline = time.monotonic() + 10  # pools stopped at the very end may still be exiting
    procs, jobs = processes(ipythondir), slurm_jobs(ipythondir)
    while (procs or jobs) and time.monotonic() < deadline:
        time.sleep(0.5)
        procs, jobs = processes(ipythondir), slurm_jobs(ipythondir)
    if not procs and not jobs:
        return
    _found.extend(_describe(p) for p in procs)
    _found.extend(f"slurm job {job} ({script})" for job, script in jobs)
    _stop(procs, jobs)
    if session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _found:
        terminalreporter.section("left running by the tests (now stopped)", red=True)
        for line in _found:
            terminalreporter.line(line)
        terminalreporter.line(
            "the session fails: a test or fixture started these and did not stop them"
        )
