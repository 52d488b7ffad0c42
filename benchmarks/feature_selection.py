"""Feature selection: workbench on p engines vs scikit-learn, measured in the same run.

1. Sequential forward selection on make_classification (default 20000 x 200) with a cheap
   estimator (GaussianNB, 5-fold CV): ``wb.select.sequential`` on p engines vs
   ``SequentialFeatureSelector`` with n_jobs=1 and n_jobs=p. Picks must be identical.
2. Univariate f_classif on a dask array streamed chunk by chunk on the engines (never
   materialised anywhere) vs scikit-learn's f_classif on the materialised numpy array.

    python benchmarks/feature_selection.py            # full size
    python benchmarks/feature_selection.py --quick    # a smaller problem, for a smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _peak_rss() -> int:
    import resource  # runs on the engines: import here

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sequential(args: argparse.Namespace, pool) -> list[tuple[str, float, str]]:
    from sklearn.datasets import make_classification
    from sklearn.feature_selection import SequentialFeatureSelector
    from sklearn.naive_bayes import GaussianNB

    import workbench as wb

    X, y = make_classification(
        n_samples=args.rows, n_features=args.features, n_informative=10, random_state=0
    )
    est = GaussianNB()
    k = args.pick
    # The first selection on fresh engines pays their imports (scikit-learn, numba caches):
    # measured apart, on a tiny problem, so the table compares steady-state selection.
    _, t_warm = _timed(
        lambda: wb.select.sequential(est, X[:200, :4], y[:200], n_features_to_select=1)
    )
    rows = [
        ("workbench first call on fresh engines (tiny problem)", t_warm, "warm-up, not compared")
    ]
    wb_res, t_wb = _timed(lambda: wb.select.sequential(est, X, y, n_features_to_select=k, cv=5))
    picks = wb_res.order_.tolist()
    for n_jobs in (1, pool.size):
        sfs = SequentialFeatureSelector(est, n_features_to_select=k, cv=5, n_jobs=n_jobs)
        sk, t = _timed(lambda sfs=sfs: sfs.fit(X, y))
        same = bool((sk.support_ == wb_res.support_).all())
        rows.append((f"scikit-learn n_jobs={n_jobs}", t, "same set" if same else "DIFFERENT"))
    rows.append((f"workbench {pool.size} engines", t_wb, f"order {picks}"))
    return rows


def univariate_dask(args: argparse.Namespace, pool) -> list[tuple[str, float, str]]:
    import dask.array as da
    from sklearn.feature_selection import f_classif

    import workbench as wb

    n, d, chunk = args.dask_rows, args.dask_features, args.dask_chunk
    rs = da.random.RandomState(0)
    labels = rs.randint(0, 3, size=n, chunks=chunk)
    X = rs.normal(size=(n, d), chunks=(chunk, d)) + labels[:, None] * np.linspace(0, 0.05, d)
    y = labels.compute()  # small: one value per row (X stays lazy: a graph, not data)
    res, t_wb = _timed(lambda: wb.select.univariate(X, y, "f_classif", k=10))
    rss = max(pool.run(_peak_rss))
    share = X.nbytes / pool.size
    dense, t_mat = _timed(lambda: X.compute())
    (sk, _), t_sk = _timed(lambda: f_classif(dense, y))
    err = float(np.max(np.abs(res.scores_ - sk) / np.abs(sk)))
    return [
        (
            f"workbench {pool.size} engines, dask {n}x{d} in {chunk}-row chunks",
            t_wb,
            f"engine peak RSS {rss / 2**20:.0f} MiB vs share {share / 2**20:.0f} MiB",
        ),
        ("dask .compute() into the notebook", t_mat, f"{X.nbytes / 2**20:.0f} MiB"),
        ("scikit-learn f_classif on it", t_sk, f"max rel. diff {err:.1e}"),
    ]


def _table(title: str, rows: list[tuple[str, float, str]], base: float | None) -> None:
    print(f"\n{title}")
    print(f"| {'run':<64} | {'seconds':>8} | {'speedup':>7} | note")
    print(f"|{'-' * 66}|{'-' * 10}|{'-' * 9}|------")
    for name, t, note in rows:
        speed = f"{base / t:.2f}" if base and not note.startswith("warm-up") else ""
        print(f"| {name:<64} | {t:8.2f} | {speed:>7} | {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small problem")
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.features, args.pick = 4000, 60, 3
        args.dask_rows, args.dask_features, args.dask_chunk = 200_000, 20, 20_000
    else:
        args.rows, args.features, args.pick = 20_000, 200, 4
        args.dask_rows, args.dask_features, args.dask_chunk = 4_000_000, 50, 100_000

    import workbench as wb

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    with wb.Pool.local(args.engines) as pool:
        if not args.skip_sequential:
            rows = sequential(args, pool)
            title = f"sequential forward, {args.rows} x {args.features}, pick {args.pick}, "
            _table(title + "GaussianNB, 5-fold CV", rows, rows[1][1])
            speedup, target = rows[1][1] / rows[-1][1], 0.8 * pool.size
            verdict = "met" if speedup >= target else "missed"
            print(f"speedup over n_jobs=1: {speedup:.2f} (target >= {target:.1f}: {verdict})")
        if not args.skip_dask:
            _table("univariate f_classif on a dask array", univariate_dask(args, pool), None)
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (other work on this machine adds noise)")


if __name__ == "__main__":
    main()
