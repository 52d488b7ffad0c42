"""workbench.linalg on a real 3-rank pool: placement, round trips, SVD/PCA/solves, notebook."""

from __future__ import annotations

import math
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from helpers import outputs_text, run_template

import workbench as wb
from workbench.linalg import Rows, routine

ROOT = Path(__file__).resolve().parent.parent


def _matrix(m: int, n: int, decay: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A = Q1 diag(s) Q2ᵀ with known, geometrically decaying singular values s."""
    rng = np.random.default_rng(seed)
    r = min(m, n)
    q1, _ = np.linalg.qr(rng.standard_normal((m, r)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = 10.0 ** (-decay * np.arange(r) / r)
    return (q1 * s) @ q2.T, s


def _subspace_gap(u: np.ndarray, v: np.ndarray) -> float:
    """Spectral distance between the column spaces of two orthonormal bases."""
    return float(np.linalg.norm(u @ u.T - v @ v.T, 2))


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


# -- placement and round trips -------------------------------------------------------------------
LAYOUTS = {
    "numpy": (23, 5, None),
    "ragged-chunks": (23, 5, (7, 3)),  # last row and column chunks ragged, not aligned with ranks
    "one-chunk": (23, 5, (23, 5)),
    "more-ranks-than-rows": (2, 4, (1, 4)),
    "vector": (17, None, (5,)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_scatter_to_dask_round_trip_is_bit_for_bit(live_pool, layout, dtype):
    m, n, chunks = LAYOUTS[layout]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((m,) if n is None else (m, n)).astype(dtype)
    source = x if chunks is None else da.from_array(x, chunks=chunks)
    D = wb.linalg.scatter(source)
    try:
        assert D.shape == x.shape and D.dtype == x.dtype
        assert D.pushed_bytes == x.nbytes and D.fetched_bytes == 0
        back = D.to_dask()
        assert back.chunks[0] == tuple(hi - lo for lo, hi in D.bounds)
        out = back.compute()
        assert out.dtype == x.dtype and out.tobytes() == x.tobytes()
        assert wb.linalg.gather(D).compute().tobytes() == x.tobytes()
        assert D.to_numpy().tobytes() == x.tobytes()
        assert any(D.key in line and "linalg" in line for line in live_pool.status().data)
        wb.linalg.free(back)  # the dask array finds its handle
        assert D.freed and D.key not in str(live_pool.status())
    finally:
        D.free()


def test_distributed_chunks_go_to_engines_without_the_notebook(live_pool, dask_client):
    x = da.random.default_rng(2).standard_normal((300, 40), chunks=(70, 15))
    x = dask_client.persist(x)
    expected = x.compute(scheduler=dask_client.get)

    def outgoing(dask_worker):
        return dask_worker.transfer_outgoing_bytes_total

    before = sum(dask_client.run(outgoing).values())
    D = wb.linalg.scatter(x)
    try:
        sent = sum(dask_client.run(outgoing).values()) - before
        assert D.source == "dask workers"
        assert D.pushed_bytes == 0  # no array bytes left the notebook process
        assert D.fetched_bytes >= x.nbytes  # whole chunks, some shared by two ranks
        assert sent == D.fetched_bytes  # ... and every one of them left a dask worker
        assert D.to_numpy().tobytes() == expected.tobytes()
        assert D.throughput > 0 and "from dask workers" in D.describe()
    finally:
        D.free()


def test_scatter_rejects_bad_input(live_pool):
    with pytest.raises(ValueError, match="1-D or 2-D"):
        wb.linalg.scatter(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="via"):
        wb.linalg.scatter(np.zeros((4, 2)), via="carrier-pigeon")
    with pytest.raises(ValueError, match="distributed"):
        wb.linalg.scatter(da.zeros((4, 2)), via="fetch")
    with pytest.raises(ValueError, match="contiguous row ranges"):
        wb.linalg.scatter(np.zeros((4, 2)), bounds=[(0, 2), (3, 4), (4, 4)])


# -- truncated SVD -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["gram", "tsqr", "auto"])
def test_exact_methods_match_numpy(live_pool, method):
    a, s_true = _matrix(120, 25)
    k = 6
    U, s, Vt = wb.linalg.truncated_svd(da.from_array(a, chunks=(31, 25)), k, method=method)
    assert isinstance(U, da.Array) and U.shape == (120, k)
    u = U.compute()
    assert np.max(np.abs(s - s_true[:k]) / s_true[:k]) <= 1e-8
    un, _, vtn = np.linalg.svd(a, full_matrices=False)
    assert _subspace_gap(u, un[:, :k]) <= 1e-8
    assert _subspace_gap(Vt.T, vtn[:k].T) <= 1e-8
    assert np.allclose((u * s) @ Vt, (un[:, :k] * s_true[:k]) @ vtn[:k], atol=1e-10)
    wb.linalg.free(U)


def test_auto_falls_back_to_tsqr_on_a_wide_spectrum(live_pool):
    a, s_true = _matrix(90, 20, decay=8.0)  # sigma_k / sigma_1 = 1e-4 * ...: gram loses digits
    D = wb.linalg.scatter(a)
    try:
        U, s, _ = wb.linalg.truncated_svd(D, 15)
        assert "tsqr" in U.source
        assert np.max(np.abs(s - s_true[:15]) / s_true[:15]) <= 1e-8
        U.free()
    finally:
        D.free()


def test_randomized_within_halko_bound(live_pool):
    m, n, k, p, q = 200, 60, 5, 10, 1
    a, s_true = _matrix(m, n, decay=3.0)
    D = wb.linalg.scatter(a)
    try:
        U, s, Vt = wb.linalg.truncated_svd(D, k, method="randomized", n_oversamples=p, n_iter=q)
        # Halko, Martinsson & Tropp (2011) eq. (1.11), failure probability <= 6 p^-p.
        bound = (1 + 11 * math.sqrt(k + p) * math.sqrt(min(m, n))) ** (1 / (2 * q + 1))
        bound *= s_true[k]
        assert np.all(np.abs(s - s_true[:k]) <= bound)  # Weyl: |σ̂ᵢ − σᵢ| ≤ ‖A − QQᵀA‖
        residual = np.linalg.norm(a - (U.to_numpy() * s) @ Vt, 2)
        assert residual <= s_true[k] + bound
        U.free()
    finally:
        D.free()


def test_wide_matrices(live_pool):
    a, s_true = _matrix(30, 80, decay=4.0)
    U, s, Vt = wb.linalg.truncated_svd(a, 4, n_iter=6)
    assert U.shape == (30, 4) and Vt.shape == (4, 80)
    assert np.max(np.abs(s - s_true[:4]) / s_true[:4]) <= 1e-6
    wb.linalg.free(U)
    for method in ("gram", "tsqr"):
        with pytest.raises(ValueError, match=r"30 x 80.*randomized"):
            wb.linalg.truncated_svd(a, 4, method=method)


def test_more_ranks_than_rows(live_pool):
    a = np.array([[3.0, 1.0], [0.0, 2.0]])  # 2 rows on 3 ranks: rank 2 holds none
    for method in ("gram", "tsqr", "randomized"):
        U, s, _ = wb.linalg.truncated_svd(a, 2, method=method)
        assert np.allclose(s, np.linalg.svd(a, compute_uv=False), rtol=1e-10, atol=0)
        wb.linalg.free(U)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones((5, 3)), 4), "1 <= k <= min"),
        ((np.ones((5, 3)), 0), "1 <= k <= min"),
        ((np.ones((5, 3)), -1), "1 <= k <= min"),
        ((np.ones((5, 3, 2)), 1), "2-D"),
        ((np.ones(5), 1), "2-D"),
    ],
)
def test_svd_rejects_bad_input(live_pool, args, match):
    with pytest.raises(ValueError, match=match):
        wb.linalg.truncated_svd(*args)


def test_svd_rejects_unknown_method(live_pool):
    with pytest.raises(ValueError, match="unknown method 'lanczos'"):
        wb.linalg.truncated_svd(np.ones((5, 3)), 1, method="lanczos")


# -- PCA and solves ------------------------------------------------------------------------------
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_matches_scikit_learn(live_pool, whiten):
    from sklearn.decomposition import PCA

    a, _ = _matrix(150, 12, decay=1.5)
    a = a + np.arange(12)  # a mean to remove
    ref = PCA(4, svd_solver="full", whiten=whiten).fit(a)
    res = wb.linalg.pca(da.from_array(a, chunks=(40, 12)), 4, whiten=whiten)
    assert np.allclose(res.mean, ref.mean_, atol=1e-12)
    assert np.allclose(res.components, ref.components_, atol=1e-8)
    assert np.allclose(res.explained_variance, ref.explained_variance_, rtol=1e-8)
    assert np.allclose(res.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-8)
    assert np.allclose(res.scores.compute(), ref.transform(a), atol=1e-8)
    wb.linalg.free(res.scores)


def test_lstsq_and_cg_match_numpy(live_pool):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((100, 8))
    b = rng.standard_normal(100)
    D = wb.linalg.scatter(a)
    try:
        exact = np.linalg.lstsq(a, b, rcond=None)[0]
        ridge = np.linalg.solve(a.T @ a + 0.5 * np.eye(8), a.T @ b)
        assert np.allclose(wb.linalg.lstsq(D, b).x, exact, atol=1e-12)
        assert np.allclose(wb.linalg.lstsq(D, b, alpha=0.5).x, ridge, atol=1e-12)
        assert np.allclose(wb.linalg.lstsq(D, b, alpha=0.5, method="normal").x, ridge, atol=1e-12)
        sol = wb.linalg.cg(D, da.from_array(b, chunks=30), alpha=0.5)
        assert np.allclose(sol.x, ridge, atol=1e-8) and 1 <= sol.iterations <= 16
        assert math.isclose(sol.residual_norm, np.linalg.norm(a @ ridge - b), rel_tol=1e-8)
        B = rng.standard_normal((100, 2))
        assert np.allclose(wb.linalg.lstsq(a, B).x, np.linalg.lstsq(a, B, rcond=None)[0])
        with pytest.raises(ValueError, match="b have A's 100 rows"):
            wb.linalg.lstsq(D, b[:50])
        with pytest.raises(ValueError, match="unknown method"):
            wb.linalg.lstsq(D, b, method="svd")
    finally:
        D.free()
    assert D.key not in str(live_pool.status())
    assert not [line for line in live_pool.status().data if "matrix-" in line]


# -- registry ------------------------------------------------------------------------------------
@routine("test.scale_rows")
def scale_rows(block, comm, *, factor):
    """A plug-in: scaled rows stay distributed, the global column sums come back."""
    return Rows(block * factor), wb.allreduce(block.sum(axis=0), op="sum") * factor


def test_a_routine_is_one_function(live_pool):
    assert {"svd", "pca", "lstsq", "cg", "test.scale_rows"} <= set(wb.linalg.routines())
    a = np.arange(14.0).reshape(7, 2)
    D = wb.linalg.scatter(a)
    try:
        scaled, sums = wb.linalg.run("test.scale_rows", D, factor=2.0)
        assert np.array_equal(sums, 2 * a.sum(axis=0))
        assert scaled.bounds == D.bounds and np.array_equal(scaled.to_dask().compute(), 2 * a)
        scaled.free()
    finally:
        D.free()
    with pytest.raises(ValueError, match="unknown routine 'nope'"):
        wb.linalg.run("nope", a)


# -- the template notebook -----------------------------------------------------------------------
@pytest.mark.slow
def test_svd_offload_notebook(tmp_path):
    text = outputs_text(run_template("svd-offload.ipynb", tmp_path, "n_engines=2"))
    assert "started 2 MPI engines" in text
    error = float(text.split("max relative error of singular values:")[1].split()[0])
    assert error <= 1e-8
    assert "scatter:" in text and "GB/s" in text and "pool stopped" in text
