"""Arguments shared by the magics and the command line: types and the pool start options."""

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


_SLURM_ONLY = (
    "partition",
    "time",
    "account",
    "nodes",
    "extra",
    "launcher",
    "controller_ip",
    "warn_before",
)


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
    slurm = parser.add_argument_group("compute nodes through Slurm")
    slurm.add_argument("--slurm", action="store_true", help="start the engines as a Slurm job")
    slurm.add_argument("--partition", default=None, help="Slurm partition")
    slurm.add_argument("--time", default=None, help="time limit, e.g. 30 or 1:00:00")
    slurm.add_argument("--account", default=None, help="Slurm account")
    slurm.add_argument("--nodes", type=positive_count, default=None, help="number of nodes")
    slurm.add_argument("--extra", default=None, help='more sbatch options, e.g. "--mem=4G"')
    slurm.add_argument(
        "--launcher",
        choices=("mpiexec", "srun"),
        default=None,
        help="start ranks with mpiexec inside the job (default) or srun",
    )
    slurm.add_argument(
        "--controller-ip",
        default=None,
        help="address the nodes reach the controller on (default: this host's)",
    )
    slurm.add_argument(
        "--warn-before",
        type=positive_seconds,
        default=None,
        help="seconds before the time limit to warn and ask the engines to checkpoint "
        "(default 300)",
    )


def start_pool(args: argparse.Namespace) -> Any:
    """Start the pool that parsed ``add_start_arguments`` options describe."""
    from workbench.pool import Pool

    given = [f"--{name.replace('_', '-')}" for name in _SLURM_ONLY if getattr(args, name)]
    if not args.slurm:
        if given:
            raise InvalidValueError(f"{', '.join(given)} only apply with --slurm")
        return Pool.local(args.n, detach=args.detach, profile=args.profile)
    if args.n is None:
        raise InvalidValueError("--slurm needs -n N, the number of engines to ask Slurm for")
    warn = {} if args.warn_before is None else {"warn_before": args.warn_before}
    return Pool.slurm(
        args.n, partition=args.partition, time=args.time, account=args.account,
        nodes=args.nodes, extra=args.extra, launcher=args.launcher or "mpiexec",
        controller_ip=args.controller_ip, detach=args.detach, profile=args.profile, **warn,
    )  # fmt: skip
