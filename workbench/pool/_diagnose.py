"""Why engines did not start, in one sentence, from what their launcher printed: a setup line
that failed, a container or interpreter that is not there, a controller the nodes cannot
reach, an allocation with no free tasks. None when the output says nothing known."""

from __future__ import annotations

import re

from workbench.pool._address import try_instead
from workbench.pool._command import SETUP_FAILED, LaunchSpec

__all__ = ["diagnose"]

_NOT_FOUND = re.compile(
    r"(?:exec: |bash: |srun: error: |execvp error on file |: )(?P<prog>[^\s:]+)"
    r"(?:: command not found|: not found|: No such file or directory| \(No such file)"
)
_SETUP_SHELL = "workbench-engine: line "  # how bash names the setup script's lines
_BUSY = re.compile(r"Unable to create step for job (\d+): (Requested nodes are busy|.*)")


def _before(lines: list[str], index: int) -> str:
    """The last meaningful line before ``lines[index]`` (what the failing command said)."""
    for line in reversed(lines[:index]):
        text = line.strip()
        if text and not text.startswith(("+", "srun:", "[mpiexec")):
            return text
    return ""


def diagnose(output: str, spec: LaunchSpec) -> str | None:
    """One sentence saying why the engines of ``spec`` failed, from their ``output``."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if SETUP_FAILED in line:
            said = _before(lines, i)
            where = line.split(SETUP_FAILED, 1)[1].split(":", 1)[0].strip()
            return (
                f"a setup line failed on {where}" + (f": {said}" if said else "")
                + f" (setup: {'; '.join(spec.command.setup)}); fix the line or load what it "
                "needs, no engine was left running"
            )  # fmt: skip
    busy = next((m for line in lines if (m := _BUSY.search(line))), None)
    if busy:
        return (
            f"allocation {busy.group(1)} has no free tasks for this pool ({busy.group(2)}): "
            "other pools (or steps) use them; stop one (`%wb stop`), ask for fewer engines, "
            "or allocate more"
        )
    # (a setup line's own "not found" is the setup's failure: its marker line follows)
    missing = next((m.group("prog") for line in lines if not line.startswith(_SETUP_SHELL)
                    and (m := _NOT_FOUND.search(line))), None)  # fmt: skip
    if missing:
        what = ("the container command" if spec.command.container
                and missing in spec.command.container else "the program")  # fmt: skip
        return (
            f"{what} {missing!r} was not found on the compute nodes; install or load it there "
            "(setup=...), or fix container=/python="
        )
    if any("Registration timed out" in line for line in lines):
        nodes = ", ".join(spec.nodes) or "the compute nodes"
        return (
            f"the engines on {nodes} could not reach the controller at {spec.controller} "
            f"(chosen from {spec.controller_why}): pass an address of this machine the nodes "
            f"reach: {try_instead(spec.controller or '')}"
        )
    return None
