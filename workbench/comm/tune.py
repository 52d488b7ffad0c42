"""Measure every allreduce algorithm on this machine and write the table ``auto`` reads.

    python -m workbench.comm.tune                      # p = 2 and 4, 4 KiB ... 256 MiB
    python -m workbench.comm.tune --ranks 2 8 16       # other rank counts
    python -m workbench.comm.tune --quick              # 3 small sizes, few repetitions (smoke)
    python -m workbench.comm.tune --output FILE        # default: WORKBENCH_TUNE_FILE or
                                                       # ~/.cache/workbench/allreduce-tune.json

The command relaunches itself under ``mpiexec`` (the one next to this Python unless
``--mpiexec`` names another launcher, e.g. ``"srun"`` inside an allocation) once per rank
count. At each size it times native ``comm.Allreduce`` and every algorithm that runs on the
layout (``mpi``, ``ring``, ``rhd``, plus ``shm`` and ``cma`` on one node or ``hierarchical``
across nodes) and, on one node up to its capacity, the node window of small calls (the
cached call, as a repeated call takes it), prints them, and records the winner; ``auto``
then lets the window take only the sizes where it won. The table is merged into the file
(other layouts kept). Times are medians over repetitions of the slowest rank; busbw =
bytes / time * 2 (p - 1) / p (nccl-tests). ``benchmarks/allreduce.py`` reuses the timing
helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from workbench._util import parse_bytes
from workbench.comm import _config
from workbench.comm._tuning import (
    MEASURABLE,
    STAGED,
    WINDOW_ALGORITHMS,
    choose,
    merge_layout,
    node_layout,
    plan_from_entry,
    write_table,
)

__all__ = [
    "QUICK_SIZES",
    "SIZES",
    "format_row",
    "machine_facts",
    "main",
    "measure",
    "repetitions",
    "run_under_mpiexec",
    "size_label",
    "table_header",
    "time_collective",
]

KiB, MiB = 1 << 10, 1 << 20
#: The ladder of message sizes: 4 KiB, 16 KiB, ... 256 MiB.
SIZES = [4 * KiB * 4**k for k in range(9)]
QUICK_SIZES = [4 * KiB, 64 * KiB, 1 * MiB]
#: Default wait for one ``mpiexec`` launch (seconds).
LAUNCH_TIMEOUT = 3600.0
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def repetitions(nbytes: int, quick: bool) -> int:
    """How many times to time a message of ``nbytes`` (more for small ones)."""
    budget = (64 if quick else 512) * MiB
    return int(min(50 if quick else 2000, max(3 if quick else 5, budget // max(nbytes, 1))))


def time_collective(comm: Any, fn: Callable[[], object], reps: int) -> float:
    """Median over ``reps`` of the slowest rank's time for ``fn()`` (after one warm-up)."""
    from mpi4py import MPI

    fn()  # warm-up: compile, allocate windows and scratch
    ts = np.empty(reps)
    for k in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        ts[k] = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
    return float(np.median(ts))


def size_label(nbytes: int) -> str:
    """``8 B``, ``4 KiB``, ``16 MiB``, ..."""
    if nbytes < KiB:
        return f"{nbytes} B"
    return f"{nbytes // MiB} MiB" if nbytes >= MiB else f"{nbytes // KiB} KiB"


def table_header(algorithm_width: int = 18) -> str:
    """The two header lines of :func:`format_row`'s markdown table."""
    w = algorithm_width
    return (
        f"|      size | {'algorithm':<{w}} | median (us) |  algbw |  busbw | x native |\n"
        f"|----------:|:{'-' * w}-|------------:|-------:|-------:|---------:|"
    )


