"""The ``workbench`` command: run notebooks headless, open JupyterLab, manage the kernelspec,
the notebook templates and pools.

One module per command group (``_run``, ``_submit`` (also ``jobs``), ``_lab``, ``_kernel``,
``_templates``, ``_pool``, ``_site``),
each with an ``add_parser(subparsers)`` that builds its parser and sets ``handler`` to a
``_cmd_<name>(args) -> int`` function; :data:`_PARSERS` lists them in ``--help`` order.
:mod:`workbench.cli.kernelspec` installs the kernelspec, :mod:`workbench.cli.notebook`
executes notebooks, :mod:`workbench.cli.options` holds the pool options that ``%wb start``
shares, ``_shared`` finds the folders shipped with the package.

Exit codes: 0 success, 1 the notebook failed, 2 bad input (message on stderr, no traceback),
3 stopped by SIGTERM/SIGUSR1 (saved; ``workbench run --resume`` goes on), 130 interrupted
(Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from workbench import __version__
from workbench.cli import _kernel, _lab, _pool, _run, _site, _submit, _templates
from workbench.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    SubParsers,
    UsageError,
    group_help,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "main",
]

_PARSERS: tuple[Callable[[SubParsers], None], ...] = (
    _run.add_parser,
    _submit.add_parser,
    _lab.add_parser,
    _kernel.add_parser,
    _templates.add_parser,
    _pool.add_parser,
    _site.add_parser,
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
    parser.set_defaults(handler=group_help(parser), pass_through=False)
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
