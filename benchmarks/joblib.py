"""scikit-learn's n_jobs on the engines, peers measured in the same run (not a test).

GridSearchCV over an SVC on the digits bundled with scikit-learn, ``n_jobs=-1``:
joblib's own local backend (loky processes) vs ``with pool.joblib()`` (workbench: each
engine gets the data once per call) vs ipyparallel's plain joblib backend on the same
engines (a load-balanced view: the data travels with every task), and ``n_jobs=1``.
Each is warmed up once (imports on the workers), then timed; the median is printed.

    python benchmarks/joblib.py [--engines 2] [--repeat 3] [--rows 1797]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

# This file is named joblib.py: keep its folder off the path, or `import joblib` finds it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="wb-bench-"))

GRID = {"C": [0.1, 1.0, 10.0, 100.0], "gamma": [1e-4, 1e-3, 1e-2]}


def data(rows: int):
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    reps = -(-rows // len(X))
    return np.tile(X, (reps, 1))[:rows], np.tile(y, reps)[:rows]


def search(X, y, n_jobs: int):
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    return GridSearchCV(SVC(), GRID, cv=5, n_jobs=n_jobs).fit(X, y)


def timed(run, repeat: int) -> tuple[float, object]:
    run()  # warm-up: workers import scikit-learn
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1797, help="digits rows (tiled past 1797)")
    args = parser.parse_args()

    import joblib
    import numpy as np

    import workbench as wb

    X, y = data(args.rows)
    load = os.getloadavg()[0]
    print(f"GridSearchCV(SVC) on digits {X.shape}, {len(GRID['C']) * len(GRID['gamma'])} "
          f"candidates x 5 folds, {args.engines} workers, load average {load:.1f}")  # fmt: skip
    rows = []
    seq, ref = timed(lambda: search(X, y, 1), args.repeat)
    rows.append(("n_jobs=1 (in the notebook)", seq, ref, ""))
    with joblib.parallel_config(backend="loky", n_jobs=args.engines):
        t, out = timed(lambda: search(X, y, -1), args.repeat)
    rows.append((f"joblib loky, {args.engines} processes", t, out, ""))
    pool = wb.Pool.local(n=args.engines, progress=False)
    try:
        with wb.joblib(pool, progress=False) as backend:
            t, out = timed(lambda: search(X, y, -1), args.repeat)
        sent = backend.history[-1]["sent_bytes"]
        rows.append((f"workbench pool.joblib(), {args.engines} engines", t, out,
                     f"{sent / 2**20:.1f} MiB arrays sent"))  # fmt: skip
        view = pool.client.load_balanced_view([e.engine_id for e in pool.engines])
        view.register_joblib_backend(name="ipyparallel-plain")
        with warnings.catch_warnings(), joblib.parallel_config(backend="ipyparallel-plain"):
            warnings.simplefilter("ignore", DeprecationWarning)  # its apply_async
            t, out = timed(lambda: search(X, y, -1), args.repeat)
        rows.append((f"ipyparallel backend, {args.engines} engines", t, out,
                     f"X ({X.nbytes / 2**20:.1f} MiB) in every batch"))  # fmt: skip
    finally:
        pool.stop()
    print(f"\n| {'backend':<36} | {'seconds':>8} | {'vs n_jobs=1':>11} | same scores | note |")
    print(f"|{'-' * 38}|{'-' * 9}:|{'-' * 12}:|-------------|------|")
    for name, t, out, note in rows:
        same = np.array_equal(
            out.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"]
        )
        print(
            f"| {name:<36} | {t:8.2f} | {seq / t:10.2f}x | {'yes' if same else 'NO':<11} | {note} |"
        )


if __name__ == "__main__":
    main()
