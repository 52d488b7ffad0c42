"""A notebook run as it goes: written after every cell (papermill's behaviour), with each
finished cell marked, so a run cut short (a failure, Ctrl-C, a Slurm job's time limit) keeps
its work and ``workbench run --resume`` knows where to go on.

The run's state is in the notebook's metadata, ``metadata.workbench``: ``state`` (running,
completed, failed, stopped), ``source`` (the notebook run), ``cell`` (where it ended) and
``reason``; a cell that finished has ``metadata.workbench.finished``. On resume, finished
cells keep their outputs and are skipped, except those tagged ``rerun`` (and the parameter
cells): the cells that rebuild a fresh kernel's state (imports, ``%wb start``, loading data
or a checkpoint). Execution then goes on from the first cell that did not finish.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from workbench.errors import InvalidValueError

__all__ = [
    "RERUN_TAG",
    "describe_plan",
    "finished",
    "mark_finished",
    "resume_plan",
    "run_state",
    "set_state",
    "write_notebook",
]

RERUN_TAG = "rerun"
_KEY = "workbench"
_ALWAYS = ("parameters", "injected-parameters", RERUN_TAG)


def write_notebook(nb: NotebookNode, path: str | Path) -> None:
    """Write ``nb`` to ``path`` atomically: a reader (or a kill mid-write) never sees half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mark_finished(cell: NotebookNode) -> None:
    """Note that ``cell`` ran to its end (successfully)."""
    cell.setdefault("metadata", {}).setdefault(_KEY, {})["finished"] = True


def finished(cell: NotebookNode) -> bool:
    """True when ``cell`` ran to its end in a run of ``workbench run``."""
    return bool(cell.get("metadata", {}).get(_KEY, {}).get("finished"))


def set_state(nb: NotebookNode, state: str, **details: Any) -> None:
    """Record the run's ``state`` and ``details`` (source, cell, reason) in ``nb``."""
    info = nb.metadata.setdefault(_KEY, {})
    info["state"] = state
    for key in ("cell", "reason"):  # of the state before: gone unless given again
        info.pop(key, None)
    info.update({k: v for k, v in details.items() if v is not None})


def run_state(nb: NotebookNode) -> dict[str, Any]:
    """The run's record in ``nb`` (empty when ``workbench run`` did not write it)."""
    return dict(nb.metadata.get(_KEY, {}))


def _tagged(cell: NotebookNode) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return any(t in tags for t in _ALWAYS)


def resume_plan(nb: NotebookNode, path: str | Path) -> tuple[list[int], list[int]]:
    """``(cells to run, cells skipped)`` to resume the run saved in ``nb`` (read from
    ``path``): the finished cells tagged ``rerun`` or as parameters, then every code cell
    from the first that did not finish. :class:`InvalidValueError` when ``nb`` is not a
    saved run."""
    if not run_state(nb):
        raise InvalidValueError(
            f"{path} was not written by `workbench run` (no run record in its metadata): "
            "nothing to resume; run the notebook without --resume"
        )
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first = next((i for i in code if not finished(nb.cells[i])), None)
    if first is None:
        return [], code
    before = [i for i in code if i < first]
    rerun = [i for i in before if _tagged(nb.cells[i])]
    skipped = [i for i in before if i not in rerun]
    return rerun + [i for i in code if i >= first], skipped


def describe_plan(nb: NotebookNode, run: list[int], skipped: list[int]) -> str:
    """``resuming: cells 2, 3 kept (finished), cell 1 run again (tagged rerun), from cell 4``."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not run:
        return "nothing to resume: every cell finished"
    first = next((i for i in run if not finished(nb.cells[i])), run[-1])
    again = [i for i in run if i < first]

    def cells(indices: list[int]) -> str:
        return ", ".join(str(i + 1) for i in indices)

    parts = [f"cells {cells(skipped)} kept (finished)"] if skipped else []
    parts += [f"cells {cells(again)} run again (tagged {RERUN_TAG})"] if again else []
    return f"resuming: {'; '.join([*parts, f'on from cell {first + 1} of {len(code)}'])}"
