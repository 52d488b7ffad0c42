"""The Slurm allocation this process runs in (``salloc``, an interactive node, a batch job):
its id, nodes and tasks, read from the environment Slurm gives its processes.

A pool started inside it runs its engines as one job step (``srun --exact``: only the tasks
it asks for, so several pools share the allocation on disjoint CPUs) instead of submitting
a new job; stopping the pool ends the step, never the allocation.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from workbench._timeouts import QUERY
from workbench.errors import InvalidValueError

__all__ = ["Allocation", "expand_counts", "step_command"]

#: Seconds ``srun`` waits for the allocation to have the step's tasks free before it fails.
STEP_WAIT = 5


def expand_counts(text: str) -> list[int]:
    """``"3,2(x2)"`` (``SLURM_JOB_CPUS_PER_NODE``, ``SLURM_TASKS_PER_NODE``) -> ``[3, 2, 2]``."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            raise InvalidValueError(f"cannot read Slurm's per-node count {text!r}")
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


def _hostnames(nodelist: str) -> tuple[str, ...]:
    """``node[1-2]`` -> ``("node1", "node2")`` (``scontrol show hostnames``)."""
    try:
        done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                              text=True, timeout=QUERY, check=False)  # fmt: skip
        names = tuple(done.stdout.split()) if done.returncode == 0 else ()
    except (OSError, subprocess.TimeoutExpired):
        names = ()
    return names or (nodelist,)


@dataclass(frozen=True)
class Allocation:
    """A Slurm allocation: job id, node names (``nodelist`` as Slurm writes it) and the
    number of tasks it holds (``SLURM_NTASKS``, else one per CPU)."""

    job_id: str
    nodelist: str
    nodes: tuple[str, ...]
    tasks: int

    @classmethod
    def current(cls, env: Mapping[str, str] | None = None) -> Allocation | None:
        """The allocation of ``env`` (default ``os.environ``), or None outside one."""
        env = os.environ if env is None else env
        job = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
        if not job:
            return None
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
        if env.get("SLURM_NTASKS"):
            tasks = int(env["SLURM_NTASKS"])
        else:
            tasks = sum(expand_counts(env.get("SLURM_JOB_CPUS_PER_NODE", ""))) or 1
        return cls(str(job), nodelist, _hostnames(nodelist) if nodelist else (), tasks)

    def check(self, n: int) -> None:
        """Refuse a pool of ``n`` engines that the allocation cannot hold."""
        if n > self.tasks:
            raise InvalidValueError(
                f"allocation {self.job_id} holds {self.tasks} tasks on {self.describe_nodes()}; "
                f"{n} engines do not fit: ask for at most {self.tasks}, or allocate more "
                "(salloc -n / --ntasks-per-node)"
            )

    def describe_nodes(self) -> str:
        """``2 nodes (node[1-2])``."""
        count = len(self.nodes)
        return f"{count} node{'s' if count != 1 else ''} ({self.nodelist})"

    def describe(self) -> str:
        """``inside allocation 12 (2 nodes: node[1-2])``: what ``%wb status`` says."""
        count = len(self.nodes)
        return f"inside allocation {self.job_id} ({count} node{'s' if count != 1 else ''}: " \
               f"{self.nodelist})"  # fmt: skip


def step_command(launcher: str, mpiexec: str) -> tuple[list[str], list[str]]:
    """``(command, its options)`` that start the engines as a step of the allocation;
    ipyparallel adds ``-n N`` between them. ``launcher`` is ``srun`` (PMI-2) or ``mpiexec``
    (``mpiexec``: MPICH's hydra, which starts its proxies through ``srun`` itself)."""
    if launcher == "mpiexec":
        return [mpiexec], []
    # --exact: only the tasks asked for (pools share the allocation); -I: fail when they
    # are not free instead of waiting; --kill-on-bad-exit: one engine gone ends the step
    opts = ["--exact", f"-I{STEP_WAIT}", "--kill-on-bad-exit=1", "--mpi=pmi2"]
    return ["srun"], opts
