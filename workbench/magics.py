"""IPython magics: ``%wb`` (pool control) and ``%%distributed`` (a cell on every rank).

A thin front end: arguments are parsed here, the work is done by :mod:`workbench.pool`.
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import (
    MagicArgumentParser,
    argument,
    magic_arguments,
    parse_argstring,
)

from workbench import pool as _pool
from workbench._util import engines
from workbench.cli.options import add_start_arguments, parse_ranks, positive_seconds, start_pool

__all__ = ["WorkbenchMagics", "register"]

_ACTIONS = ("start", "attach", "status", "restart", "stop", "joblib")


def _wb_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%wb", description="Control the pool of MPI engines.")
    parser.add_argument("action", choices=_ACTIONS, help="what to do with the pool")
    parser.add_argument(
        "cluster_file",
        nargs="?",
        help="attach: the cluster file (default: newest); joblib: on or off",
    )
    add_start_arguments(parser)
    return parser


_WB = _wb_parser()


@magics_class
class WorkbenchMagics(Magics):
    """``%wb`` and ``%%distributed``."""

    @line_magic
    def wb(self, line: str) -> None:
        """Pool: ``%wb start [-n N] [--slurm] | attach [FILE] | status | restart | stop``;
        ``%wb joblib on|off`` runs joblib's ``n_jobs`` (scikit-learn's) on the engines."""
        args = _WB.parse_argstring(line)
        if args.cluster_file and args.action not in ("attach", "joblib"):
            raise UsageError(f"%wb {args.action} takes no file argument (only `%wb attach FILE`)")
        starting = [a for a in ("n", "detach", "slurm") if getattr(args, a)]
        if starting and args.action != "start":
            raise UsageError(f"start options go with `%wb start`, not `%wb {args.action}`")
        getattr(self, f"_{args.action}")(args)

    def _start(self, args: argparse.Namespace) -> None:
        old = _pool.current()
        if old is not None and old.lost is not None:  # stopped elsewhere: clean up, go on
            old.stop()
            old = None
        if old is not None:
            raise UsageError(
                f"a pool is already running ({old.size} ranks); `%wb stop` it first, "
                "or `%wb restart` to restart its engines"
            )
        try:
            pool = start_pool(args)
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(f"workbench: started {engines(pool.size)} (cluster file {pool.cluster_file})")

    def _joblib(self, args: argparse.Namespace) -> None:
        from workbench import joblib_backend

        if args.cluster_file == "on":
            backend = joblib_backend.enable(_pool.require())
            print(
                f"workbench: joblib runs on the {engines(backend.pool.size)} (n_jobs=-1 or None:"
                " all of them) until `%wb joblib off`"
            )
        elif args.cluster_file == "off":
            was = joblib_backend.disable()
            print("workbench: joblib runs in the notebook again" if was
                  else "workbench: joblib was not running on the engines")  # fmt: skip
        else:
            raise UsageError(f"use `%wb joblib on` or `%wb joblib off`, not {args.cluster_file!r}")

    def _attach(self, args: argparse.Namespace) -> None:
        pool = _pool.Pool.attach(args.cluster_file, profile=args.profile)
        print(f"workbench: attached to {engines(pool.size)} ({pool.cluster_file})")

    def _status(self, args: argparse.Namespace) -> None:
        from IPython.display import display

        display(_pool.require().status())

    def _restart(self, args: argparse.Namespace) -> None:
        pool = _pool.require()
        pool.restart()
        print(f"workbench: restarted {engines(pool.size)}")

    def _stop(self, args: argparse.Namespace) -> None:
        pool = _pool.current()  # also a pool found gone: stopping it cleans up what is left
        if pool is None:
            _pool.require()  # raises NoPoolError with the usual advice
            return
        pool.stop()
        _pool.set_current(None)
        print("workbench: pool stopped")

    @cell_magic
    @magic_arguments()
    @argument("--targets", type=parse_ranks, default=None, help="ranks to run on, e.g. 0,1 or 0-3")
    @argument(
        "--timeout", type=positive_seconds, default=None, help="interrupt and fail after S seconds"
    )
    @argument("--no-progress", action="store_true", help="do not show the progress view")
    @argument(
        "--timeline",
        metavar="PATH",
        default=None,
        help="record a timeline of the cell on every rank into PATH (Chrome trace JSON; "
        "wb.timeline.show() draws it)",
    )
    def distributed(self, line: str, cell: str) -> None:
        """Run the cell on every rank (``comm``, ``rank``, ``size`` are defined there)."""
        args = parse_argstring(self.distributed, line)
        pool = _pool.current()
        if pool is None:
            pool = _pool.Pool.local()
            print(f"workbench: no pool yet, started a local pool of {engines(pool.size)}")
        if args.targets is not None and max(args.targets) >= pool.size:
            raise UsageError(f"--targets {args.targets} outside this pool of {pool.size} ranks")
        if args.timeline is not None:
            from workbench.timeline._cells import run_recorded

            run_recorded(pool, cell, args.timeline, ranks=args.targets, timeout=args.timeout,
                         progress=not args.no_progress)  # fmt: skip
            return
        pool.execute(cell, ranks=args.targets, timeout=args.timeout, progress=not args.no_progress)


def register(ipython: Any) -> None:
    """Register the magics with ``ipython`` (called by ``%load_ext workbench``)."""
    ipython.register_magics(WorkbenchMagics)


WorkbenchMagics.wb.__doc__ = f"{WorkbenchMagics.wb.__doc__}\n\n{_WB.format_help()}"
