"""workbench.train: data-parallel SGD on the shared allreduce, at 2 and 3 ranks.

Multi-rank cases run on the session's real 3-rank pool; 2-rank cases use the first two
engines on a sub-communicator (``Create_group`` is collective over those two only).
Single-process references and input checks run in the test process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import outputs_text, run_template

import workbench.train as wt
from workbench.comm import AllreduceMismatchError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "distributed-training.ipynb"
RANKS = [2, 3]
N, D, CLASSES, BATCH = 240, 12, 4, 48  # 48 splits over 1, 2 and 3 ranks

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(
    torch is None,
    reason="torch not installed: pip install torch (CPU wheel) to test the PyTorch paths",
)


# -- helpers that run on the engines -------------------------------------------------------
_COMMS: dict[int, object] = {}


def _comm(n: int):
    """The first ``n`` ranks of the world (cached: engines keep their module state)."""
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    if n == world.Get_size():
        return world
    if n not in _COMMS:
        _COMMS[n] = world.Create_group(world.Get_group().Incl(list(range(n))))
    return _COMMS[n]


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _data(dtype=np.float64):
    rng = np.random.default_rng(42)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = (X[:, :CLASSES].argmax(axis=1) + (rng.random(N) < 0.1)) % CLASSES
    return X, y


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def _on(pool, n: int, fn, *args, timeout: float = 90):
    ranks = list(range(n))
    return pool.apply(fn, (n, *args), ranks=ranks, timeout=timeout, stream=False, progress=False)


def _in_buckets(opt, grads) -> bool:
    """Every gradient is a view into its bucket's range of symmetric memory."""
    from workbench.comm import is_symmetric

    return all(
        is_symmetric(g) and np.shares_memory(np.asarray(g), b.flat)
        for b in opt.reducer.buckets
        for g in (grads[i] for i in b.indices)
    )


def _numpy_steps(n, epochs, bucket_bytes, overlap, rebind=False):
    """Train on ``n`` ranks; per step: weights identical everywhere, gradients still the
    bucket views. ``rebind``: the last rank replaces its gradients by copies before each
    step (they must be copied into the buckets, not lost)."""
    from workbench.comm import is_symmetric

    comm = _comm(n)
    X, y = _data()
    model = wt.MLP([D, 16, 8, CLASSES], seed=comm.rank, dtype=np.float64)
    wt.broadcast_parameters(model, comm=comm)
    opt = wt.DistributedOptimizer(
        wt.SGD(model, lr=0.2, momentum=0.9, weight_decay=1e-3),
        bucket_bytes=bucket_bytes,
        overlap=overlap,
        comm=comm,
    )
    sampler = wt.ShardSampler(N, BATCH, seed=3, comm=comm)
    identical, views = [], [opt.reducer.symmetric]
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            model.loss_and_grad(X[idx], y[idx])
            views.append(_in_buckets(opt, model.grads))
            if rebind and comm.rank == n - 1:
                model.grads[:] = [g.copy() for g in model.grads]
            opt.step()
            identical.append(len(set(comm.allgather(_digest(model.params)))) == 1)
            views.append(_in_buckets(opt, model.grads))
    opt.close()
    views.append(not any(is_symmetric(g) for g in model.grads))  # private again after close
    return identical, views, len(opt.buckets), [p.copy() for p in model.params]


def _torch_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, CLASSES)
    ).double()


def _torch_steps(n, epochs, bucket_bytes, own_zero_grad):
    """As :func:`_numpy_steps` for torch; ``own_zero_grad``: clear gradients with the
    torch optimizer's zero_grad (drops them) instead of DistributedOptimizer's."""
    comm = _comm(n)
    X, y = (torch.from_numpy(a) for a in _data())
    net = _torch_net(seed=comm.rank)
    wt.broadcast_parameters(net, comm=comm)
    sgd = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    opt = wt.DistributedOptimizer(sgd, bucket_bytes=bucket_bytes, comm=comm)
    sampler = wt.ShardSampler(N, BATCH, seed=3, comm=comm)
    identical, views = [], [opt.reducer.symmetric]
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            (sgd if own_zero_grad else opt).zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
            params = [p.detach().numpy() for p in net.parameters()]
            identical.append(len(set(comm.allgather(_digest(params)))) == 1)
            views.append(_in_buckets(opt, [p.grad for p in net.parameters()]))
    opt.close()
    return identical, views, len(opt.buckets), [p.detach().numpy().copy() for p in net.parameters()]


