"""Data-parallel training step: compute vs communication, against the native MPI loop.

    python benchmarks/training.py [--ranks 1 2 4] [--steps 15] [--batch 512]
    python benchmarks/training.py --sweep 64KiB,1MiB,9MiB,17MiB,25MiB   # bucket size ladder
    python benchmarks/training.py --timeline [--ranks 2]   # the timeline's cost per step

Each configuration runs under ``mpiexec -n P`` with one BLAS/torch thread per rank
(weak scaling: ``--batch`` samples per rank per step). Reported: the phases of the
fastest of ``--steps`` steps after warm-up (on a shared machine other load only ever
slows a step down), with the median step time beside it:

* compute: forward + backward (with overlap this includes launching buckets);
* wait: time ``step()`` blocks for the averaged gradients (communication not hidden);
* update: the optimizer update;
* allreduce: one synchronous ``wb.allreduce`` of all gradients as the row holds them
  (the cost if nothing hid it).

Rows: the numpy MLP with a Horovod-like loop calling mpi4py's native ``Allreduce`` per
gradient (the reference), then on ``wb.train.DistributedOptimizer`` (gradients are views
into symmetric buckets) with one bucket per tensor, the default buckets reduced after
backward and with overlap; the same model in PyTorch on DistributedOptimizer; and PyTorch
DDP (gloo, loopback, 25 MiB buckets; compute measured under ``no_sync``). Every numpy
optimizer row also runs the native loop in the same processes, alternating step by step,
so "x native" (step / native loop step) compares the two under the same load.
Efficiency = step(p=1) / step(p) of the same row (of the native row for rows not run at
p = 1: ``--ranks 8 16`` runs p = 1 only for the native row).

``--timeline`` measures what recording a timeline costs instead: the numpy rows on
DistributedOptimizer step with the timeline off and on, alternating step by step in the
same processes (``--steps`` of each); reported are the fastest and median step (slowest
rank) of each, their ratio, the spans recorded per step, what one span costs (timed alone:
two clock reads and an append) and so the share of a step the recording takes (the
difference of two noisy step times cannot resolve it). Off, an instrumented site costs one
read of a module flag, timed here too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.abspath(__file__)
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
NATIVE = ("mpi4py", "native Allreduce per tensor (reference)", {})
ROWS = [
    NATIVE,
    ("numpy", "one bucket per tensor, after backward", {"bucket_bytes": 1, "overlap": False}),
    ("numpy", "default buckets, after backward", {"overlap": False}),
    ("numpy", "default buckets + overlap", {"overlap": True}),
    ("torch", "default buckets + overlap", {"overlap": True}),
    ("ddp", "peer: torch DDP gloo 25 MiB", {}),
]
PHASES = ("compute", "wait", "update", "allreduce")


# -- worker side (one MPI rank) ------------------------------------------------------------------
def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _summary(samples: dict[str, list[float]], comm) -> dict | None:
    """The fastest step (slowest rank's phases), to see past other load; on rank 0.

    ``allreduce`` is the fastest synchronous reduction of all gradients.
    """
    gathered = comm.gather(samples, root=0)
    if comm.Get_rank() != 0:
        return None
    phases = PHASES[:3]
    totals = [[sum(g[k][s] for k in phases) for g in gathered] for s in range(len(samples["wait"]))]
    best = min(range(len(totals)), key=lambda s: max(totals[s]))
    rank = max(range(len(gathered)), key=lambda r: totals[best][r])
    out = {k: gathered[rank][k][best] for k in phases}
    out["allreduce"] = min(min(g["allreduce"]) for g in gathered)
    out["median_step"] = statistics.median(max(t) for t in totals)
    return out


class _NumpyRun:
    """One numpy MLP trained on ``comm``: on DistributedOptimizer (``opts``) or, with
    ``opts`` None, averaged by native ``Allreduce`` per gradient."""

    def __init__(self, args, comm, opts: dict | None) -> None:
        from workbench import train

        self.comm, self.p = comm, comm.Get_size()
        self.model = train.MLP(args.sizes, seed=0)
        train.broadcast_parameters(self.model, comm=comm)
        sgd = train.SGD(self.model, lr=1e-3)
        self.opt = None if opts is None else train.DistributedOptimizer(sgd, comm=comm, **opts)
        self.sgd = sgd
        self.samples: dict[str, list[float]] = {k: [] for k in PHASES}

    def _native(self) -> None:
        from mpi4py import MPI

        for g in self.model.grads:
            self.comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            g /= self.p

    def step(self, X, y, record: bool) -> None:
        import workbench as wb

        comm, grads = self.comm, self.model.grads
        comm.Barrier()
        t0 = time.perf_counter()
        self.model.loss_and_grad(X, y)
        t1 = time.perf_counter()
        if self.opt is not None:
            self.opt.synchronize()
        else:
            self._native()
        t2 = time.perf_counter()
        self.sgd.step()  # only the update
        t3 = time.perf_counter()
        comm.Barrier()
        full = _timed(lambda: wb.allreduce(grads, "mean", comm=comm, out=grads))
        if record:
            for k, v in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, full), strict=True):
                self.samples[k].append(v)

    def extra(self) -> dict:
        if self.opt is None:
            return {"buckets": len(self.model.params)}
        self.opt.close()
        return {"buckets": len(self.opt.buckets), "bucket_bytes": self.opt.bucket_bytes}


def _numpy_worker(args, comm, kind: str, opts: dict) -> dict | None:
    rng = np.random.default_rng(comm.Get_rank())
    X = rng.standard_normal((args.batch, args.sizes[0])).astype(np.float32)
    y = rng.integers(0, args.sizes[-1], args.batch)
    runs = [_NumpyRun(args, comm, None)]
    if kind == "numpy":  # the row first, the native loop beside it (alternating order)
        runs.insert(0, _NumpyRun(args, comm, dict(opts, bucket_bytes=_bucket(args, opts))))
    for step in range(args.warmup + args.steps):
        for run in runs if step % 2 == 0 else runs[::-1]:
            run.step(X, y, record=step >= args.warmup)
    results = [(_summary(run.samples, comm), run.extra()) for run in runs]
    if results[0][0] is None:
        return None
    out = results[0][0] | results[0][1]
    if len(results) > 1:
        native = results[1][0]
        out["native_step"] = sum(native[k] for k in PHASES[:3])
    return out


def _bucket(args, opts: dict) -> int | str | None:
    return opts.get("bucket_bytes", args.bucket)


def _torch_model(sizes):
    import torch

    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_worker(args, comm, kind: str, opts: dict) -> dict | None:
    import torch
    import torch.nn.functional as F

    import workbench as wb
    from workbench import train

    torch.set_num_threads(1)
    torch.manual_seed(comm.Get_rank())
    X = torch.randn(args.batch, args.sizes[0])
    y = torch.randint(0, args.sizes[-1], (args.batch,))
    net = _torch_model(args.sizes)
    train.broadcast_parameters(net, comm=comm)
    sgd = torch.optim.SGD(net.parameters(), lr=1e-3)
    if kind == "torch":
        opts = dict(opts, bucket_bytes=_bucket(args, opts))
        model, opt = net, train.DistributedOptimizer(sgd, comm=comm, **opts)
    else:
        import torch.distributed as dist

        port = comm.bcast(_free_port() if comm.Get_rank() == 0 else None)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=comm.Get_rank(),
            world_size=comm.Get_size(),
        )
        model, opt = torch.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=25), sgd
    samples: dict[str, list[float]] = {k: [] for k in PHASES}

    def backward() -> None:
        F.cross_entropy(model(X), y).backward()

    for step in range(args.warmup + args.steps):
        opt.zero_grad()
        comm.Barrier()
        if kind == "ddp":  # compute alone (no_sync), then the real step; the gap is comm
            with model.no_sync():
                compute = _timed(backward)
            opt.zero_grad()
            comm.Barrier()
            wait = _timed(backward) - compute
        else:
            compute = _timed(backward)
            wait = _timed(opt.synchronize)
        update = _timed(opt.step if kind == "ddp" else opt.optimizer.step)
        grads = [p.grad for p in net.parameters()]
        comm.Barrier()
        full = _timed(lambda g=grads: wb.allreduce(g, "mean", comm=comm, out=g))
        if step >= args.warmup:
            for k, v in zip(PHASES, (compute, wait, update, full), strict=True):
                samples[k].append(v)
    if kind == "torch":
        opt.close()
        extra = {"buckets": len(opt.buckets), "bucket_bytes": opt.bucket_bytes}
    else:
        import torch.distributed as dist

        dist.destroy_process_group()
        extra = {"buckets": "-"}
    summary = _summary(samples, comm)
    return None if summary is None else summary | extra


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TIMELINE_ROWS = [
    ("one bucket per tensor, after backward", {"bucket_bytes": 1, "overlap": False}),
    ("default buckets + overlap", {"overlap": True}),
]


def _timeline_worker(args, comm, opts: dict) -> dict | None:
    """Steps with the timeline off and on, alternating (see the module doc)."""
    import timeit

    from workbench import _spans

    rng = np.random.default_rng(comm.Get_rank())
    X = rng.standard_normal((args.batch, args.sizes[0])).astype(np.float32)
    y = rng.integers(0, args.sizes[-1], args.batch)
    run = _NumpyRun(args, comm, dict(opts, bucket_bytes=_bucket(args, opts)))
    times: dict[str, list[float]] = {"off": [], "on": []}
    spans = []
    for step in range(args.warmup + 2 * args.steps):
        on = step % 2 == 1
        if on:
            _spans.start()
        run.step(X, y, record=True)
        if on:
            _spans.stop()
            spans.append(len(_spans.take().spans))
        if step >= args.warmup:
            times["on" if on else "off"].append(sum(run.samples[k][-1] for k in PHASES[:3]))
    run.extra()
    gathered = comm.gather(times, root=0)
    if comm.Get_rank() != 0:
        return None
    out = {}
    for mode in ("off", "on"):
        steps = [max(g[mode][s] for g in gathered) for s in range(len(times[mode]))]
        out[mode] = min(steps)
        out[f"{mode}_median"] = statistics.median(steps)
    out["spans"] = statistics.median(spans)
    reads = timeit.repeat("_spans.on", globals={"_spans": _spans}, number=100_000, repeat=5)
    out["flag_ns"] = min(reads) / 100_000 * 1e9
    _spans.start()  # one span as the instrumented sites record it: two clock reads, one add
    one = "t0 = _spans.now() if _spans.on else 0\nif t0: _spans.add('reduce', 'comm', t0)"
    adds = timeit.repeat(one, globals={"_spans": _spans}, number=20_000, repeat=5)
    _spans.stop()
    _spans.take()
    out["span_ns"] = min(adds) / 20_000 * 1e9
    return out


def worker(args) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if args.timeline:
        result = _timeline_worker(args, comm, TIMELINE_ROWS[args.row][1])
        if result is not None:
            print("RESULT " + json.dumps(result), flush=True)
        return
    kind, _, opts = _rows(args)[args.row]
    run = _numpy_worker if kind in ("numpy", "mpi4py") else _torch_worker
    result = run(args, comm, kind, opts)
    if result is not None:
        print("RESULT " + json.dumps(result), flush=True)


# -- driver ----------------------------------------------------------------------------------------
def _rows(args) -> list[tuple[str, str, dict]]:
    """The standard rows, or with ``--sweep`` the native loop and the numpy MLP on each
    bucket size, reduced after backward and with overlap."""
    if not args.sweep:
        return ROWS
    rows = [NATIVE]
    for size in args.sweep:
        for overlap in (False, True):
            how = "+ overlap" if overlap else "after backward"
            rows.append(
                ("numpy", f"{size} buckets, {how}", {"bucket_bytes": size, "overlap": overlap})
            )
    return rows


def _launch(args, row: int, p: int) -> dict | None:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec, "-n", str(p), sys.executable, HERE, "--worker", "--row", str(row)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
    cmd += ["--sizes", ",".join(map(str, args.sizes))]
    cmd += ["--sweep", ",".join(args.sweep)] if args.sweep else []
    cmd += ["--bucket", str(args.bucket)] if args.bucket is not None else []
    cmd += ["--timeline"] if args.timeline else []
    env = os.environ | ONE_THREAD
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  row {row} p={p}: timed out after {args.timeout} s", file=sys.stderr)
        return None
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  row {row} p={p} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}", file=sys.stderr)
    return None


def _ms(x: float) -> str:
    return f"{1e3 * x:.1f}"


def _size(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << (shift - 4)) == 0:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"


HEAD = ["model / reduction", "p", "step ms", "median step", "compute", "wait", "update"]
HEAD += ["allreduce", "wait share", "allreduce share", "buckets", "x native", "efficiency"]


def _line(kind: str, label: str, p: int, r: dict, base: float | None) -> str:
    step = r["compute"] + r["wait"] + r["update"]
    if "bucket_bytes" in r and "default" in label:
        label = label.replace("default", f"default ({_size(r['bucket_bytes'])})")
    ratio = f"{step / r['native_step']:.2f}" if "native_step" in r else "-"
    eff = f"{100 * base / step:.0f}%" if base and p > 1 else "-"
    times = (step, r["median_step"], r["compute"], r["wait"], r["update"], r["allreduce"])
    cells = [f"{kind}: {label}", str(p), *map(_ms, times)]
    cells += [f"{100 * r['wait'] / step:.1f}%", f"{100 * r['allreduce'] / step:.1f}%"]
    cells += [str(r["buckets"]), ratio, eff]
    return "| " + " | ".join(cells) + " |"


def _timeline_table(args) -> None:
    """``--timeline``: the cost of recording, per row and rank count."""
    head = ["numpy model / reduction", "p", "step off ms", "median off", "step on ms",
            "median on", "on / off (median)", "spans per step", "cost per span",
            "spans x cost / step"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    flag = None
    for row, (label, _) in enumerate(TIMELINE_ROWS):
        for p in args.ranks:
            r = _launch(args, row, p)
            if r is None:
                lines.append(f"| {label} | {p} | failed |" + " |" * (len(head) - 3))
                continue
            flag = r["flag_ns"]
            share = r["spans"] * r["span_ns"] * 1e-9 / r["off"]
            cells = [label, str(p), _ms(r["off"]), _ms(r["off_median"]), _ms(r["on"]),
                     _ms(r["on_median"]), f"{r['on_median'] / r['off_median']:.3f}",
                     f"{r['spans']:.0f}", f"{r['span_ns'] / 1e3:.2f} µs",
                     f"{100 * share:.4f}%"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    print(f"\nload average at the end: {_load():.1f}\n")
    print("\n".join(lines))
    if flag is not None:
        print(f"\ntimeline off: each instrumented site reads one flag: {flag:.1f} ns a read")


def main() -> None:
    args = _parse()
    if args.worker:
        worker(args)
        return
    if args.timeline:
        print(f"machine: {_machine()}")
        print(f"model MLP {args.sizes}; {args.batch} samples per rank per step; "
              f"{args.steps} steps off and {args.steps} on, alternating")  # fmt: skip
        _timeline_table(args)
        return
    n_params = sum(a * b + b for a, b in itertools.pairwise(args.sizes))
    print(
        f"model MLP {args.sizes}: {n_params / 1e6:.2f} M float32 parameters "
        f"({4 * n_params / 2**20:.1f} MiB of gradients); {args.batch} samples per rank per step; "
        f"fastest of {args.steps} steps after {args.warmup} warm-up (median beside it)"
    )
    print(f"machine: {_machine()}")
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    native_base = None
    for row, (kind, label, _) in enumerate(_rows(args)):
        base = None
        ranks = sorted(set(args.ranks) | ({1} if row == 0 else set()))
        for p in ranks:
            r = _launch(args, row, p)
            if r is None:
                lines.append(f"| {kind}: {label} | {p} | failed |" + " |" * (len(HEAD) - 3))
                continue
            step = r["compute"] + r["wait"] + r["update"]
            if p == 1:
                base = step
                native_base = native_base or step
            lines.append(_line(kind, label, p, r, base or native_base))
            print(lines[-1], flush=True)
    print(f"\nload average at the end: {_load():.1f}\n")
    print("\n".join(lines))


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _machine() -> str:
    import multiprocessing

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {multiprocessing.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, load average {_load():.1f}"
    )


def _int_list(values: list[str]) -> list[int]:
    return [int(v) for s in values for v in s.split(",") if v]


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512, help="samples per rank per step")
    ap.add_argument(
        "--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 2048, 2048, 10]
    )
    ap.add_argument(
        "--ranks", nargs="+", default=["1", "2", "4"], help="rank counts: 1 2 4 or 1,2,4"
    )
    ap.add_argument("--bucket", default=None, help="bucket size of the 'default' rows (e.g. 4MiB)")
    ap.add_argument(
        "--sweep",
        type=lambda s: [v for v in s.split(",") if v],
        default=None,
        help="bucket sizes to compare instead of the standard rows, e.g. 1MiB,4MiB,25MiB",
    )
    ap.add_argument("--timeline", action="store_true", help="the timeline's cost per step")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--row", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.ranks = _int_list(args.ranks)
    return args


if __name__ == "__main__":
    main()
