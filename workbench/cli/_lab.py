"""``workbench lab``: JupyterLab with the workbench kernel installed."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli._common import EXIT_OK, SubParsers, UsageError

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``lab`` command."""
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
    from workbench.cli._shared import shared_dir
    from workbench.cli.kernelspec import ensure_kernelspec

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
