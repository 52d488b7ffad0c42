"""Sweep benchmarks, peers measured in the same run (not part of the test suite).

1. Per-trial overhead of trivial trials on 2 engines: workbench ``sweep`` vs a plain
   ipyparallel load-balanced map on the same engines vs Optuna's in-process
   ``study.optimize`` (n_jobs=1 and 2) vs Ray Tune (if installed).
2. ASHA vs no scheduler (same seeded random configurations) on a real model, scikit-learn's
   SGDClassifier on the bundled digits: wall time until a trial reaches the target
   validation accuracy, and for the whole sweep.

    python benchmarks/sweep.py [--trials 1000] [--ray-trials 200] [--engines 2]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time

os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="wb-bench-"))


def noop(config, report):
    return config["x"]


def digits_objective(config, report):
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    model = SGDClassifier(loss=config["loss"], alpha=config["alpha"], learning_rate="constant",
                          eta0=config["eta0"], random_state=0)  # fmt: skip
    classes = np.unique(y)
    for epoch in range(1, config["epochs"] + 1):
        model.partial_fit(X_train, y_train, classes=classes)
        report(step=epoch, accuracy=model.score(X_val, y_val))


def bench_workbench(pool, n: int, folder: str) -> float:
    from workbench.sweep import sweep, uniform

    db = os.path.join(folder, "overhead.db")
    sweep(noop, {"x": uniform(0, 1)}, n_trials=20, storage=db, name="warm", show=False)
    start = time.perf_counter()
    sweep(noop, {"x": uniform(0, 1)}, n_trials=n, storage=db, name="run", show=False, seed=0)
    return (time.perf_counter() - start) / n


def bench_ipyparallel(pool, n: int) -> float:
    view = pool.client.load_balanced_view([e.engine_id for e in pool.engines])
    args = [{"x": 0.5}] * n
    view.map_sync(noop, args[:20], [None] * 20)
    start = time.perf_counter()
    view.map_sync(noop, args, [None] * n)
    return (time.perf_counter() - start) / n


def bench_optuna(n: int, n_jobs: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n, n_jobs=n_jobs)
    return (time.perf_counter() - start) / n


def bench_ray(n: int, cpus: int) -> float | str:
    try:
        import ray
        from ray import tune
    except ImportError:
        return "not installed"
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        tuner = tune.Tuner(
            lambda config: {"x": config["x"]},
            param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(num_samples=n, metric="x", mode="max"),
            run_config=tune.RunConfig(verbose=0, storage_path=tempfile.mkdtemp()),
        )
        start = time.perf_counter()
        tuner.fit()
        return (time.perf_counter() - start) / n
    finally:
        ray.shutdown()


def asha_vs_fifo(pool, n_trials: int, epochs: int, target: float, folder: str) -> list[tuple]:
    from workbench.sweep import ASHA, choice, loguniform, sweep

    space = {"alpha": loguniform(1e-6, 1e-1), "eta0": loguniform(1e-4, 1.0),
             "loss": choice(["hinge", "log_loss", "modified_huber"]), "epochs": epochs}  # fmt: skip
    db = os.path.join(folder, "asha.db")
    rows = []
    for label, scheduler in (
        ("random, no scheduler", None),
        ("random + ASHA", ASHA(min_resource=1, max_resource=epochs, reduction_factor=3)),
    ):
        t0 = time.time()
        result = sweep(digits_objective, space, n_trials=n_trials, scheduler=scheduler,
                       metric="accuracy", storage=db, name=label, seed=1, show=False)  # fmt: skip
        wall = time.time() - t0
        with sqlite3.connect(db) as c:
            hits = c.execute(
                "SELECT min(t) FROM reports WHERE sweep = ? AND json_extract(metrics, "
                "'$.accuracy') >= ?",
                (label, target),
            ).fetchone()[0]
        to_target = None if hits is None else hits - t0
        counts = result.counts()
        rows.append((label, to_target, wall, result.best_value, counts.get("pruned", 0)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--ray-trials", type=int, default=20)
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--asha-trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=27)
    parser.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args(argv)
    import workbench as wb

    folder = tempfile.mkdtemp(prefix="wb-sweep-bench-")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}")  # fmt: skip
    pool = wb.Pool.local(args.engines)
    try:
        n = args.trials
        results = [
            (f"workbench sweep ({args.engines} engines)", bench_workbench(pool, n, folder), n),
            (
                f"ipyparallel load-balanced map ({args.engines} engines)",
                bench_ipyparallel(pool, n),
                n,
            ),
            ("optuna study.optimize, in process, n_jobs=1", bench_optuna(n, 1), n),
            ("optuna study.optimize, in process, n_jobs=2", bench_optuna(n, 2), n),
        ]
        asha = asha_vs_fifo(pool, args.asha_trials, args.epochs, args.target, folder)
    finally:
        pool.stop()
    ray = bench_ray(args.ray_trials, args.engines)
    results.append((f"ray tune Tuner.fit ({args.engines} CPUs)", ray, args.ray_trials))
    print("\n## per-trial overhead, trivial trials (target <= 2 ms for workbench)\n")
    print("| runner | trials | ms per trial |\n|---|---:|---:|")
    for label, value, count in results:
        shown = f"{value * 1e3:.2f}" if isinstance(value, float) else value
        print(f"| {label} | {count} | {shown} |")
    what = f"{args.asha_trials} trials of {args.epochs} epochs, {args.engines} engines"
    print(f"\n## ASHA vs no scheduler: SGDClassifier on digits, {what}, target {args.target}\n")
    print("| sweep | time to target (s) | total wall (s) | best accuracy | pruned |")
    print("|---|---:|---:|---:|---:|")
    for label, to_target, wall, best, pruned in asha:
        tt = "not reached" if to_target is None else f"{to_target:.1f}"
        print(f"| {label} | {tt} | {wall:.1f} | {best:.4f} | {pruned} |")


if __name__ == "__main__":
    main()
