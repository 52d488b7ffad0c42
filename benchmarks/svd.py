"""Rank-k truncated SVD of a low-rank-plus-noise matrix: workbench offload vs dask vs scikit-learn.

All in one run, on the same cores: the matrix lives on a dask LocalCluster (one thread
per worker, as many workers as engines). Workbench times include moving A to the engines
(fetched from the dask workers) and U back to the cluster; dask times include computing
U on the cluster; scikit-learn runs in this process on a numpy copy. Accuracy is the
max relative error of the top-k singular values against numpy's full SVD.

    python benchmarks/svd.py            # 50000 x 500, k = 20
    python benchmarks/svd.py --quick    # 10000 x 200
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per engine / dask worker, no oversubscription

import numpy as np  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    import workbench as wb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10000 x 200 instead of 50000 x 500")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    m, n = (10_000, 200) if args.quick else (50_000, 500)
    k, cores = args.k, args.cores
    chunk = m // 10

    cluster = LocalCluster(
        n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    pool = wb.Pool.local(cores)
    try:
        rng = da.random.default_rng(0)
        left = rng.standard_normal((m, k), chunks=(chunk, k)) * 0.8 ** np.arange(k)
        A = left @ rng.standard_normal((k, n)) + 0.1 * rng.standard_normal(
            (m, n), chunks=(chunk, n)
        )
        A = client.persist(A)
        wait(A)
        a_np = A.compute()
        with threadpool_limits(cores):
            t_np, s_ref = _timed(lambda: np.linalg.svd(a_np, compute_uv=False)[:k])

        def err(s: np.ndarray) -> float:
            return float(np.max(np.abs(np.asarray(s)[:k] - s_ref) / s_ref))

        rows: list[tuple[str, float, float, str]] = []

        def offload(method: str) -> tuple[float, float, str]:
            t0 = time.perf_counter()
            D = wb.linalg.scatter(A)
            U, s, _ = wb.linalg.truncated_svd(D, k, method=method)
            t_svd = time.perf_counter()
            u = client.persist(U.to_dask())  # U back to the dask workers
            wait(u)
            total = time.perf_counter() - t0
            back = time.perf_counter() - t_svd
            note = (
                f"scatter {D.seconds:.2f} s ({D.throughput / 1e9:.2f} GB/s, "
                f"notebook pushed {D.pushed_bytes} B), U back {back:.2f} s, {U.source}"
            )
            D.free()
            U.free()
            return total, err(s), note

        offload("randomized")  # warm-up: engines connect to the scheduler, workers to the pool
        for method in ("auto", "tsqr", "randomized"):
            total, e, note = offload(method)
            rows.append((f"workbench offload ({method})", total, e, note))

        for q in (0, 2):

            def compressed(q: int = q) -> np.ndarray:
                u, s, v = da.linalg.svd_compressed(A, k, n_power_iter=q, seed=0)
                u, s, v = client.persist([u, s, v])
                wait([u, s, v])
                return s.compute()

            t, s = _timed(compressed)
            rows.append((f"dask svd_compressed (n_power_iter={q})", t, err(s), "on the cluster"))

        def tsqr() -> np.ndarray:
            u, s, v = da.linalg.svd(A)
            u, s, v = client.persist([u[:, :k], s[:k], v[:k]])
            wait([u, s, v])
            return s.compute()

        t, s = _timed(tsqr)
        rows.append(("dask svd (tsqr)", t, err(s), "on the cluster"))

        with threadpool_limits(cores):
            t, (_, s, _) = _timed(lambda: randomized_svd(a_np, k, random_state=0))
        rows.append(("sklearn randomized_svd", t, err(s), f"one process, {cores} BLAS threads"))
        rows.append(("numpy full svd (reference)", t_np, 0.0, f"{cores} BLAS threads"))

        D = wb.linalg.scatter(A)
        back_t, _ = _timed(lambda: wait(client.persist(D.to_dask())))
        D.free()
        gbps_in, gbps_out = D.throughput / 1e9, A.nbytes / back_t / 1e9

        dasks = [(t, e) for name, t, e, _ in rows if name.startswith("dask")]

        def speedup(t: float, e: float) -> str:
            """Over the fastest dask method at least as accurate (below 1e-10 counts as exact)."""
            fair = [td for td, ed in dasks if ed <= max(e, 1e-10)]
            return f"{min(fair) / t:10.2f}x" if fair else f"{'-':>11}"

        print(f"\n{m} x {n} float64 ({A.nbytes / 1e6:.0f} MB), k = {k}, {cores} cores")
        head = f"{'method':<38} {'time s':>7} {'vs dask*':>11} {'max rel err s':>14}  notes"
        print(head)
        for name, t, e, note in rows:
            print(f"{name:<38} {t:7.2f} {speedup(t, e)} {e:14.1e}  {note}")
        print("* speed-up over the fastest dask method with equal or better accuracy")
        print(
            f"\ntransfer of A: dask workers -> engines {gbps_in:.2f} GB/s, "
            f"engines -> dask workers {gbps_out:.2f} GB/s (dask {dask.__version__})"
        )
    finally:
        pool.stop()
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
