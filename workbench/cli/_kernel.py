"""``workbench kernel install``: the \"Workbench (MPI)\" kernelspec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli._common import EXIT_OK, SubParsers, UsageError, group_help

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``kernel`` command."""
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
    p.set_defaults(handler=group_help(p))


def _cmd_kernel_install(args: argparse.Namespace) -> int:
    from workbench.cli.kernelspec import install_kernelspec

    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        destination = install_kernelspec(name=args.name, user=args.user, prefix=prefix)
    except PermissionError as exc:
        raise UsageError(f"{exc}; try `workbench kernel install --user`") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"installed kernelspec {args.name!r} in {destination}")
    return EXIT_OK
