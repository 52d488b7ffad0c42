"""workbench.train without engines: gradients, input checks, bucket plans, the backward-step
protocol, samplers and checkpoint files, in the test process."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import workbench.train as wt


def test_mlp_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    model = wt.MLP([5, 7, 6, 3], seed=1, dtype=np.float64)
    X, y = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    order = []
    handle = model.register_grad_hook(order.append)
    model.loss_and_grad(X, y)
    handle.remove()
    assert order == list(reversed(range(len(model.params))))  # last layer first
    for p, g in zip(model.params, model.grads, strict=True):
        flat, numeric = p.reshape(-1), np.empty(p.size)
        for k in range(p.size):
            old = flat[k]
            flat[k] = old + 1e-6
            up = model.loss_and_grad(X, y)[0]
            flat[k] = old - 1e-6
            down = model.loss_and_grad(X, y)[0]
            flat[k] = old
            numeric[k] = (up - down) / 2e-6
        model.loss_and_grad(X, y)
        np.testing.assert_allclose(g.reshape(-1), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wt.MLP([5]), "at least two positive integers"),
        (lambda: wt.MLP([5, 0, 2]), "at least two positive integers"),
        (lambda: wt.MLP([5, 2]).loss_and_grad(np.zeros((3, 4)), [0, 1, 0]), r"\(n, 5\)"),
        (lambda: wt.MLP([2, 3]).loss_and_grad(np.zeros((2, 2)), [0, 3]), "0..2"),
        (lambda: wt.MLP([2, 3]).loss_and_grad(np.zeros((2, 2)), [0.5, 1]), "integers"),
        (lambda: wt.SGD(wt.MLP([2, 3]), lr=0), "lr must be a positive"),
        (lambda: wt.ShardSampler(100, 64, rank=0, size=3), "multiple of 3"),
        (lambda: wt.ShardSampler(10, 12, rank=0, size=1), "larger than"),
        (lambda: wt.shard(np.zeros(4), rank=2, size=2), "rank must be in 0..1"),
        (lambda: wt.fit(wt.MLP([3, 2]), np.zeros((4, 2)), np.zeros(4, int)), r"\(n, 3\)"),
    ],
)
def test_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bucket_plan_and_size_setting(monkeypatch):
    from mpi4py import MPI

    assert wt.plan_buckets([40, 4, 40, 4], 48) == [[3, 2, 1], [0]]
    assert wt.plan_buckets([40, 4, 100, 4], 48) == [[3], [2], [1, 0]]  # too big: alone
    assert wt.plan_buckets([40, 4, 40, 4], 100, kinds="abab") == [[3, 1], [2, 0]]  # one dtype
    model = wt.MLP([4, 3])
    for bad in (0, -5, "0MiB", "lots"):
        with pytest.raises(ValueError, match="bucket_bytes"):
            wt.DistributedOptimizer(model, lr=0.1, bucket_bytes=bad, comm=MPI.COMM_SELF)
    monkeypatch.setenv(wt.ENV_BUCKET, "0")
    with pytest.raises(ValueError, match=wt.ENV_BUCKET):
        wt.DistributedOptimizer(model, lr=0.1, comm=MPI.COMM_SELF)
    monkeypatch.setenv(wt.ENV_BUCKET, "16")
    opt = wt.DistributedOptimizer(model, lr=0.1, comm=MPI.COMM_SELF)
    assert opt.bucket_bytes == 16 and opt.buckets == [[1], [0]]
    opt.close()
    with pytest.raises(ValueError, match="lr= is required"):
        wt.DistributedOptimizer(model, comm=MPI.COMM_SELF)
    with pytest.raises(TypeError, match="DistributedOptimizer takes"):
        wt.DistributedOptimizer(object(), lr=0.1, comm=MPI.COMM_SELF)


def test_backward_step_protocol():
    from mpi4py import MPI

    model = wt.MLP([4, 3], dtype=np.float64)
    opt = wt.DistributedOptimizer(model, lr=0.1, comm=MPI.COMM_SELF)
    X, y = np.ones((2, 4)), np.array([0, 2])
    model.loss_and_grad(X, y)
    with pytest.raises(RuntimeError, match="became ready twice before step"):
        model.loss_and_grad(X, y)
    opt.step()
    waits = []
    reducer_wait = opt.reducer.wait
    opt.reducer.wait = lambda: (waits.append(1), reducer_wait())[1]
    model.loss_and_grad(X, y)
    opt.synchronize()  # averaged now: step() must not reduce a second time
    opt.step()
    assert waits == [1]
    model.loss_and_grad(X, y)
    opt.step()
    assert waits == [1, 1]
    opt.close()


def test_sampler_and_shard_split_disjointly():
    for size in (1, 2, 3):
        parts = [wt.ShardSampler(100, 12, seed=5, rank=r, size=size) for r in range(size)]
        for s in parts:
            s.set_epoch(1)
        steps = [list(s) for s in parts]
        assert all(len(st) == 100 // 12 for st in steps)
        for k in range(len(steps[0])):
            whole = np.concatenate([st[k] for st in steps])
            assert len(set(whole)) == 12
            np.testing.assert_array_equal(whole, parts[0].global_batches()[k])
        shards = [wt.shard(np.arange(10), rank=r, size=size, seed=1) for r in range(size)]
        assert sorted(np.concatenate(shards)) == list(range(10))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    s = wt.ShardSampler(100, 10, seed=5, rank=0, size=1)
    first = s.global_batches()
    s.set_epoch(1)
    assert not np.array_equal(first, s.global_batches())
    s.set_epoch(0)
    np.testing.assert_array_equal(first, s.global_batches())
    Xs, ys = wt.shard(np.arange(10)[:, None], np.arange(10), rank=1, size=2)
    np.testing.assert_array_equal(Xs[:, 0], ys)


def test_checkpoint_files(tmp_path):
    from mpi4py import MPI

    comm = MPI.COMM_SELF
    model = wt.MLP([3, 2])
    opt = wt.SGD(model, lr=0.1, momentum=0.5)
    path = tmp_path / "c.pkl"
    assert wt.resume(path, model, opt, missing_ok=True, comm=comm) == 0
    with pytest.raises(FileNotFoundError):
        wt.resume(path, model, opt, comm=comm)
    wt.save_checkpoint(path, model, opt, epoch=3, extra={"note": "x"}, comm=comm)
    state = wt.load_checkpoint(path, comm=comm)
    assert state["epoch"] == 3 and state["extra"] == {"note": "x"} and state["ranks"] == 1
    assert os.listdir(tmp_path) == ["c.pkl"]
    with pytest.raises(ValueError, match=r"sizes \[3, 2\]"):
        wt.resume(path, wt.MLP([3, 4]), opt, comm=comm)
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x05N.")
    with pytest.raises(ValueError, match=r"not a workbench\.train checkpoint"):
        wt.load_checkpoint(tmp_path / "junk.pkl", comm=comm)
    with pytest.raises(FileNotFoundError):
        wt.save_checkpoint(tmp_path / "no" / "c.pkl", model, opt, epoch=1, comm=comm)


def test_missing_torch_names_the_install(monkeypatch):
    from workbench.train._torch import require_torch

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        require_torch()
