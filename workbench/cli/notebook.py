"""Headless notebook execution with papermill-style parameters, on top of nbclient.

Parameters are injected as a new code cell tagged ``injected-parameters`` right after the
cell tagged ``parameters`` (or at the top when there is none). Values are Python literals
(``ast.literal_eval``); anything that is not a literal is kept as a plain string. Nothing is
ever evaluated.

The output notebook is written after every cell, and when the run is stopped by ``SIGTERM``
or ``SIGUSR1`` (what Slurm sends before a job's time limit); ``resume=True`` goes on from the
first cell that did not finish (see :mod:`workbench.cli._saved`).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import keyword
import math
import signal
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode

from workbench import _timeouts
from workbench.cli._saved import (
    mark_finished,
    resume_plan,
    set_state,
    write_notebook,
)
from workbench.cli.kernelspec import KERNEL_NAME, ensure_kernelspec
from workbench.errors import InvalidTypeError, InvalidValueError, MissingFileError, WorkbenchError

__all__ = [
    "DEFAULT_CELL_TIMEOUT",
    "INJECTED_TAG",
    "PARAMETERS_TAG",
    "NotebookExecutionError",
    "execute_notebook",
    "inject_parameters",
    "parse_parameters",
    "read_notebook",
]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
DEFAULT_CELL_TIMEOUT = _timeouts.CELL


class NotebookExecutionError(WorkbenchError, RuntimeError):
    """A cell failed (error, timeout, dead kernel, Ctrl-C); the partial notebook was written."""

    def __init__(
        self,
        message: str,
        *,
        notebook: NotebookNode,
        cell_index: int | None,
        interrupted: bool = False,
        stopped: str | None = None,
    ) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.interrupted = interrupted
        #: The signal that stopped the run (``SIGTERM``, ``SIGUSR1``), None otherwise.
        self.stopped = stopped


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidValueError(
            f"parameter name {name!r} is not a valid Python identifier; "
            "use letters, digits and underscores, not starting with a digit (e.g. n_ranks=4)"
        )


def parse_parameters(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["n=3", "name=abc"]`` into ``{"n": 3, "name": "abc"}`` (literals, else strings)."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidValueError(
                f"parameter {item!r} is not of the form key=value (e.g. -p n=3)"
            )
        name = name.strip()
        _check_name(name)
        params[name] = _literal(value.strip())
    return params


def _source_line(name: str, value: Any) -> str:
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InvalidTypeError(
            f"parameter {name!r} has value {text} of type {type(value).__name__}, which is not "
            "a Python literal; pass numbers, strings, booleans, None, or lists/dicts of them"
        ) from None
    return f"{name} = {text}"


def _has_tag(cell: NotebookNode, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def inject_parameters(nb: NotebookNode, params: Mapping[str, Any]) -> NotebookNode:
    """Return a copy of ``nb`` with ``params`` assigned in an ``injected-parameters`` cell.

    The cell goes right after the first cell tagged ``parameters`` (at the top if none);
    a previously injected cell is replaced, so re-running an output notebook works.
    """
    lines = []
    for name, value in params.items():
        _check_name(name)
        lines.append(_source_line(name, value))
    nb = copy.deepcopy(nb)
    nb.cells = [cell for cell in nb.cells if not _has_tag(cell, INJECTED_TAG)]
    if not lines:
        return nb
    cell = nbformat.v4.new_code_cell(
        "# Parameters\n" + "\n".join(lines), metadata={"tags": [INJECTED_TAG]}
    )
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        del cell["id"]  # cell ids arrived in nbformat 4.5
    position = next(
        (i + 1 for i, c in enumerate(nb.cells) if _has_tag(c, PARAMETERS_TAG)),
        0,
    )
    nb.cells.insert(position, cell)
    return nb


def read_notebook(path: str | Path) -> NotebookNode:
    """Read a notebook (nbformat 4); FileNotFoundError / ValueError say what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"notebook {str(path)!r} does not exist (or is not a file)")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad files
        raise InvalidValueError(f"{path} is not a readable Jupyter notebook: {exc}") from None