def _torch_unsupported_dtype(n):
    """A complex layer: its bucket cannot be symmetric; the step must fail on every rank."""
    comm = _comm(n)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(D, 3).double(), torch.nn.Linear(3, 2, dtype=torch.complex64)
    )
    opt = wt.DistributedOptimizer(torch.optim.SGD(net.parameters(), lr=0.1), comm=comm)
    symmetric = [b.flat is not None for b in opt.reducer.buckets]
    x = torch.from_numpy(_data()[0][:5])
    (net[1](net[0](x).to(torch.complex64)).abs() ** 2).sum().backward()
    try:
        opt.step()
        outcome = "no error"
    except (TypeError, ValueError) as exc:
        outcome = str(exc)
    opt.close()
    return symmetric, outcome


def _digits_fit(n):
    comm = _comm(n)
    X_train, X_test, y_train, y_test = _digits()
    model = wt.MLP([64, 128, 10], seed=comm.rank)
    history = wt.fit(
        model,
        X_train,
        y_train,
        epochs=13,
        batch_size=96,
        lr=0.1,
        X_val=X_test,
        y_val=y_test,
        comm=comm,
        progress=comm.rank == 0,
    )
    return history.val_accuracy[-1], _digest(model.params)


def _resume_run(n, folder):
    comm = _comm(n)
    X, y = _data(np.float32)
    kw = {"batch_size": BATCH, "lr": 0.1, "progress": False, "comm": comm}
    straight = wt.MLP([D, 16, CLASSES], seed=0)
    wt.fit(straight, X, y, epochs=4, **kw)
    path = os.path.join(folder, f"ckpt-{n}.pkl")
    first = wt.MLP([D, 16, CLASSES], seed=0)
    wt.fit(first, X, y, epochs=2, checkpoint=path, **kw)
    resumed = wt.MLP([D, 16, CLASSES], seed=7)  # overwritten by the checkpoint
    history = wt.fit(resumed, X, y, epochs=4, checkpoint=path, **kw)
    # RNG states travel per rank; a resumed optimizer gets its momentum back
    rng = np.random.default_rng(100 + comm.rank)
    opt = wt.SGD(resumed, lr=0.1, momentum=0.9)
    opt.velocity[0] += comm.rank + 1.0
    wt.broadcast_parameters(opt.velocity, comm=comm)
    other = os.path.join(folder, f"rng-{n}.pkl")
    wt.save_checkpoint(other, resumed, opt, epoch=9, rng=rng, comm=comm)
    expect = rng.random(3)
    model2 = wt.MLP([D, 16, CLASSES], seed=1)
    opt2 = wt.SGD(model2, lr=0.5)
    epoch = wt.resume(other, model2, opt2, rng=rng, comm=comm)
    return {
        "same": _digest(straight.params) == _digest(resumed.params),
        "history_epochs": history.epochs,
        "rng": bool((rng.random(3) == expect).all()),
        "epoch": epoch,
        "momentum": bool((opt2.velocity[0] == opt.velocity[0]).all()) and opt2.momentum == 0.9,
        "params": _digest(model2.params) == _digest(resumed.params),
    }


