"""Options shared by the magics and the command line (a public module: `%wb start` and
`workbench pool start` take the same pool options): argument types and the pool start options."""

from __future__ import annotations

import argparse
from typing import Any

from workbench.errors import InvalidValueError

__all__ = [
    "add_start_arguments",
    "parse_ranks",
    "positive_count",
    "positive_seconds",
    "start_pool",
]


def positive_count(text: str) -> int:
    """A positive integer, e.g. a number of engines."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def parse_ranks(text: str) -> list[int]:
    """``"0,2-4"`` -> ``[0, 2, 3, 4]``."""
    ranks: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 0 or last < first:
                raise ValueError
            ranks.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid rank list {text!r}: use comma-separated ranks or ranges, e.g. 0,1 or 0-3"
        ) from None
    return sorted(ranks)


_NEW_JOB_ONLY = ("partition", "time", "account", "nodes", "extra")
_SLURM_ONLY = ("launcher", "controller_ip", "controller_interface", "warn_before")


def add_start_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``%wb start`` and ``workbench pool start`` (local or Slurm)."""
    parser.add_argument(
        "-n",
        type=positive_count,
        default=None,
        help="number of MPI engines (default: cores; required with --slurm)",
    )
    parser.add_argument(
        "--detach", action="store_true", help="keep the pool running after this process exits"
    )
    parser.add_argument("--profile", default=None, help="IPython profile for the cluster files")
    parser.add_argument(
        "--local",
        action="store_true",
        help="on this machine even inside a Slurm allocation (where the default is a step of it)",
    )
    engine = parser.add_argument_group("how each engine starts")
    engine.add_argument(
        "--setup",
        action="append",
        default=None,
        metavar="LINE",
        help='a shell line run on each node before the engines, e.g. "module load x" '
        "(repeat for several)",
    )
    engine.add_argument(
        "--container",
        default=None,
        help='a command the engines run under, e.g. "apptainer exec img.sif"',
    )
    engine.add_argument("--python", default=None, help="the engines' Python interpreter")
    slurm = parser.add_argument_group(
        "compute nodes through Slurm (inside an allocation: a step of it, no new job)"
    )
    slurm.add_argument("--slurm", action="store_true", help="start the engines as a new Slurm job")
    slurm.add_argument("--partition", default=None, help="Slurm partition")
    slurm.add_argument("--time", default=None, help="time limit, e.g. 30 or 1:00:00")
    slurm.add_argument("--account", default=None, help="Slurm account")
    slurm.add_argument("--nodes", type=positive_count, default=None, help="number of nodes")
    slurm.add_argument("--extra", default=None, help='more sbatch options, e.g. "--mem=4G"')
    slurm.add_argument(
        "--launcher",
        choices=("mpiexec", "srun"),
        default=None,
        help="start ranks with mpiexec inside a new job (its default) or srun (the default "
        "inside an allocation)",
    )
    slurm.add_argument(
        "--controller-ip",
        default=None,
        help="address the nodes reach the controller on (default: chosen, the route to them)",
    )
    slurm.add_argument(
        "--controller-interface",
        default=None,
        help="interface to listen on for the nodes instead, e.g. hsn0",
    )
    slurm.add_argument(
        "--warn-before",
        type=positive_seconds,
        default=None,
        help="seconds before the time limit to warn and ask the engines to checkpoint "
        "(default 300)",
    )


def start_pool(args: argparse.Namespace) -> Any:
    """Start the pool that parsed ``add_start_arguments`` options describe: a new Slurm job
    with ``--slurm``; inside a Slurm allocation a step of it (unless ``--local``); else
    local engines."""
    from workbench.pool import Allocation, Pool

    def given(names: tuple[str, ...]) -> list[str]:
        return [f"--{name.replace('_', '-')}" for name in names if getattr(args, name)]

    engine = {"setup": args.setup, "container": args.container, "python": args.python,
              "detach": args.detach, "profile": args.profile}  # fmt: skip
    warn = {} if args.warn_before is None else {"warn_before": args.warn_before}
    slurm = {"launcher": args.launcher, "controller_ip": args.controller_ip,
             "controller_interface": args.controller_interface, **warn}  # fmt: skip
    if args.slurm:
        if args.n is None:
            raise InvalidValueError("--slurm needs -n N, the number of engines to ask Slurm for")
        return Pool.slurm(args.n, partition=args.partition, time=args.time,
                          account=args.account, nodes=args.nodes, extra=args.extra,
                          **slurm, **engine)  # fmt: skip
    if given(_NEW_JOB_ONLY):
        raise InvalidValueError(f"{', '.join(given(_NEW_JOB_ONLY))} only apply with --slurm")
    if Allocation.current() is not None and not args.local:
        return Pool.here(args.n, **slurm, **engine)
    if given(_SLURM_ONLY):
        raise InvalidValueError(
            f"{', '.join(given(_SLURM_ONLY))} only apply with --slurm or inside an allocation"
        )
    return Pool.local(args.n, **engine)
