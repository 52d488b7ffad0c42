"""``workbench site show``: the site profile that applies here, and where it comes from."""

from __future__ import annotations

import argparse

from workbench.cli._common import EXIT_OK, SubParsers, UsageError, group_help

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``site`` command."""
    p = subparsers.add_parser("site", help="the site profile: Slurm and engine defaults")
    sub = p.add_subparsers(dest="site_command", metavar="COMMAND")
    show = sub.add_parser(
        "show",
        help="print the site profile that applies and where each setting comes from",
        description="Print the site profile ($WORKBENCH_SITE, else "
        "~/.config/workbench/site.toml): partition, account, time, launcher, setup lines, "
        "container, python, controller interface; what a pool start takes when no argument "
        "says otherwise. Also says whether this process runs inside a Slurm allocation.",
    )
    show.set_defaults(handler=_cmd_site_show)
    p.set_defaults(handler=group_help(p))


def _cmd_site_show(args: argparse.Namespace) -> int:
    from workbench.pool import Allocation, load_site

    try:
        site = load_site()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(site.describe())
    allocation = Allocation.current()
    if allocation is not None:
        print(f"this process runs {allocation.describe()}: `%wb start` / Pool.here() start "
              f"engines there ({allocation.tasks} tasks)")  # fmt: skip
    return EXIT_OK
