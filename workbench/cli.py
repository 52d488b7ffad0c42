"""The ``workbench`` command: run notebooks headless, open JupyterLab, manage the kernelspec
and pools (``workbench pool ...``, in :mod:`workbench.cli_pool`).

Every subcommand (or group) is one ``_add_<name>_parser(subparsers)`` function that builds its
parser and sets ``handler`` to a ``_cmd_<name>(args) -> int`` function; :data:`_PARSERS` lists
them in ``--help`` order.

Exit codes: 0 success, 1 the notebook failed, 2 bad input (message on stderr, no traceback),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from workbench import __version__
from workbench._args import positive_seconds
from workbench.errors import WorkbenchError

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(WorkbenchError):
    """Bad input from the user: reported on stderr as one message, exit code 2."""


# -- run --------------------------------------------------------------------------------------


def _add_run_parser(subparsers: _SubParsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="execute a notebook headless, with parameters",
        description="Execute NOTEBOOK with nbclient. -p values are injected in a cell tagged "
        "'injected-parameters' after the cell tagged 'parameters' (Python literals, "
        "else strings; nothing is evaluated). The executed notebook is always written, "
        "also when a cell fails (exit code 1).",
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
        # the number is workbench.notebook.DEFAULT_CELL_TIMEOUT (not imported: --help stays fast)
        help="seconds each cell may run (default: 600)",
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
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from workbench.notebook import (
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
    output: Path = args.output or Path.cwd() / f"{notebook.stem}.out.ipynb"
    if output.resolve() == notebook.resolve():
        raise UsageError(f"-o {output} would overwrite the input notebook; choose another -o")
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: folder {output.parent} does not exist")
    try:
        execute_notebook(
            notebook,
            params,
            output,
            timeout=DEFAULT_CELL_TIMEOUT if args.timeout is None else args.timeout,
            total_timeout=args.total_timeout,
            kernel_name=args.kernel,
            cwd=args.cwd,
        )
    except NotebookExecutionError as exc:
        print(f"workbench run: {exc}", file=sys.stderr)
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


# -- lab --------------------------------------------------------------------------------------


def _add_lab_parser(subparsers: _SubParsers) -> None:
    p = subparsers.add_parser(
        "lab",
        help="open JupyterLab on the notebook templates",
        description="Start JupyterLab with the workbench kernel installed. Arguments this "
        "command does not know are passed on to JupyterLab (e.g. --ServerApp.token=...).",
    )
    p.add_argument("--dir", type=Path, help="folder to open (default: the notebook templates)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: JupyterLab's, 8888 or next free)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(handler=_cmd_lab, pass_through=True)


def _cmd_lab(args: argparse.Namespace) -> int:
    from workbench._shared import shared_dir
    from workbench.kernelspec import ensure_kernelspec

    root: Path = args.dir or shared_dir("notebooks")
    if not root.is_dir():
        raise UsageError(f"--dir {root} is not a folder")
    try:
        ensure_kernelspec()
    except (RuntimeError, PermissionError) as exc:
        raise UsageError(str(exc)) from None
    argv = [f"--ServerApp.root_dir={root.resolve()}", f"--ServerApp.ip={args.ip}"]
    if args.port is not None:
        argv.append(f"--ServerApp.port={args.port}")
    if args.no_browser:
        argv.append("--ServerApp.open_browser=False")
    argv += args.extra_args

    from jupyterlab.labapp import LabApp

    LabApp.launch_instance(argv=argv)
    return EXIT_OK


# -- kernel -----------------------------------------------------------------------------------


def _add_kernel_parser(subparsers: _SubParsers) -> None:
    p = subparsers.add_parser("kernel", help="manage the workbench kernelspec")
    sub = p.add_subparsers(dest="kernel_command", metavar="COMMAND")
    install = sub.add_parser(
        "install",
        help="install the 'Workbench (MPI)' kernelspec",
        description="Install kernels/workbench as a Jupyter kernelspec that starts this "
        "Python with the workbench extension loaded. Default location: the active "
        "environment (--sys-prefix) inside a venv/conda env, else --user.",
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument(
        "--sys-prefix", action="store_true", help=f"install into this environment ({sys.prefix})"
    )
    where.add_argument("--prefix", type=Path, metavar="P", help="install into P/share/jupyter")
    install.add_argument("--name", default="workbench", help="kernelspec name (default: workbench)")
    install.set_defaults(handler=_cmd_kernel_install)
    p.set_defaults(handler=_group_help(p))


def _cmd_kernel_install(args: argparse.Namespace) -> int:
    from workbench.kernelspec import install_kernelspec

    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        destination = install_kernelspec(name=args.name, user=args.user, prefix=prefix)
    except PermissionError as exc:
        raise UsageError(f"{exc}; try `workbench kernel install --user`") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"installed kernelspec {args.name!r} in {destination}")
    return EXIT_OK


# -- templates --------------------------------------------------------------------------------


def _add_templates_parser(subparsers: _SubParsers) -> None:
    p = subparsers.add_parser("templates", help="list or copy the shipped notebook templates")
    sub = p.add_subparsers(dest="templates_command", metavar="COMMAND")
    sub.add_parser("list", help="list templates with their titles").set_defaults(
        handler=_cmd_templates_list
    )
    copy = sub.add_parser(
        "copy",
        help="copy a template (outputs cleared) to DEST",
        description="Copy template NAME to DEST (a file or folder; default: ./NAME.ipynb). "
        "Refuses to overwrite an existing file without --force.",
    )
    copy.add_argument("name", help="template name, as shown by `workbench templates list`")
    copy.add_argument("dest", nargs="?", type=Path, help="target file or folder (default: .)")
    copy.add_argument("--force", action="store_true", help="overwrite an existing file")
    copy.set_defaults(handler=_cmd_templates_copy)
    p.set_defaults(handler=_group_help(p))


def _templates() -> dict[str, Path]:
    from workbench._shared import shared_dir

    return {path.stem: path for path in sorted(shared_dir("notebooks").glob("*.ipynb"))}


def _title(path: Path) -> str:
    """First non-empty line of the first markdown cell, without leading '#'s."""
    from workbench.notebook import read_notebook

    try:
        nb = read_notebook(path)
    except ValueError:
        return "(unreadable notebook)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.strip():
                    return line.strip().lstrip("#").strip()
    return ""


def _cmd_templates_list(args: argparse.Namespace) -> int:
    from workbench._shared import shared_dir

    templates = _templates()
    if not templates:
        print(f"no notebook templates in {shared_dir('notebooks')}", file=sys.stderr)
        return EXIT_OK
    width = max(len(name) for name in templates)
    for name, path in templates.items():
        print(f"{name:<{width}}  {_title(path)}".rstrip())
    return EXIT_OK


def _cmd_templates_copy(args: argparse.Namespace) -> int:
    from workbench.notebook import read_notebook

    templates = _templates()
    name = args.name.removesuffix(".ipynb")
    if name not in templates:
        known = ", ".join(templates) or "none"
        raise UsageError(f"no template named {args.name!r} (available: {known})")
    dest: Path = args.dest or Path.cwd()
    if dest.is_dir():
        dest = dest / f"{name}.ipynb"
    if dest.exists() and not args.force:
        raise UsageError(f"{dest} already exists; pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise UsageError(f"cannot write {dest}: folder {dest.parent} does not exist")

    import nbformat

    nb = read_notebook(templates[name])
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, str(dest))
    print(f"copied template {name!r} to {dest}")
    return EXIT_OK


# -- assembly ---------------------------------------------------------------------------------


def _group_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Handler for a command group called without its subcommand: show its help, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return handler


def _add_pool_parser(subparsers: _SubParsers) -> None:
    from workbench.cli_pool import add_pool_parser

    add_pool_parser(subparsers, _group_help)


_PARSERS: tuple[Callable[[_SubParsers], None], ...] = (
    _add_run_parser,
    _add_lab_parser,
    _add_kernel_parser,
    _add_templates_parser,
    _add_pool_parser,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``workbench`` argument parser (one sub-parser per entry of ``_PARSERS``)."""
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Jupyter workbench whose heavy cells run on a pool of MPI engines.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _PARSERS:
        add(subparsers)
    parser.set_defaults(handler=_group_help(parser), pass_through=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` command; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args.pass_through:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = [a for a in extra if a != "--"]
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
