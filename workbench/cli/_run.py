"""``workbench run NOTEBOOK``: execute a notebook headless, with parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    SubParsers,
    UsageError,
)
from workbench.cli.options import positive_seconds

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``run`` command."""
    p = subparsers.add_parser(
        "run",
        help="execute a notebook headless, with parameters",
        description="Execute NOTEBOOK with nbclient. -p values are injected in a cell tagged "
        "'injected-parameters' after the cell tagged 'parameters' (Python literals, "
        "else strings; nothing is evaluated). The executed notebook is written after every "
        "cell, also when a cell fails (exit code 1) or the run is stopped by SIGTERM or "
        "SIGUSR1, e.g. before a Slurm job's time limit (exit code 3; --resume goes on).",
    )
    p.add_argument("notebook", type=Path, help="the .ipynb file to execute")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a parameter (repeatable), e.g. -p n=3 -p name=run1 -p 'lr=[0.1, 0.01]'",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="where to write the executed notebook (default: ./<stem>.out.ipynb)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        # the number is workbench._timeouts.CELL (not imported: --help stays fast)
        help="seconds each cell may run (default: 600)",
    )
    p.add_argument(
        "--no-cell-timeout",
        action="store_true",
        help="let cells run as long as they take (a batch job: its time limit bounds them)",
    )
    p.add_argument(
        "--total-timeout",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="seconds the whole notebook may run (default: no limit beyond --timeout per cell)",
    )
    p.add_argument(
        "--kernel",
        default="workbench",
        metavar="NAME",
        help="kernelspec to run with (default: workbench, installed first if missing)",
    )
    p.add_argument(
        "--cwd",
        type=Path,
        metavar="DIR",
        help="working directory of the kernel (default: the notebook's folder)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the run saved in -o OUTPUT from its first cell that did not finish "
        "(finished cells keep their outputs; those tagged 'rerun' run again first)",
    )
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from workbench.cli.notebook import (
        DEFAULT_CELL_TIMEOUT,
        NotebookExecutionError,
        execute_notebook,
        parse_parameters,
    )

    try:
        params = parse_parameters(args.param)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    notebook: Path = args.notebook
    if not notebook.is_file():
        raise UsageError(f"notebook {str(notebook)!r} not found; check the path")
    if args.no_cell_timeout and args.timeout is not None:
        raise UsageError("give either --timeout S or --no-cell-timeout, not both")
    output: Path = args.output or Path.cwd() / f"{notebook.stem}.out.ipynb"
    if output.resolve() == notebook.resolve():
        raise UsageError(f"-o {output} would overwrite the input notebook; choose another -o")
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: folder {output.parent} does not exist")
    if args.resume and output.is_file():
        from workbench.cli._saved import describe_plan, resume_plan
        from workbench.cli.notebook import read_notebook

        try:
            saved = read_notebook(output)
            print(describe_plan(saved, *resume_plan(saved, output)), flush=True)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        execute_notebook(
            notebook,
            params,
            output,
            timeout=None if args.no_cell_timeout else args.timeout or DEFAULT_CELL_TIMEOUT,
            total_timeout=args.total_timeout,
            kernel_name=args.kernel,
            cwd=args.cwd,
            resume=args.resume,
        )
    except NotebookExecutionError as exc:
        print(f"workbench run: {exc}", file=sys.stderr)
        if exc.stopped:
            return EXIT_STOPPED
        return EXIT_INTERRUPTED if exc.interrupted else EXIT_FAILED
    except NoSuchKernel:
        known = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise UsageError(
            f"no kernelspec named {args.kernel!r} (installed: {known}); "
            "see `jupyter kernelspec list`"
        ) from None
    except (OSError, ValueError, RuntimeError) as exc:  # unreadable input, stale kernelspec
        raise UsageError(str(exc)) from None
    print(f"executed {notebook} -> {output}")
    return EXIT_OK
