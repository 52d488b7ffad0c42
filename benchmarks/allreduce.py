"""Benchmark the shared allreduce against mpi4py's native ``Allreduce``, in one run.

    python benchmarks/allreduce.py            # p = 2 and 4, 4 KiB ... 256 MiB
    python benchmarks/allreduce.py --quick    # fewer sizes and repetitions (smoke)
    python benchmarks/allreduce.py --ranks 2  # other rank counts
    python benchmarks/allreduce.py --sizes 8B..256MiB --ranks 2 4   # x4 steps, or 4KiB,16MiB

The script relaunches itself under ``mpiexec`` (next to this Python) once per rank
count; rank 0 prints the table. Times are medians over repetitions of the slowest
rank; algbw = bytes / time, busbw = algbw * 2 (p - 1) / p (nccl-tests), "x native" is
the busbw ratio to native measured in the same run. The ``auto->X`` rows name the algorithm
``auto`` chose at that size (``window``: reduced inside the node window of the check), and
the line above each table says whether it came from the measured table of
``python -m workbench.comm.tune`` (whose timing helpers this reuses) or from the built-in
thresholds. ``symmetric`` rows reduce a ``wb.comm.empty`` buffer in place (zero copy).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

from workbench.comm.tune import (
    KiB,
    MiB,
    format_row,
    machine_facts,
    repetitions,
    run_under_mpiexec,
    size_label,
    table_header,
    time_collective,
)

SIZES = [4 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB]
QUICK_SIZES = [4 * KiB, 4 * MiB, 64 * MiB]
ALGOS = ["auto", "mpi", "ring", "rhd", "shm", "hierarchical", "cma"]


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


def call_overhead(nbytes: int = 4 * KiB, n: int = 20_000) -> None:
    """What a call costs on one rank (nothing to exchange: the Python path alone), in
    this process: ``wb.allreduce`` of a plain array against ``comm.Allreduce``."""
    from mpi4py import MPI

    from workbench.comm import allreduce

    comm = MPI.COMM_SELF
    x = np.ones(nbytes // 4, np.float32)
    y = np.empty_like(x)
    cases = {
        "comm.Allreduce(x, y)": lambda: comm.Allreduce(x, y),
        "wb.allreduce(x) (new result)": lambda: allreduce(x, comm=comm),
        "wb.allreduce(x, out=y)": lambda: allreduce(x, comm=comm, out=y),
        "wb.allreduce(x, out=y, check=False)": lambda: allreduce(x, comm=comm, out=y, check=False),
    }
    print(f"\none rank, {nbytes // KiB} KiB float32, best of 5 x {n} calls (µs per call):")
    for label, fn in cases.items():
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t) / n)
        print(f"- {label:38s} {best * 1e6:6.2f}")


_UNITS = {"B": 1, "KIB": KiB, "MIB": MiB, "GIB": 1024 * MiB}


def parse_size(text: str) -> int:
    """``8B``, ``4KiB``, ``16MiB``: bytes (a multiple of 4, the float32 elements)."""
    t = text.strip().upper()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            n = int(float(t[: -len(unit)]) * _UNITS[unit])
            break
    else:
        n = int(t)
    if n < 4 or n % 4:
        raise argparse.ArgumentTypeError(f"size {text!r}: a multiple of 4 bytes, at least 4")
    return n


def parse_sizes(text: str) -> list[int]:
    """``8B..256MiB`` (x4 steps, both ends and the sizes of SIZES between them included) or
    a comma list ``4KiB,16MiB``."""
    if ".." in text:
        lo, hi = (parse_size(v) for v in text.split("..", 1))
        out = {hi} | {n for n in SIZES if lo <= n <= hi}
        while lo < hi:
            out.add(lo)
            lo *= 4
        return sorted(out)
    return [parse_size(v) for v in text.split(",") if v.strip()]


def worker(quick: bool, sizes: list[int] | None = None) -> None:
    from mpi4py import MPI

    from workbench.comm import allreduce, empty
    from workbench.comm._staging import staging
    from workbench.comm.algorithms import get_algorithm

    comm = MPI.COMM_WORLD
    p, rank = comm.Get_size(), comm.Get_rank()
    auto = get_algorithm("auto")
    window = staging(comm)
    rows = []
    worst: tuple[float, int] | None = None  # auto's lowest ratio to native, at which size
    for nbytes in sizes or (QUICK_SIZES if quick else SIZES):
        n = nbytes // 4
        x = np.full(n, rank + 1, np.float32)
        y = np.empty_like(x)
        reps = repetitions(nbytes, quick)
        native = time_collective(comm, lambda x=x, y=y: comm.Allreduce(x, y), reps)
        rows.append(format_row(nbytes, "native MPI", native, None, p))
        for a in ALGOS:
            t = time_collective(comm, lambda a=a, x=x, y=y: allreduce(x, out=y, algorithm=a), reps)
            chosen = auto.select(nbytes, comm).name
            if window is not None and nbytes <= window.capacity and auto.stages(nbytes, comm):
                chosen = "window"
            rows.append(format_row(nbytes, f"auto->{chosen}" if a == "auto" else a, t, native, p))
            if a == "auto" and (worst is None or native / t < worst[0]):
                worst = (native / t, nbytes)
        if nbytes <= 64 * KiB:
            t = time_collective(comm, lambda x=x, y=y: allreduce(x, out=y, check=False), reps)
            rows.append(format_row(nbytes, "auto,no check", t, native, p))
        buf = empty(n, np.float32)
        buf[:] = rank + 1
        t = time_collective(comm, lambda b=buf: allreduce(b, out=b), reps)
        rows.append(format_row(nbytes, "symmetric", t, native, p))
        if nbytes <= 64 * KiB:
            t = time_collective(comm, lambda b=buf: allreduce(b, out=b, check=False), reps)
            rows.append(format_row(nbytes, "symmetric,no check", t, native, p))
        del buf
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

    t_native = time_collective(comm, per_tensor, reps)
    t_fused = time_collective(comm, lambda: allreduce(ts), reps)
    t_inplace = time_collective(comm, lambda: allreduce(outs, out=outs), reps)
    # the same tensors as slices of one symmetric buffer (how the optimizer keeps gradients)
    bucket = empty(int(sizes.sum()), np.float32)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    views = [bucket[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    t_symmetric = time_collective(comm, lambda: allreduce(views, out=views), reps)
    if rank == 0:
        print(f"\n### p = {p} ranks (float32, sum)\n")
        print(f"auto: {auto.plan(comm).source}\n")
        print(table_header())
        print("\n".join(rows))
        if worst is not None:
            print(f"\nauto's lowest ratio to native: {worst[0]:.2f}x at {size_label(worst[1])}")
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
        print(
            f"- views of one symmetric buffer:   {t_symmetric * 1e3:8.2f} ms "
            f"({t_symmetric / t_native:.2f} of per-tensor)"
        )
        sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4], help="rank counts (2 4)")
    ap.add_argument("--sizes", type=parse_sizes, default=None,
                    help="message sizes: 8B..256MiB (x4 steps) or 4KiB,16MiB")  # fmt: skip
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.quick, args.sizes)
        return
    facts = machine_facts()
    m = facts["machine"]
    print(f"machine: {m['host']} {m['arch']}, {m['cores']} cores, {m['processor']}")
    print(f"MPI: {facts['mpi']}")
    print(f"memcpy (1 process, 256 MiB): {memcpy_bandwidth():.1f} GB/s")
    call_overhead()
    for p in args.ranks:
        sizes = ["--sizes", ",".join(f"{n}B" for n in args.sizes)] if args.sizes else []
        run_under_mpiexec(p, [__file__, "--worker", *(["--quick"] if args.quick else []), *sizes])


if __name__ == "__main__":
    main()