def _mismatch(n):
    comm = _comm(n)
    last = comm.rank == n - 1
    outcome = {}
    X, y = _data()
    bad = wt.MLP([D, 17 if last else 16, CLASSES], seed=0, dtype=np.float64)
    for name, call in {
        "broadcast": lambda: wt.broadcast_parameters(bad, comm=comm),
        "optimizer": lambda: wt.DistributedOptimizer(bad, lr=0.1, comm=comm),
    }.items():
        try:
            call()
            outcome[name] = "no error"
        except AllreduceMismatchError as exc:
            outcome[name] = (type(exc).__name__, str(exc))
    # same layout at construction, but one rank's gradient has another shape at step time
    model = wt.MLP([D, 16, CLASSES], seed=0, dtype=np.float64)
    opt = wt.DistributedOptimizer(model, lr=0.1, overlap=False, comm=comm)
    model.loss_and_grad(X[:8], y[:8])
    if last:
        model.grads[0] = np.zeros((D, 15))
    try:
        opt.step()
        outcome["step"] = "no error"
    except AllreduceMismatchError as exc:
        outcome["step"] = (type(exc).__name__, str(exc))
    model.grads[0] = np.zeros((D, 16))
    model.loss_and_grad(X[:8], y[:8])
    opt.step()  # the team is still in step after the error
    outcome["after"] = len(set(comm.allgather(_digest(model.params)))) == 1
    opt.close()
    return outcome


# -- single-process references -----------------------------------------------------------
def _numpy_reference(epochs):
    X, y = _data()
    model = wt.MLP([D, 16, 8, CLASSES], seed=0, dtype=np.float64)
    opt = wt.SGD(model, lr=0.2, momentum=0.9, weight_decay=1e-3)
    sampler = wt.ShardSampler(N, BATCH, seed=3, rank=0, size=1)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            model.loss_and_grad(X[idx], y[idx])
            opt.step()
    return model.params