def format_row(
    nbytes: int, algorithm: str, t: float, native: float | None, ranks: int, width: int = 18
) -> str:
    """One table row: time, algbw and busbw (GB/s) and the busbw ratio to ``native``."""
    algbw = nbytes / t / 1e9
    busbw = algbw * 2 * (ranks - 1) / ranks
    ratio = native / t if native else 1.0
    return (
        f"| {size_label(nbytes):>9} | {algorithm:<{width}} | {t * 1e6:11.1f} | {algbw:6.2f} "
        f"| {busbw:6.2f} | {ratio:8.2f} |"
    )


def machine_facts() -> dict[str, Any]:
    """Machine, MPI library and versions, and the date, as the table records them."""
    import numba
    from mpi4py import MPI

    return {
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "arch": platform.machine(),
            "cores": os.cpu_count(),
            "processor": platform.processor() or platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
        },
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
    }


def measure(comm: Any, sizes: Sequence[int], *, quick: bool = False) -> dict[str, Any]:
    """Time native MPI and every algorithm that runs on ``comm`` at each size (collective);
    rank 0 prints the table as it goes. Returns the table entry of ``comm``'s layout."""
    from workbench.comm._staging import staging
    from workbench.comm.algorithms import available
    from workbench.comm.allreduce import allreduce

    layout = node_layout(comm)
    names = [n for n in MEASURABLE if n in layout.allowed()]
    if layout.nodes == 1:  # hierarchical is shm plus nothing on one node
        names.remove("hierarchical")
    p, rank = comm.Get_size(), comm.Get_rank()

    def say(line: str) -> None:
        if rank == 0:
            print(line, flush=True)

    refused = available(comm) if "cma" in names else None
    if refused is not None:
        names.remove("cma")
        say(f"cross-memory attach (cma) is not allowed here: {refused}; not measured")

    window = staging(comm)  # (None across nodes)
    say(f"\n### p = {p} ranks, {layout.nodes} node(s) x {layout.per_node or 'mixed'}")
    say("float32 sum, out of place; `<-` marks what auto will use\n")
    say(table_header())
    rows = []
    for nbytes in sizes:
        x = np.full(nbytes // 4, rank + 1, np.float32)
        y = np.empty_like(x)
        reps = repetitions(nbytes, quick)
        native = time_collective(comm, partial(comm.Allreduce, x, y), reps)
        times = {}
        calls = {name: partial(allreduce, x, out=y, algorithm=name) for name in names}
        if window is not None and nbytes <= window.capacity:
            calls[STAGED] = partial(staged_call(window, x), x, y)
        for name, call in calls.items():
            times[name] = time_collective(comm, call, reps)
            if float(y[0]) != p * (p + 1) / 2:
                raise RuntimeError(f"{name} gave {y[0]} at {nbytes} bytes, not {p * (p + 1) / 2}")
        best = choose(times, times["mpi"], layout.allowed() | {STAGED})
        say(format_row(nbytes, "native MPI", native, None, p))
        for name in times:
            mark = " <-" if name == best else ""
            say(format_row(nbytes, name, times[name], native, p) + mark)
        rows.append(
            {
                "bytes": nbytes,
                "best": best,
                "native_us": round(native * 1e6, 2),
                "us": {n: round(t * 1e6, 2) for n, t in times.items()},
            }
        )
        del x, y
    return {
        "ranks": layout.ranks,
        "nodes": layout.nodes,
        "ranks_per_node": layout.per_node,
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sizes": rows,
    }


def staged_call(window: Any, x: np.ndarray) -> Callable[[np.ndarray, Any], Any]:
    """The cached call of the node ``window`` for ``x`` (sum, checked): what a repeated
    ``allreduce`` of that shape runs where the window takes it."""
    from workbench.comm._checks import signature
    from workbench.comm._fast import SmallCall

    desc = f"tune {x.shape} {x.dtype}"
    fields = (signature(desc), x.size, 1, 1, signature("tune window"))
    return SmallCall(window, x, "sum", fields, desc, True, _config.settings().stall_seconds)


def _mpiexec(launcher: str | None) -> list[str]:
    if launcher:
        return shlex.split(launcher)
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        raise RuntimeError(
            "no `mpiexec` next to this Python or on PATH: install MPI (`pip install mpich "
            "mpi4py`) or pass --mpiexec with your site's launcher"
        )
    return [found]


def run_under_mpiexec(
    ranks: int,
    args: Sequence[str],
    *,
    timeout: float = LAUNCH_TIMEOUT,
    launcher: str | None = None,
) -> None:
    """Run ``python ARGS`` on ``ranks`` ranks (output passes through); ``RuntimeError``
    when it fails or runs past ``timeout`` s (then every rank is killed)."""
    cmd = [*_mpiexec(launcher), "-n", str(ranks), sys.executable, *args]
    path = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError(f"{shlex.join(cmd)} did not finish within {timeout:.0f}s") from None
    except BaseException:  # Ctrl-C: take the ranks down too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed with exit code {code}")


def _worker(sizes: Sequence[int], quick: bool, result: str) -> None:
    from mpi4py import MPI

    entry = measure(MPI.COMM_WORLD, sizes, quick=quick)
    if MPI.COMM_WORLD.Get_rank() == 0:
        Path(result).write_text(json.dumps(entry), encoding="utf-8")


def _summary(entry: dict[str, Any]) -> str:
    layout, plan = plan_from_entry(entry, "")
    rows = sorted(entry["sizes"], key=lambda row: row["bytes"])
    parts = [
        f"{size_label(row['bytes'])} {STAGED if STAGED in row.get('us', {}) and staged else a}"
        for row, a, staged in zip(rows, plan.algorithms, plan.staged, strict=True)
    ]
    return f"{layout.key}: " + ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m workbench.comm.tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4], help="rank counts (2 4)")
    ap.add_argument("--sizes", nargs="+", help="message sizes, e.g. 4KiB 1MiB (default: ladder)")
    ap.add_argument("--quick", action="store_true", help="3 small sizes, fewer repetitions")
    ap.add_argument("--output", type=Path, help=f"table file (default: {_config.tune_file()})")
    ap.add_argument("--mpiexec", help="launcher command, e.g. 'srun' (default: mpiexec)")
    ap.add_argument("--timeout", type=float, default=LAUNCH_TIMEOUT, help="seconds per launch")
    ap.add_argument("--worker", metavar="RESULT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = (
        sorted({parse_bytes("--sizes", s) for s in args.sizes})
        if args.sizes
        else (QUICK_SIZES if args.quick else SIZES)
    )
    if args.worker:
        _worker(sizes, args.quick, args.worker)
        return
    if any(p < 2 for p in args.ranks):
        ap.error("--ranks: every rank count must be at least 2 (one rank has nothing to tune)")
    output = args.output or _config.tune_file()
    facts = machine_facts()
    m = facts["machine"]
    print(f"machine: {m['host']} {m['arch']}, {m['cores']} cores, {m['processor']}")
    print(f"MPI: {facts['mpi']}\ntable: {output}", flush=True)
    summaries = []
    with tempfile.TemporaryDirectory(prefix="wb-tune-") as tmp:
        for p in args.ranks:
            result = os.path.join(tmp, f"p{p}.json")
            worker = ["-m", "mpi4py", "-m", "workbench.comm.tune", "--worker", result]
            worker += ["--sizes", *map(str, sizes)] + (["--quick"] if args.quick else [])
            run_under_mpiexec(p, worker, timeout=args.timeout, launcher=args.mpiexec)
            entry = json.loads(Path(result).read_text(encoding="utf-8"))
            write_table(output, merge_layout(output, entry, machine_facts()))
            summaries.append(_summary(entry))
    print(f"\nwrote {output}; auto will use:")
    print("\n".join(f"  {s}" for s in summaries))
    excluded = ", ".join(sorted(WINDOW_ALGORITHMS))
    print(f"(teams of allreduce_async never use {excluded}; the next best is taken there)")


if __name__ == "__main__":
    main()