def _describe(nb: NotebookNode, index: int | None) -> str:
    if index is None:
        return "kernel start-up, before the first cell"
    cell = nb.cells[index]
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    first = first if len(first) <= 60 else first[:57] + "..."
    details = [f"id {cell.id}"] if cell.get("id") else []
    details += [f"first line {first!r}"] if first else []
    return f"cell {index + 1} of {len(nb.cells)}" + (f" ({'; '.join(details)})" if details else "")


class _TotalTimeout(Exception):
    pass


class _Interrupted(Exception):
    pass


class _Stopped(Exception):
    """SIGTERM or SIGUSR1: save what ran and stop (a batch job's end is near)."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


#: Signals that stop a run and save it: Slurm's warning before the time limit (sbatch
#: ``--signal=B:USR1@120``, as ``workbench submit`` asks) and its SIGTERM at the limit.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


async def _run(client: NotebookClient, total_timeout: float | None, **start_kernel: Any) -> None:
    """Execute all cells, bounded by ``total_timeout``; Ctrl-C interrupts the kernel.

    The first Ctrl-C interrupts the running cell (it raises KeyboardInterrupt, which reaches
    ``%%distributed`` engines like any interrupt); a second one stops the run. Cancelling the
    run shuts the kernel down.
    """
    task = asyncio.ensure_future(client.async_execute(**start_kernel))
    presses = 0
    pending: set[asyncio.Future[Any]] = set()
    stopped: list[str] = []

    def on_stop(signum: int) -> None:
        stopped.append(signal.Signals(signum).name)
        task.cancel()  # the kernel shuts down (its pool stops with it); the caller saves

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1 and client.km is not None:
            interrupt = asyncio.ensure_future(ensure_async(client.km.interrupt_kernel()))
            pending.add(interrupt)
            interrupt.add_done_callback(pending.discard)
        else:
            task.cancel()

    def take_over_signals(**_: Any) -> None:  # runs after nbclient installed its own handler
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, other thread
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, on_stop, sig)

    client.on_notebook_start = take_over_signals
    done, _ = await asyncio.wait({task}, timeout=total_timeout)
    if not done:
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):  # the timeout is the news
            await task
        raise _TotalTimeout
    if stopped:  # (shutting the kernel down mid-cell may end the task with another error)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            task.result()
        raise _Stopped(stopped[0])
    if task.cancelled():
        raise _Interrupted
    task.result()


def _tail(log: IO[bytes], lines: int = 15) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").rstrip()
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])


def _prepare(
    path: Path, params: Mapping[str, Any] | None, output: Path | None, resume: bool
) -> tuple[NotebookNode, list[int]]:
    """The notebook to run and the indices of the cells to execute (all code cells, or on
    ``resume`` those that :func:`resume_plan` picks from the run saved in ``output``)."""
    if not resume:
        nb = inject_parameters(read_notebook(path), params or {})
        return nb, [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if output is None or not output.is_file():
        raise MissingFileError(
            f"--resume continues the run saved in -o OUTPUT, and {output} does not exist; "
            "run without --resume first"
        )
    nb = read_notebook(output)
    if params:
        nb = inject_parameters(nb, params)  # a new parameters cell: it runs
    run, _ = resume_plan(nb, output)
    return nb, run


def execute_notebook(
    path: str | Path,
    params: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    *,
    timeout: float | None = DEFAULT_CELL_TIMEOUT,
    total_timeout: float | None = None,
    kernel_name: str = KERNEL_NAME,
    cwd: str | Path | None = None,
    startup_timeout: float = _timeouts.KERNEL_START,
    resume: bool = False,
) -> NotebookNode:
    """Execute the notebook at ``path`` and return it; write it to ``output`` if given.

    ``timeout`` bounds each cell (whole seconds, rounded up), ``total_timeout`` the whole run
    (seconds; None = no limit).
    The kernel runs in ``cwd`` (default: the notebook's folder). The output file is written
    after every cell and also when a cell fails or the run is stopped (``SIGTERM``,
    ``SIGUSR1``); the failure is then raised as :class:`NotebookExecutionError`. With
    ``resume``, the run saved in ``output`` goes on from its first cell that did not finish
    (finished cells tagged ``rerun`` run again first; see :mod:`workbench.cli._saved`).
    The ``workbench`` kernelspec is installed first if missing; another missing
    ``kernel_name`` raises :class:`jupyter_client.kernelspec.NoSuchKernel`.
    """
    path = Path(path)
    output = None if output is None else Path(output)
    nb, run = _prepare(path, params, output, resume)
    workdir = Path(cwd) if cwd is not None else path.resolve().parent
    if not workdir.is_dir():
        raise MissingFileError(f"working directory {str(workdir)!r} does not exist")
    if kernel_name == KERNEL_NAME:
        ensure_kernelspec(kernel_name)
    else:  # raise NoSuchKernel now, before an output file is written
        KernelSpecManager().get_kernel_spec(kernel_name)
    set_state(nb, "running", source=str(path))
    if not run:
        set_state(nb, "completed")
    if output is not None:
        write_notebook(nb, output)
    if not run:
        return nb
    part = copy.copy(nb)  # the cells to execute, the same objects: outputs land in nb
    part.cells = [nb.cells[i] for i in run]

    cell_timeout = None if timeout is None else math.ceil(timeout)  # nbclient wants an int
    current: list[int | None] = [None]

    def on_cell_start(cell: NotebookNode, cell_index: int) -> None:
        current[0] = run[cell_index]

    def on_cell_executed(cell: NotebookNode, cell_index: int, execute_reply: Any) -> None:
        if (execute_reply or {}).get("content", {}).get("status") == "ok":
            mark_finished(cell)
        if output is not None:
            write_notebook(nb, output)

    client = NotebookClient(
        part,
        timeout=cell_timeout,
        startup_timeout=math.ceil(startup_timeout),
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(workdir)}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    failure: str | None = None
    interrupted = False
    stopped: str | None = None
    # The kernel's own stdout/stderr (start-up warnings, crashes below Python) go to a
    # scratch file, quoted only when the kernel died.
    with tempfile.TemporaryFile() as kernel_log:
        try:
            run_sync(_run)(
                client, total_timeout, cwd=str(workdir), stdout=kernel_log, stderr=kernel_log
            )
        except CellTimeoutError:
            failure = f"the cell did not finish within the per-cell timeout of {cell_timeout} s"
        except CellExecutionError as exc:
            interrupted = exc.ename == "KeyboardInterrupt"
            failure = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
            if interrupted:
                failure = "interrupted (Ctrl-C): the cell raised KeyboardInterrupt"
        except _Interrupted:
            failure, interrupted = "interrupted (Ctrl-C twice); the kernel was shut down", True
        except _Stopped as exc:
            stopped = exc.signame
            failure = f"stopped by {stopped} (a batch job's time limit is near?); the kernel " \
                      "was shut down and every finished cell saved"  # fmt: skip
        except _TotalTimeout:
            failure = f"the notebook did not finish within the total timeout of {total_timeout:g} s"
        except RuntimeError as exc:  # DeadKernelError, or the kernel failed to start
            failure = f"the kernel died or failed to start: {exc}"
            if log := _tail(kernel_log):
                failure += f"\n  last lines the kernel wrote:\n{log}"
        finally:
            state = "completed" if failure is None else "stopped" if stopped else "failed"
            cell = None if current[0] is None or state == "completed" else current[0] + 1
            set_state(nb, state, cell=cell, reason=failure)
            if output is not None:
                write_notebook(nb, output)
    if failure is not None:
        lines = [f"{path.name} failed in {_describe(nb, current[0])}:", f"  {failure}"]
        if stopped:
            lines[0] = f"{path.name} was stopped in {_describe(nb, current[0])}:"
        if output is not None:
            lines.append(f"The executed notebook (outputs and full traceback) is in {output}")
        if stopped and output is not None:
            lines.append(f"Go on with: workbench run {path} -o {output} --resume")
        raise NotebookExecutionError(
            "\n".join(lines), notebook=nb, cell_index=current[0], interrupted=interrupted,
            stopped=stopped,
        )  # fmt: skip
    return nb
