"""Engines on compute nodes through Slurm: the batch script and the job's state.

The engines are one MPI job inside one Slurm allocation, started either with ``mpiexec``
inside the job (MPICH's hydra launches through Slurm) or with ``srun --mpi=pmi2``; use
whichever works with the MPI in use. The controller stays on the notebook's machine.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass

from workbench._timeouts import QUERY
from workbench.errors import InvalidValueError, SetupError

__all__ = [
    "SlurmOptions",
    "batch_template",
    "format_duration",
    "job_state",
    "parse_duration",
    "require_slurm",
]

_TIME = re.compile(r"^(\d+|\d+:\d{2}(:\d{2})?|\d+-\d+(:\d{2}(:\d{2})?)?)$")
_NAME = re.compile(r"^[A-Za-z0-9_.,\-]+$")
LAUNCHERS = ("mpiexec", "srun")


@dataclass(frozen=True)
class SlurmOptions:
    """What to ask Slurm for; validated on creation."""

    partition: str | None = None
    time: str | None = None
    account: str | None = None
    nodes: int | None = None
    extra: str | None = None
    launcher: str = "mpiexec"

    def __post_init__(self) -> None:
        for field in ("partition", "account"):
            value = getattr(self, field)
            if value is not None and not _NAME.match(value):
                raise InvalidValueError(f"slurm {field} {value!r} is not a valid name")
        if self.time is not None and not _TIME.match(self.time):
            raise InvalidValueError(
                f"slurm time {self.time!r} is not a Slurm time: use minutes, MM:SS, HH:MM:SS "
                "or D-HH[:MM[:SS]] (e.g. 30 or 1:00:00)"
            )
        if self.nodes is not None and (not isinstance(self.nodes, int) or self.nodes < 1):
            raise InvalidValueError(f"slurm nodes must be a positive integer, got {self.nodes!r}")
        if self.launcher not in LAUNCHERS:
            raise InvalidValueError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")
        for opt in self.extra_options():
            if not opt.startswith("-"):
                raise InvalidValueError(
                    f"extra slurm option {opt!r} is not an option; pass sbatch options such as "
                    '"--mem=4G --qos=debug"'
                )

    def extra_options(self) -> list[str]:
        """The ``extra`` string split into sbatch options (no shell evaluation)."""
        if not self.extra:
            return []
        if "\n" in self.extra or "\r" in self.extra:
            raise InvalidValueError("extra slurm options must be on one line")
        return shlex.split(self.extra)


def batch_template(opts: SlurmOptions, mpiexec: str) -> str:
    """The sbatch script template (ipyparallel fills ``{n}``, ``{cluster_id}``, ...)."""
    lines = [
        "#!/bin/sh",
        "#SBATCH --export=ALL",
        "#SBATCH --job-name=workbench-{cluster_id}",
        "#SBATCH --ntasks={n}",
        "#SBATCH --output={output_file}",
    ]
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.time:
        lines.append(f"#SBATCH --time={opts.time}")
    if opts.account:
        lines.append(f"#SBATCH --account={opts.account}")
    if opts.nodes:
        lines.append(f"#SBATCH --nodes={opts.nodes}")
    lines += [f"#SBATCH {_brace(shlex.quote(o))}" for o in opts.extra_options()]
    if opts.launcher == "srun":
        lines.append("srun --mpi=pmi2 {program_and_args}")
    else:
        lines.append(f"{_brace(shlex.quote(mpiexec))} -n {{n}} {{program_and_args}}")
    return "\n".join(lines) + "\n"


def _brace(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def require_slurm() -> None:
    """Raise a clear error when Slurm's commands are not on PATH."""
    missing = [c for c in ("sbatch", "squeue", "scancel") if shutil.which(c) is None]
    if missing:
        raise SetupError(
            f"Slurm commands not found: {', '.join(missing)}. Run on a Slurm login node, or "
            "for a single-node test install slurm-wlm and munge and run tests/slurm/start-slurm.sh"
        )


def job_state(job_id: str, timeout: float = QUERY) -> tuple[str, str]:
    """``(state, reason_or_nodes)`` of a job; ``("GONE", "")`` once Slurm forgot it."""
    info = job_info(job_id, timeout)
    return (str(info["job_state"]), info["job_reason"] or "")


_COMPLETING = 3.0  # seconds to wait for the final state of a COMPLETING job

#: Job states after which a job's processes are gone (or going: COMPLETING).
ENDED = frozenset(
    ("GONE", "COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
     "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
)  # fmt: skip


def job_info(job_id: str, timeout: float = QUERY) -> dict[str, str | None]:
    """``job_state``, ``job_reason`` (why pending, or the nodes), ``time_left`` (as Slurm
    writes it, e.g. ``1:23:45``; None when unknown) and ``nodes`` of a job, for the panel.

    A job that ``squeue`` shows as COMPLETING or no longer shows is looked up with
    ``scontrol``, which keeps ended jobs for a while: its final state (CANCELLED, TIMEOUT...)
    says why it ended; ``GONE`` when Slurm forgot it."""
    out = _ask(["squeue", "-h", "-j", str(job_id), "-o", "%T|%R|%L|%N"], timeout)
    if out is None:
        return {"job_state": "UNKNOWN", "job_reason": "squeue did not answer", "time_left": None,
                "nodes": None}  # fmt: skip
    fields = out.splitlines()[0].split("|") if out else ["GONE"]
    state, reason, left, nodes = [*fields, "", "", ""][:4]
    if state in ("GONE", "COMPLETING"):
        state = _final_state(job_id, timeout) or state
    unknown = left in ("", "INVALID", "NOT_SET", "UNLIMITED") or state != "RUNNING"
    if reason.startswith("(") and reason.endswith(")"):  # squeue wraps a pending reason
        reason = reason[1:-1]
    return {"job_state": state, "job_reason": reason, "time_left": None if unknown else left,
            "nodes": nodes or None}  # fmt: skip


def _ask(argv: list[str], timeout: float) -> str | None:
    """A Slurm command's output (stripped); None when it did not answer in time."""
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return None
    return run.stdout.strip()


def _final_state(job_id: str, timeout: float) -> str | None:
    """The state ``scontrol`` has for an ending or ended job (``CANCELLED``), if any; a
    COMPLETING job is asked again for up to ``_COMPLETING`` seconds for its final state."""
    deadline = time.monotonic() + _COMPLETING
    while True:
        out = _ask(["scontrol", "-o", "show", "job", str(job_id)], timeout) or ""
        state = next((f[len("JobState=") :] for f in out.split() if f.startswith("JobState=")), "")
        if state != "COMPLETING" or time.monotonic() > deadline:
            return state or None
        time.sleep(0.2)


def parse_duration(text: str | None) -> float | None:
    """Seconds in a duration as ``squeue`` writes time left (``0:59``, ``4:59``,
    ``1:02:03``, ``2-03:04:05``); None for None or anything else."""
    if not text:
        return None
    days, dash, rest = text.rpartition("-")
    try:
        parts = [int(p) for p in rest.split(":")]
        n_days = int(days) if dash else 0
    except ValueError:
        return None
    if not 1 <= len(parts) <= 3 or min(parts) < 0:
        return None
    # after a day count the fields are hours[:minutes[:seconds]], else [[hours:]minutes:]seconds
    h, m, sec = [*parts, 0, 0][:3] if dash else [0, 0, *parts][-3:]
    return float(((n_days * 24 + h) * 60 + m) * 60 + sec)


def format_duration(seconds: float) -> str:
    """``4:59``, ``1:02:03`` (hours only when there are any), as Slurm writes time left."""
    whole = max(0, int(seconds))
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
