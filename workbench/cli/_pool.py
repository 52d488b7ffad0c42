"""``workbench pool start|status|stop``: a pool that notebooks attach to with ``%wb attach``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from workbench._util import engines
from workbench.cli._common import Handler, SubParsers, group_help
from workbench.cli.options import add_start_arguments, start_pool
from workbench.errors import PoolError

__all__ = ["add_parser"]


def add_parser(subparsers: SubParsers) -> None:
    """Add the ``pool`` command group (``start``, ``status``, ``stop``)."""
    p = subparsers.add_parser("pool", help="start, inspect or stop a pool of MPI engines")
    sub = p.add_subparsers(dest="pool_command", metavar="COMMAND")

    start = sub.add_parser("start", help="start a pool of MPI engines (local or Slurm)")
    add_start_arguments(start)
    start.set_defaults(handler=_guard(_cmd_start))

    for name, handler, text in [
        ("status", _cmd_status, "show each rank of a running pool"),
        ("stop", _cmd_stop, "stop a running pool"),
    ]:
        q = sub.add_parser(name, help=text)
        q.add_argument("cluster_file", nargs="?", help="the pool's cluster file (default: newest)")
        q.add_argument("--profile", default=None, help="IPython profile holding the cluster files")
        q.set_defaults(handler=_guard(handler))
    p.set_defaults(handler=group_help(p))


def _guard(handler: Handler) -> Handler:
    """Pool problems (no pool, missing file, engines gone) become one line on stderr, exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except PoolError as e:
            print(f"workbench pool: {e}", file=sys.stderr)
            return 1

    return run


def _cmd_start(args: argparse.Namespace) -> int:
    try:
        pool = start_pool(args)
    except ValueError as e:
        print(f"workbench pool start: {e}", file=sys.stderr)
        return 2
    print(f"started {engines(pool.size)}")
    print(f"cluster file: {pool.cluster_file}")
    print(f"attach from a notebook with:  %wb attach {pool.cluster_file}")
    if args.detach:
        pool.close()
        print(f"stop with:  workbench pool stop {pool.cluster_file}")
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("running; Ctrl-C stops the pool", flush=True)
    try:
        while not stop.wait(1.0):
            if pool.dead_ranks():
                print("engines died; stopping the pool", file=sys.stderr)
                break
    except KeyboardInterrupt:
        pass
    pool.stop()
    print("pool stopped")
    return 0


def _attach(args: argparse.Namespace) -> Any:
    from workbench.pool import Pool

    return Pool.attach(args.cluster_file, profile=args.profile)


def _cmd_status(args: argparse.Namespace) -> int:
    pool = _attach(args)
    try:
        print(pool.status())
    finally:
        pool.close()
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    pool = _attach(args)
    pool.stop()
    print(f"stopped the pool of {engines(pool.size)} ({pool.cluster_file})")
    return 0
