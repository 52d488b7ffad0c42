"""Pool start time and a trivial cell round trip: workbench vs plain ipyparallel, one run.

    python benchmarks/pool.py [-n 4] [--repeat 3] [--trips 20] [--slurm 2]

Prints a table; compare the ratios (this machine is shared and noisy), not absolute times.
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

import ipyparallel as ipp
from IPython.testing.globalipapp import start_ipython

import workbench as wb
from workbench.pool import set_current
from workbench.pool._launch import find_mpiexec


def start_ipp(n: int) -> tuple[float, ipp.Cluster, ipp.Client]:
    t = time.perf_counter()
    cluster = ipp.Cluster(n=n, engines="mpi", log_level=40)
    cluster.config.MPIEngineSetLauncher.mpi_cmd = [find_mpiexec()]
    client = cluster.start_and_connect_sync()
    return time.perf_counter() - t, cluster, client


def start_wb(n: int) -> tuple[float, wb.Pool]:
    t = time.perf_counter()
    pool = wb.Pool.local(n)
    return time.perf_counter() - t, pool


def slurm_starts(n: int) -> tuple[float, float]:
    """Seconds to a connected pool of ``n`` engines through Slurm: plain ipyparallel, workbench."""
    t = time.perf_counter()
    cluster = ipp.Cluster(n=n, engines="slurm", log_level=40)
    client = cluster.start_and_connect_sync()
    plain = time.perf_counter() - t
    client.close()
    cluster.stop_cluster_sync()
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        pool = wb.Pool.slurm(n)
    ours = time.perf_counter() - t
    pool.stop()
    return plain, ours


def trips(run, count: int) -> float:
    """Median seconds of ``count`` calls of ``run`` (output swallowed)."""
    times = []
    for _ in range(count):
        with contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=4, help="engines (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="pool starts per tool (default 3)")
    ap.add_argument("--trips", type=int, default=20, help="cell round trips per tool (default 20)")
    ap.add_argument(
        "--slurm",
        type=int,
        default=0,
        metavar="N",
        help="also time N engines through Slurm (needs a running Slurm)",
    )
    args = ap.parse_args()

    shell = start_ipython()
    shell.run_line_magic("load_ext", "workbench")
    starts: dict[str, list[float]] = {"ipyparallel": [], "workbench": []}
    rt: dict[str, list[float]] = {"ipyparallel": [], "workbench": []}
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        seconds, cluster, client = start_ipp(args.n)
        starts["ipyparallel"].append(seconds)
        client.activate()  # registers %%px on the shell
        rt["ipyparallel"].append(trips(lambda: shell.run_cell_magic("px", "", "x = 1"), args.trips))
        client.close()
        cluster.stop_cluster_sync()

        seconds, pool = start_wb(args.n)
        starts["workbench"].append(seconds)
        set_current(pool)
        run = lambda: shell.run_cell_magic("distributed", "", "x = 1")  # noqa: E731
        rt["workbench"].append(trips(run, args.trips))
        pool.stop()

    print(f"\npool of {args.n} MPI engines, {os.cpu_count()} cores, medians of {args.repeat} runs")
    print(f"{'':34}{'ipyparallel':>14}{'workbench':>14}{'ratio':>9}")
    rows = [
        ("start (s)", starts, 1.0),
        ("cell round trip (ms)", rt, 1e3),
    ]
    if args.slurm:
        pairs = [slurm_starts(args.slurm) for _ in range(args.repeat)]
        starts_slurm = {"ipyparallel": [p for p, _ in pairs], "workbench": [o for _, o in pairs]}
        rows.append((f"start through Slurm, n={args.slurm} (s)", starts_slurm, 1.0))
    for label, data, scale in rows:
        a = statistics.median(data["ipyparallel"]) * scale
        b = statistics.median(data["workbench"]) * scale
        print(f"{label:34}{a:14.2f}{b:14.2f}{b / a:9.2f}")
    print("ipyparallel: ipp.Cluster(n, engines='mpi').start_and_connect_sync() and %%px")
    print("workbench:   wb.Pool.local(n) (with rank map, comm/rank/size) and %%distributed")


if __name__ == "__main__":
    main()
