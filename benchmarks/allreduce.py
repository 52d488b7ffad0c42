"""Benchmark the shared allreduce against mpi4py's native ``Allreduce``, in one run.

    python benchmarks/allreduce.py            # p = 2 and 4, 4 KiB ... 256 MiB
    python benchmarks/allreduce.py --quick    # fewer sizes and repetitions (smoke)
    python benchmarks/allreduce.py --ranks 2  # other rank counts

The script relaunches itself under ``mpiexec`` (next to this Python) once per rank
count; rank 0 prints the table. Times are medians over repetitions of the slowest
rank; algbw = bytes / time, busbw = algbw * 2 (p - 1) / p (nccl-tests), "x native" is
the busbw ratio to native measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

KiB, MiB = 1 << 10, 1 << 20
SIZES = [4 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB]
QUICK_SIZES = [4 * KiB, 4 * MiB, 64 * MiB]
ALGOS = ["auto", "mpi", "ring", "rhd", "shm", "hierarchical"]


def memcpy_bandwidth(nbytes: int = 256 * MiB, reps: int = 5) -> float:
    """Single-process copy bandwidth (GB/s, bytes copied per second)."""
    a = np.ones(nbytes, np.uint8)
    b = np.empty_like(a)
    np.copyto(b, a)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(b, a)
        ts.append(time.perf_counter() - t)
    return nbytes / float(np.median(ts)) / 1e9


def _reps(nbytes: int, quick: bool) -> int:
    budget = (64 if quick else 512) * MiB
    return int(min(300 if not quick else 50, max(3 if quick else 5, budget // nbytes)))


def _time(comm, fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    """Median over reps of the slowest rank's time for ``fn()``."""
    from mpi4py import MPI

    fn()  # warm-up: compile, allocate windows and scratch
    ts = np.empty(reps)
    for k in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        ts[k] = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
    return float(np.median(ts))


def worker(quick: bool) -> None:
    from mpi4py import MPI

    from workbench.comm import allreduce
    from workbench.comm.algorithms import get_algorithm

    comm = MPI.COMM_WORLD
    p, rank = comm.Get_size(), comm.Get_rank()
    bus = 2 * (p - 1) / p
    rows = []

    def row(label: str, algo: str, nbytes: int, t: float, native: float | None) -> None:
        algbw = nbytes / t / 1e9
        ratio = f"{native / t:5.2f}" if native else "  1.00"
        rows.append(
            f"| {label:>9} | {algo:<13} | {t * 1e6:11.1f} | {algbw:6.2f} | {algbw * bus:6.2f} "
            f"| {ratio} |"
        )

    for nbytes in QUICK_SIZES if quick else SIZES:
        n = nbytes // 4
        x = np.full(n, rank + 1, np.float32)
        y = np.empty_like(x)
        reps = _reps(nbytes, quick)
        label = f"{nbytes // MiB} MiB" if nbytes >= MiB else f"{nbytes // KiB} KiB"
        native = _time(comm, lambda x=x, y=y: comm.Allreduce(x, y), reps)
        row(label, "native MPI", nbytes, native, None)
        for a in ALGOS:
            t = _time(comm, lambda a=a, x=x, y=y: allreduce(x, out=y, algorithm=a), reps)
            chosen = get_algorithm("auto").select(nbytes, comm).name if a == "auto" else ""
            row(label, f"{a}{'->' + chosen if chosen else ''}", nbytes, t, native)
        if nbytes == 4 * KiB:
            t = _time(comm, lambda x=x, y=y: allreduce(x, out=y, check=False), reps)
            row(label, "auto,no check", nbytes, t, native)
        assert float(y[0]) == p * (p + 1) / 2, y[0]
        del x, y

    # 200 tensors of mixed sizes, ~21 MB in total
    rng = np.random.default_rng(0)
    sizes = np.maximum(1, rng.lognormal(0, 1.5, 200))
    sizes = (sizes / sizes.sum() * (21_000_000 // 4)).astype(int) + 1
    ts = [np.full(s, rank, np.float32) for s in sizes]
    outs = [np.empty_like(t) for t in ts]
    total = int(sizes.sum()) * 4
    reps = 5 if quick else 15

    def per_tensor() -> None:
        for t, o in zip(ts, outs, strict=True):
            comm.Allreduce(t, o)

    t_native = _time(comm, per_tensor, reps)
    t_fused = _time(comm, lambda: allreduce(ts), reps)
    t_inplace = _time(comm, lambda: allreduce(outs, out=outs), reps)
    if rank == 0:
        print(f"\n### p = {p} ranks (float32, sum)\n")
        print("|      size | algorithm     | median (us) |  algbw |  busbw | x native |")
        print("|----------:|:--------------|------------:|-------:|-------:|---------:|")
        print("\n".join(rows))
        print(f"\n200 tensors, {total / 1e6:.1f} MB total:")
        print(f"- one native Allreduce per tensor: {t_native * 1e3:8.2f} ms")
        print(
            f"- fused allreduce(list):           {t_fused * 1e3:8.2f} ms "
            f"({t_fused / t_native:.2f} of per-tensor)"
        )
        print(
            f"- fused, in place (out=list):      {t_inplace * 1e3:8.2f} ms "
            f"({t_inplace / t_native:.2f} of per-tensor)"
        )
        sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4], help="rank counts (2 4)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.quick)
        return
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.processor() or platform.platform()}"
    )
    from mpi4py import MPI

    print(f"MPI: {MPI.Get_library_version().splitlines()[0].strip()}")
    print(f"memcpy (1 process, 256 MiB): {memcpy_bandwidth():.1f} GB/s")
    mpiexec = Path(sys.executable).with_name("mpiexec")
    for p in args.ranks:
        cmd = [str(mpiexec), "-n", str(p), sys.executable, __file__, "--worker"]
        if args.quick:
            cmd.append("--quick")
        subprocess.run(cmd, check=True, timeout=3600)


if __name__ == "__main__":
    main()
