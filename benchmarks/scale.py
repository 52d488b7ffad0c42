"""How start-up, a cell's round trip, the mismatch check and each allreduce grow with nodes
and ranks; and where ipyparallel's controller becomes the bottleneck (not a test).

Part 1, on a Slurm cluster (the emulated one of tests/cluster/start-cluster.sh, or a real
one): a pool of ``--per-node`` ranks on each of 1, 2, 3... nodes (``--nodes``); for each, the
seconds to a connected pool, the round trip of an empty cell (``pool.execute("pass")``,
what ``%%distributed pass`` costs), the allreduce of 8 bytes with the mismatch check on and
off, and every algorithm at a few sizes (float32 sum; the slowest rank's median).

Part 2, the controller alone: ``execute("pass")`` on ``--fanout`` local engines through a
DirectView (one request per engine, each through the controller's scheduler) and a
BroadcastView (one request the controller fans out), and through ``pool.execute`` (a
DirectView, plus workbench's wait, output and progress handling). The engines are
oversubscribed on purpose: they do nothing, so only the fan-out is measured.

    python benchmarks/scale.py --partition multi --controller-ip 10.77.0.1 [--nodes 1 2 3]
        [--per-node 2] [--trips 20] [--fanout 8 16 32] [--skip-slurm] [--skip-fanout]

Prints tables. On a small machine (the emulated nodes share its cores) the times are of an
oversubscribed emulation: read the ratios and trends, not the absolute speed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time

os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="wb-bench-"))

import numpy as np

import workbench as wb

ALGORITHMS = ("mpi", "ring", "rhd", "hierarchical")
SIZES = (8, 64 << 10, 4 << 20)  # bytes


def _collectives(sizes: tuple[int, ...], algorithms: tuple[str, ...], reps: int) -> dict:
    """On every rank: median seconds per allreduce of each (algorithm, size), and of 8 bytes
    with the check on and off."""
    from mpi4py import MPI

    import workbench as wb

    comm = MPI.COMM_WORLD

    def timed(fn, n: int) -> float:
        for _ in range(2):
            fn()
        times = []
        for _ in range(n):
            comm.Barrier()
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    out: dict = {}
    for nbytes in sizes:
        x = np.ones(max(1, nbytes // 4), np.float32)
        for algo in algorithms:
            n = reps if nbytes < 1 << 20 else max(3, reps // 5)
            out[(algo, nbytes)] = timed(lambda a=algo, x=x: wb.allreduce(x, algorithm=a), n)
    small = np.ones(2, np.float32)
    for check in (True, False):
        out[("check", check)] = timed(lambda c=check: wb.allreduce(small, check=c), reps)
    return out


def _median_trip(run, trips: int) -> float:
    run()
    times = []
    for _ in range(trips):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.0f}"


def slurm_part(args: argparse.Namespace) -> None:
    rows, algo_rows = [], []
    for k in args.nodes:
        n = k * args.per_node
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # (Slurm places the ranks by CPUs)
            pool = wb.Pool.slurm(n, nodes=k, partition=args.partition, time="20",
                                 controller_ip=args.controller_ip)  # fmt: skip
        started = time.perf_counter() - t
        placed = "+".join(str(len(r)) for r in pool.status().nodes.values())
        try:
            trip = _median_trip(
                lambda p=pool: p.execute("pass", stream=False, progress=False), args.trips
            )
            per_rank = pool.apply(_collectives, (SIZES, ALGORITHMS, args.reps), progress=False,
                                  stream=False, timeout=600)  # fmt: skip
        finally:
            pool.stop()
        worst = {key: max(r[key] for r in per_rank) for key in per_rank[0]}
        rows.append((k, placed, started, trip, worst[("check", True)], worst[("check", False)]))
        for nbytes in SIZES:
            algo_rows.append((k, placed, nbytes, [worst[(a, nbytes)] for a in ALGORITHMS]))
        print(f"  measured {k} node(s), ranks {placed}: {rows[-1][2:]}", flush=True)

    print(f"\n### Pools of {args.per_node} ranks per node asked (Slurm, partition "
          f"{args.partition}; ranks: as placed per node)\n")  # fmt: skip
    print("| nodes | ranks | start (s) | empty cell (ms) | 8 B check on (us) | check off (us) |")
    print("|------:|------:|----------:|----------------:|------------------:|---------------:|")
    for k, placed, started, trip, on, off in rows:
        print(f"| {k:5d} | {placed:>5} | {started:9.1f} | {trip * 1e3:15.1f} | {_us(on):>17} |"
              f" {_us(off):>14} |")  # fmt: skip
    print("\n### allreduce, float32 sum, slowest rank's median (us)\n")
    print("| nodes | ranks |    size | " + " | ".join(f"{a:>12}" for a in ALGORITHMS) + " |")
    print("|------:|------:|--------:|" + "|".join("-" * 13 + ":" for _ in ALGORITHMS) + "|")
    for k, placed, nbytes, times in algo_rows:
        size = f"{nbytes >> 20} MiB" if nbytes >= 1 << 20 else (
            f"{nbytes >> 10} KiB" if nbytes >= 1 << 10 else f"{nbytes} B")  # fmt: skip
        cells = " | ".join(f"{_us(t):>12}" for t in times)
        print(f"| {k:5d} | {placed:>5} | {size:>7} | {cells} |")


def fanout_part(args: argparse.Namespace) -> None:
    rows = []
    for n in args.fanout:
        t = time.perf_counter()
        pool = wb.Pool.local(n, progress=False, timeout=600)
        started = time.perf_counter() - t
        try:
            client = pool.client
            direct = client[:]
            bview = client.broadcast_view()
            d = _median_trip(lambda v=direct: v.execute("pass", block=True), args.trips)
            b = _median_trip(lambda v=bview: v.execute("pass", block=True), args.trips)
            w = _median_trip(lambda p=pool: p.execute("pass", stream=False, progress=False),
                             args.trips)  # fmt: skip
        finally:
            pool.stop()
        rows.append((n, started, d, b, w))
        print(f"  measured {n} local engines", flush=True)
    print(f"\n### The controller's fan-out: execute('pass') on local engines ({os.cpu_count()} "
          "cores, oversubscribed)\n")  # fmt: skip
    print("| engines | start (s) | DirectView (ms) | BroadcastView (ms) | pool.execute (ms) |")
    print("|--------:|----------:|----------------:|-------------------:|------------------:|")
    for n, started, d, b, w in rows:
        print(f"| {n:7d} | {started:9.1f} | {d * 1e3:15.1f} | {b * 1e3:18.1f} | {w * 1e3:17.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", default="multi")
    parser.add_argument("--controller-ip", default="10.77.0.1")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-node", type=int, default=2)
    parser.add_argument("--trips", type=int, default=20)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--fanout", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument("--skip-fanout", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.skip_slurm:
        slurm_part(args)
    if not args.skip_fanout:
        fanout_part(args)


if __name__ == "__main__":
    main()
