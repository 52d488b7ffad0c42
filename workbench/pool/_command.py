"""How each engine process is started: setup lines run before it, a container (or any
wrapper command) it runs under, and its Python interpreter.

``setup`` lines run in ``bash`` on each node right before the engine (``module load ...``,
``conda activate ...``: dask-jobqueue's ``job_script_prologue``); ``container`` is a command
prefix the engine runs under (``apptainer exec img.sif``, ``podman-hpc run --rm IMG``,
``shifter --image=IMG``); ``python`` is the engines' interpreter (default: the notebook's).
A setup line that fails stops that engine with a line naming the node (:data:`SETUP_FAILED`),
which the pool turns into one clear error.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidValueError

__all__ = ["SETUP_FAILED", "EngineCommand", "LaunchSpec"]

#: The start of the line an engine's setup prints when one of its lines failed.
SETUP_FAILED = "workbench: setup failed on"

# $1.. are the engine's command; setup lines run with -e, the EXIT trap names the node
_WRAPPER = """set -e
trap 'code=$?; echo "{marker} $(hostname) (exit $code): see the lines above" >&2' EXIT
{lines}
trap - EXIT
exec "$@"
"""


@dataclass(frozen=True)
class EngineCommand:
    """``setup`` lines, ``container`` prefix and ``python`` of the engines (all optional)."""

    setup: tuple[str, ...] = ()
    container: str | None = None
    python: str | None = None

    def __post_init__(self) -> None:
        setup = (self.setup,) if isinstance(self.setup, str) else tuple(self.setup)
        if not all(isinstance(line, str) for line in setup):
            raise InvalidValueError(f"setup must be shell lines (strings), got {self.setup!r}")
        object.__setattr__(self, "setup", tuple(s for s in setup if s.strip()))
        if self.container is not None and not shlex.split(self.container):
            raise InvalidValueError("container must be a command, e.g. 'apptainer exec img.sif'")

    @property
    def interpreter(self) -> str:
        """The engines' Python (``python``, else the notebook's)."""
        return self.python or sys.executable

    def argv(self) -> list[str]:
        """The command that starts one engine (ipyparallel appends the engine's options)."""
        engine = [self.interpreter, "-m", "ipyparallel.engine"]
        prefix = shlex.split(self.container) if self.container else []
        if not self.setup:
            return [*prefix, *engine]
        script = _WRAPPER.format(marker=SETUP_FAILED, lines="\n".join(self.setup))
        return ["bash", "-c", script, "workbench-engine", *prefix, *engine]

    def check_here(self) -> None:
        """Refuse, at once, what cannot work: a container command or an interpreter that
        this machine does not have (the nodes are assumed to have what the login node has)."""
        if self.container:
            program = shlex.split(self.container)[0]
            if shutil.which(program) is None:
                raise InvalidValueError(
                    f"container command {program!r} (of {self.container!r}) is not found on "
                    "PATH: install it or load its module first, or fix container="
                )
        if self.setup and shutil.which("bash") is None:
            raise InvalidValueError("setup lines run in bash, which is not on PATH")
        python = self.interpreter
        if os.sep in python and not self.container and not os.access(python, os.X_OK):
            raise InvalidValueError(f"python={python!r} is not an executable file")

    def describe(self) -> str:
        """One line for the start message (empty when nothing is set)."""
        parts = [f"setup: {'; '.join(self.setup)}"] if self.setup else []
        parts += [f"under {self.container}"] if self.container else []
        parts += [f"python {self.python}"] if self.python else []
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """For the pool's launch file (restart and attach keep the command)."""
        return {**dataclasses.asdict(self), "setup": list(self.setup)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineCommand:
        """The command :meth:`to_dict` saved."""
        return cls(tuple(data.get("setup") or ()), data.get("container"), data.get("python"))


@dataclass(frozen=True)
class LaunchSpec:
    """How a pool's engines start, kept in a file beside the cluster file so that a restart
    (from this process, an attached notebook or the panel) starts them the same way.

    ``kind``: ``"local"`` (``mpiexec`` on this machine), ``"slurm"`` (a new job) or
    ``"allocation"`` (a step of the allocation ``allocation`` holds, on ``nodes``);
    ``launcher``: ``mpiexec`` or ``srun``; ``command``: the engines' setup, container and
    python; ``controller``: the address the controller listens on, and ``controller_why``.
    """

    kind: str = "local"
    command: EngineCommand = EngineCommand()
    launcher: str = "mpiexec"
    allocation: str | None = None
    nodes: tuple[str, ...] = ()
    controller: str | None = None
    controller_why: str = ""

    def replace(self, **changes: Any) -> LaunchSpec:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the launch file holds."""
        return {**dataclasses.asdict(self), "command": self.command.to_dict(),
                "nodes": list(self.nodes)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchSpec:
        """The spec :meth:`to_dict` wrote (unknown keys of a newer workbench are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["command"] = EngineCommand.from_dict(data.get("command") or {})
        values["nodes"] = tuple(data.get("nodes") or ())
        return cls(**values)
