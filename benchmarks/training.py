"""Data-parallel training step: compute vs communication, p = 1 and 2, with a peer.

    python benchmarks/training.py [--steps 15] [--batch 512] [--sizes 1024,2048,2048,10]

Each configuration runs under ``mpiexec -n P`` with one BLAS/torch thread per rank
(weak scaling: ``--batch`` samples per rank per step). Reported: the phases of the
fastest of ``--steps`` steps after warm-up (on a shared machine other load only ever
slows a step down), with the median step time beside it:

* compute: forward + backward (with overlap this includes launching buckets);
* wait: time ``step()`` blocks for the averaged gradients (communication not hidden);
* update: the optimizer update;
* allreduce: one synchronous ``wb.allreduce`` of all gradients (the cost if nothing hid it).

Rows: the numpy MLP on ``wb.train.DistributedOptimizer`` one allreduce per tensor
(no bucketing), 25 MiB buckets reduced after backward (bucketing, no overlap) and with
overlap; the same model in PyTorch on DistributedOptimizer; and the peers in the same
run: PyTorch DDP (gloo, loopback, 25 MiB buckets; compute measured under ``no_sync``)
and a Horovod-like loop calling mpi4py's native ``Allreduce`` per gradient.
Scaling efficiency = step(p=1) / step(p=2) of the same row.
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
BUCKET = 25 << 20
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
ROWS = [
    ("numpy", "per-tensor, no overlap", {"bucket_bytes": 1, "overlap": False}),
    ("numpy", "25 MiB buckets, no overlap", {"bucket_bytes": BUCKET, "overlap": False}),
    ("numpy", "25 MiB buckets + overlap", {"bucket_bytes": BUCKET, "overlap": True}),
    ("numpy", "4 MiB buckets + overlap", {"bucket_bytes": 4 << 20, "overlap": True}),
    ("mpi4py", "peer: native Allreduce per tensor", {}),
    ("torch", "25 MiB buckets + overlap", {"bucket_bytes": BUCKET, "overlap": True}),
    ("ddp", "peer: torch DDP gloo 25 MiB", {}),
]


# -- worker side (one MPI rank) ------------------------------------------------------------------
def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _summary(samples: dict[str, list[float]], comm, extra: dict) -> dict | None:
    """The fastest step (slowest rank's phases), to see past other load; on rank 0.

    ``allreduce`` is the fastest synchronous reduction of all gradients.
    """
    gathered = comm.gather(samples, root=0)
    if comm.Get_rank() != 0:
        return None
    phases = ("compute", "wait", "update")
    totals = [[sum(g[k][s] for k in phases) for g in gathered] for s in range(len(samples["wait"]))]
    best = min(range(len(totals)), key=lambda s: max(totals[s]))
    rank = max(range(len(gathered)), key=lambda r: totals[best][r])
    out = {k: gathered[rank][k][best] for k in phases}
    out["allreduce"] = min(min(g["allreduce"]) for g in gathered)
    out["median_step"] = statistics.median(max(t) for t in totals)
    return out | extra


def _numpy_worker(args, comm, kind: str, opts: dict) -> dict | None:
    import workbench as wb
    from workbench import train

    rng = np.random.default_rng(comm.Get_rank())
    X = rng.standard_normal((args.batch, args.sizes[0])).astype(np.float32)
    y = rng.integers(0, args.sizes[-1], args.batch)
    model = train.MLP(args.sizes, seed=0)
    train.broadcast_parameters(model, comm=comm)
    if kind == "numpy":
        opt = train.DistributedOptimizer(train.SGD(model, lr=1e-3), comm=comm, **opts)
    else:  # Horovod-like peer: native MPI Allreduce of each gradient after backward
        opt = train.SGD(model, lr=1e-3)
    samples: dict[str, list[float]] = {"compute": [], "wait": [], "update": [], "allreduce": []}
    p = comm.Get_size()
    for step in range(args.warmup + args.steps):
        comm.Barrier()
        t0 = time.perf_counter()
        model.loss_and_grad(X, y)
        t1 = time.perf_counter()
        if kind == "numpy":
            opt.synchronize()
        else:
            from mpi4py import MPI

            for g in model.grads:
                comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
                g /= p
        t2 = time.perf_counter()
        (opt.optimizer if kind == "numpy" else opt).step()  # only the update
        t3 = time.perf_counter()
        comm.Barrier()
        full = _timed(lambda: wb.allreduce(model.grads, "mean", comm=comm, out=model.grads))
        if step >= args.warmup:
            for k, v in zip(samples, (t1 - t0, t2 - t1, t3 - t2, full), strict=True):
                samples[k].append(v)
    if kind == "numpy":
        opt.close()
        extra = {"buckets": len(opt.buckets)}
    else:
        extra = {"buckets": len(model.params)}
    return _summary(samples, comm, extra)


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
    samples: dict[str, list[float]] = {"compute": [], "wait": [], "update": [], "allreduce": []}

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
            for k, v in zip(samples, (compute, wait, update, full), strict=True):
                samples[k].append(v)
    if kind == "torch":
        opt.close()
        return _summary(samples, comm, {"buckets": len(opt.buckets)})
    import torch.distributed as dist

    dist.destroy_process_group()
    return _summary(samples, comm, {"buckets": "-"})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(args) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    kind, _, opts = ROWS[args.row]
    run = _numpy_worker if kind in ("numpy", "mpi4py") else _torch_worker
    result = run(args, comm, kind, opts)
    if result is not None:
        print("RESULT " + json.dumps(result), flush=True)


# -- driver ----------------------------------------------------------------------------------------
def _launch(args, row: int, p: int) -> dict | None:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec, "-n", str(p), sys.executable, HERE, "--worker", "--row", str(row)]
    cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
    cmd += ["--sizes", ",".join(map(str, args.sizes))]
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


def main() -> None:
    args = _parse()
    if args.worker:
        worker(args)
        return
    n_params = sum(a * b + b for a, b in itertools.pairwise(args.sizes))
    print(
        f"model MLP {args.sizes}: {n_params / 1e6:.2f} M float32 parameters "
        f"({4 * n_params / 2**20:.1f} MiB of gradients); {args.batch} samples per rank per step; "
        f"fastest of {args.steps} steps after {args.warmup} warm-up (median beside it)"
    )
    print(f"machine: {_machine()}")
    head = [
        "model / reduction",
        "p",
        "step ms",
        "median step",
        "compute",
        "wait",
        "update",
        "allreduce",
        "wait share",
        "allreduce share",
        "buckets",
        "efficiency",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, (kind, label, _) in enumerate(ROWS):
        base = None
        for p in args.ranks:
            r = _launch(args, row, p)
            if r is None:
                lines.append(f"| {kind}: {label} | {p} | failed |" + " |" * (len(head) - 3))
                continue
            step = r["compute"] + r["wait"] + r["update"]
            base = step if p == 1 else base
            eff = f"{100 * base / step:.0f}%" if base and p > 1 else "-"
            lines.append(
                f"| {kind}: {label} | {p} | {_ms(step)} | {_ms(r['median_step'])} "
                f"| {_ms(r['compute'])} | {_ms(r['wait'])} "
                f"| {_ms(r['update'])} | {_ms(r['allreduce'])} | {100 * r['wait'] / step:.1f}% "
                f"| {100 * r['allreduce'] / step:.1f}% | {r['buckets']} | {eff} |"
            )
            print(lines[-1], flush=True)
    print()
    print("\n".join(lines))


def _machine() -> str:
    import multiprocessing

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {multiprocessing.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, load average {load:.1f}"
    )


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512, help="samples per rank per step")
    ap.add_argument(
        "--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 2048, 2048, 10]
    )
    ap.add_argument("--ranks", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--row", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_args()


if __name__ == "__main__":
    main()
