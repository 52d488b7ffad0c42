"""Data placed on the ranks once: row blocks, broadcast objects, freeing, status listing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workbench.data import local, row_bounds


def _block_info(key):
    import workbench as wb

    block = wb.data.local(key)
    return block.shape, float(block.sum()), block.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(("n", "p"), [(10, 3), (2, 3), (0, 3), (9, 3)])
def test_row_bounds_cover_rows_once(n, p):
    bounds = row_bounds(n, p)
    assert len(bounds) == p and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_scatter_rows_and_gather_back(live_pool):
    x = np.arange(11 * 4, dtype=np.float32).reshape(11, 4)
    handle = live_pool.scatter(x)
    try:
        infos = live_pool.run(_block_info, handle.key)
        assert [i[0] for i in infos] == [(4, 4), (4, 4), (3, 4)]
        assert all(i[2] for i in infos)
        for (lo, hi), info in zip(handle.bounds, infos, strict=True):
            assert info[1] == float(x[lo:hi].sum())
        back = handle.to_numpy()
        assert back.dtype == np.float32 and np.array_equal(back, x)
        assert handle.nbytes == x.nbytes and handle.throughput > 0
        assert any(handle.key in line for line in live_pool.status().data)
    finally:
        handle.free()
    assert handle.key not in str(live_pool.status())
    with pytest.raises(RuntimeError, match="freed"):
        handle.to_numpy()
    with pytest.raises(Exception, match="no data"):
        live_pool.run(_block_info, handle.key)


def test_broadcast_object(live_pool):
    handle = live_pool.broadcast({"alpha": 0.5}, key="params-test")
    try:
        assert live_pool.run(local, "params-test") == [{"alpha": 0.5}] * live_pool.size
        assert "params-test: dict on every rank" in handle.describe()
    finally:
        handle.free()


def test_scatter_rejects_scalar(live_pool):
    with pytest.raises(ValueError, match="at least one dimension"):
        live_pool.scatter(np.float64(3.0))