def _torch_reference(epochs):
    X, y = (torch.from_numpy(a) for a in _data())
    net = _torch_net(seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    sampler = wt.ShardSampler(N, BATCH, seed=3, rank=0, size=1)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    return [p.detach().numpy() for p in net.parameters()]


def _assert_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


# -- multi-rank behaviour ------------------------------------------------------------------
@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize(
    ("bucket_bytes", "overlap", "rebind", "buckets"),
    [(None, True, False, 1), (200, True, False, 6), (200, False, True, 6)],
    ids=["one-bucket", "small-buckets-overlap", "small-buckets-after-backward-rebound"],
)
def test_numpy_bucket_views_identical_and_equal_to_single_process(
    live_pool, n, bucket_bytes, overlap, rebind, buckets
):
    results = _on(live_pool, n, _numpy_steps, 2, bucket_bytes, overlap, rebind)
    for identical, views, n_buckets, _ in results:
        assert identical and all(identical), "weights differ between ranks after a step"
        assert all(views), f"gradients are not views into symmetric buckets: {views}"
        assert n_buckets == buckets
    _assert_close(results[0][3], _numpy_reference(2))


@needs_torch
@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize(
    ("bucket_bytes", "own_zero_grad"), [(None, False), (256, True)], ids=["one-bucket", "small"]
)
def test_torch_bucket_views_identical_and_equal_to_single_process(
    live_pool, n, bucket_bytes, own_zero_grad
):
    results = _on(live_pool, n, _torch_steps, 2, bucket_bytes, own_zero_grad)
    for identical, views, n_buckets, _ in results:
        assert identical and all(identical), "weights differ between ranks after a step"
        assert all(views), f"param.grad are not views into symmetric buckets: {views}"
        assert n_buckets == (1 if bucket_bytes is None else 4)
    _assert_close(results[0][3], _torch_reference(2))


@needs_torch
def test_torch_dtype_without_symmetric_buckets_fails_on_every_rank(live_pool):
    results = _on(live_pool, 2, _torch_unsupported_dtype)
    for symmetric, outcome in results:
        assert symmetric == [False, True], symmetric  # the complex layer's bucket comes first
        assert "complex64" in outcome, outcome


@pytest.mark.parametrize("n", RANKS)
def test_digits_accuracy(live_pool, n):
    results = _on(live_pool, n, _digits_fit, timeout=120)
    accuracies, digests = zip(*results, strict=True)
    assert len(set(digests)) == 1 and len(set(accuracies)) == 1
    assert accuracies[0] >= 0.96, f"digits test accuracy {accuracies[0]:.3f} on {n} ranks"


@pytest.mark.parametrize("n", RANKS)
def test_checkpoint_resume_equals_uninterrupted(live_pool, n, tmp_path):
    results = _on(live_pool, n, _resume_run, str(tmp_path))
    for r in results:
        assert r == {
            "same": True,
            "history_epochs": [3, 4],
            "rng": True,
            "epoch": 9,
            "momentum": True,
            "params": True,
        }
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ckpt-{n}.pkl", f"rng-{n}.pkl"]


class _Stopped(Exception):
    """The allocation ended (simulated: every rank stops at the same step)."""


def _mid_epoch_run(n, folder, at):
    """Train 2 epochs straight; then again, asked to checkpoint (as the pool does when its
    Slurm job ends soon) during step ``at`` and stopped at the next; then resume from it."""
    import signal

    comm = _comm(n)
    X, y = _data(np.float32)
    kw = {"batch_size": BATCH, "lr": 0.1, "progress": False, "comm": comm}
    straight = wt.MLP([D, 16, CLASSES], seed=0)
    wt.fit(straight, X, y, epochs=2, **kw)

    class Ending(wt.MLP):
        calls = 0

        def loss_and_grad(self, Xb, yb):
            Ending.calls += 1
            if Ending.calls == at and comm.rank == 0:  # one rank is told, as by a signal
                os.kill(os.getpid(), signal.SIGUSR1)
            if Ending.calls == at + 1:
                raise _Stopped
            return super().loss_and_grad(Xb, yb)

    path = os.path.join(folder, f"ckpt-{n}.pkl")
    with contextlib.suppress(_Stopped):
        wt.fit(Ending([D, 16, CLASSES], seed=0), X, y, epochs=2, checkpoint=path, **kw)
    saved = wt.load_checkpoint(path, comm=comm)
    resumed = wt.MLP([D, 16, CLASSES], seed=7)  # overwritten by the checkpoint
    history = wt.fit(resumed, X, y, epochs=2, checkpoint=path, **kw)
    return {
        "saved": (saved["epoch"], saved["extra"].get("batch")),
        "resumed_from": history.resumed_from,
        "steps": history.steps,
        "same": _digest(straight.params) == _digest(resumed.params),
    }


@pytest.mark.parametrize("n", RANKS)
def test_checkpoint_when_asked_mid_epoch_resumes_equal_to_uninterrupted(live_pool, n, tmp_path):
    """The request reaches fit through the engines' SIGUSR1 handler (installed when the pool
    connected); the ranks agree on the step, write it mid-epoch, and a new run resumes
    there and ends with the same weights as one that was never stopped."""
    per_epoch = N // BATCH
    at = per_epoch + 3  # in the second epoch
    results = _on(live_pool, n, _mid_epoch_run, str(tmp_path), at)
    for r in results:
        assert r == {"saved": (1, 3), "resumed_from": at, "steps": 2 * per_epoch, "same": True}


@pytest.mark.parametrize("n", RANKS)
def test_mismatched_gradients_raise_everywhere(live_pool, n):
    results = _on(live_pool, n, _mismatch, timeout=60)
    for rank, out in enumerate(results):
        for name in ("broadcast", "optimizer"):
            kind, msg = out[name]
            assert kind == "ParameterMismatchError", (rank, out)
            assert f"rank(s) {n - 1}: [({D}, 17) float64" in msg and "(16,)" in msg
        kind, msg = out["step"]
        assert kind == "AllreduceMismatchError", (rank, out)
        assert f"({D}, 15) float64" in msg and f"({D}, 16) float64" in msg
        assert out["after"] is True


# -- in-process pieces ---------------------------------------------------------------------
@pytest.mark.slow
def test_notebook_trains_digits(tmp_path):
    text = outputs_text(run_template("distributed-training.ipynb", tmp_path, "n_engines=2"))
    found = re.findall(r"numpy MLP test accuracy: ([0-9.]+)", text)
    assert found and float(found[0]) >= 0.9, text[-2000:]
    if torch is not None:
        assert re.search(r"PyTorch test accuracy: 0\.9", text), text[-2000:]
    assert "pool stopped" in text
