"""``workbench lab``: JupyterLab with the workbench kernel installed."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from workbench.cli._common import EXIT_OK, SubParsers, UsageError

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``lab`` command."""
    p = subparsers.add_parser(
        "lab",
        help="open JupyterLab in this folder with the workbench kernel",
        description="Start JupyterLab with the workbench kernel installed, on the current "
        "folder (your notebooks and sweep stores land there; `workbench templates copy NAME` "
        "brings a template). Arguments this command does not know are passed on to "
        "JupyterLab (e.g. --allow-root, --ServerApp.token=...).",
    )
    p.add_argument("--dir", type=Path, help="folder to open (default: the current folder)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: JupyterLab's, 8888 or next free)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(handler=_cmd_lab, pass_through=True)


def _cmd_lab(args: argparse.Namespace) -> int:
    from workbench.cli.kernelspec import ensure_kernelspec

    root: Path = args.dir or Path.cwd()
    if not root.is_dir():
        raise UsageError(f"--dir {root} is not a folder")
    if _is_root() and "--allow-root" not in args.extra_args:
        raise UsageError(
            "JupyterLab does not run as root unless told to: run `workbench lab --allow-root` "
            "(options workbench lab does not know, such as --allow-root or "
            "--ServerApp.token=..., are passed on to JupyterLab)"
        )
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

    print(
        f"workbench lab: JupyterLab on {root.resolve()} with the 'Workbench (MPI)' kernel; "
        "`workbench templates list` shows the notebook templates",
        flush=True,
    )
    LabApp.launch_instance(argv=argv)
    return EXIT_OK


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
