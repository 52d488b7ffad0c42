"""Engines on several compute nodes: a real Slurm cluster of emulated nodes on this machine
(tests/cluster/start-cluster.sh: a network namespace, hostname and slurmd per node, MPI over
TCP between them). A pool of 4 ranks on 2 nodes (3 + 1: the nodes have 3 and 2 CPUs) and one
of 6 ranks on 3 nodes (3 + 2 + 1): engines on each host, the status grouped by node, the node
topology, and every allreduce algorithm, fused lists, teams and symmetric buffers against
numpy. Outside CI, skipped when the cluster is not running; in CI a missing cluster fails."""

from __future__ import annotations

import re
import socket
from collections import Counter

import numpy as np
import pytest
from cluster_helpers import RUN_TIMEOUT, require_cluster, start_pool
from helpers import assert_outside_ephemeral

from workbench.pool import Pool

pytestmark = [pytest.mark.multinode, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> list[str]:
    return require_cluster()


@pytest.fixture(scope="module")
def pool2(cluster):
    pool = start_pool(4, 2)
    yield pool
    pool.stop()


@pytest.fixture(scope="module")
def pool3(cluster, pool2):
    """6 ranks on 3 nodes; starts after (and runs beside) the 2-node pool."""
    pool = start_pool(6, 3)
    yield pool
    pool.stop()


# --- on the engines -------------------------------------------------------------------------


def _whereami() -> tuple[str, int, int, int]:
    """(hostname, nodes in COMM_WORLD, ranks on this node, this rank's index on its node)."""
    from mpi4py import MPI

    from workbench.comm._topology import topology

    topo = topology(MPI.COMM_WORLD)
    return socket.gethostname(), topo.n_nodes, topo.node.Get_size(), topo.node.Get_rank()


ALGORITHMS = ("auto", "mpi", "ring", "rhd", "hierarchical")
OPS = ("sum", "mean", "max", "min")
DTYPES = ("float32", "float64", "int32")
SIZES = (0, 1, 1023, (1 << 18) + 3)  # the last: 1 MiB of float32, pipelined in chunks


def _inputs(dtype: str, n: int, seed: int, size: int) -> np.ndarray:
    """Every rank's input, stacked (each rank builds all of them for the reference)."""
    rng = np.random.default_rng(seed)
    if dtype.startswith("int"):
        return rng.integers(-1000, 1000, (size, n)).astype(dtype)
    return rng.standard_normal((size, n)).astype(dtype)


def _expect(xs: np.ndarray, op: str) -> np.ndarray:
    wide = xs.astype(np.int64 if xs.dtype.kind == "i" else np.float64)
    return {"sum": wide.sum(0), "mean": wide.mean(0), "max": wide.max(0), "min": wide.min(0)}[op]


def _close(got: np.ndarray, xs: np.ndarray, op: str) -> bool:
    want = _expect(xs, op)
    if xs.dtype.kind == "i" or op in ("max", "min"):
        return bool(np.array_equal(got, want.astype(xs.dtype)))
    tol = {"float32": 1e-6, "float64": 1e-13}[xs.dtype.name]
    scale = np.abs(xs.astype(np.float64)).sum(0) / (len(xs) if op == "mean" else 1)
    return bool((np.abs(got.astype(np.float64) - want) <= tol * (scale + 1.0) * 4).all())


def _check_allreduce() -> list[str]:
    """Every algorithm x op x dtype x size, fused lists and two teams (not for hierarchical:
    it refuses teams, see allreduce_async); the failures, none: ``[]``."""
    from mpi4py import MPI

    import workbench as wb

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    bad: list[str] = []
    seed = 0
    for algo in ALGORITHMS:
        for dtype in DTYPES:
            for n in SIZES:
                seed += 1
                xs = _inputs(dtype, n, seed, size)
                for op in OPS:
                    if op == "mean" and dtype.startswith("int"):
                        continue
                    got = wb.allreduce(xs[rank].copy(), op, algorithm=algo)
                    if got.dtype != xs.dtype or not _close(got, xs, op):
                        bad.append(f"rank {rank}: {algo} {op} {dtype} n={n}")
        # a fused list of mixed dtypes and sizes
        shapes = [("float32", 5), ("float64", 70_001), ("float32", 1), ("int32", 9)]
        parts = [_inputs(d, n, seed + i, size) for i, (d, n) in enumerate(shapes)]
        got = wb.allreduce([p[rank].copy() for p in parts], "sum", algorithm=algo)
        if not all(_close(g, p, "sum") for g, p in zip(got, parts, strict=True)):
            bad.append(f"rank {rank}: {algo} fused list")
        if algo == "hierarchical":  # its node windows are not made from a team's thread
            continue
        # two teams at once
        a, b = _inputs("float32", 300_000, seed + 7, size), _inputs("float64", 999, seed + 8, size)
        ha = wb.allreduce_async([a[rank].copy()], "mean", team="grads", algorithm=algo)
        hb = wb.allreduce_async([b[rank].copy()], "max", team="stats", algorithm=algo)
        got_a, got_b = ha.wait(), hb.wait()
        if not (_close(got_a[0], a, "mean") and _close(got_b[0], b, "max")):
            bad.append(f"rank {rank}: {algo} teams")
    return bad


def _check_symmetric() -> list[str]:
    """A symmetric buffer reduced in place across nodes, every op."""
    from mpi4py import MPI

    import workbench as wb

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    bad = []
    for i, op in enumerate(OPS):
        xs = _inputs("float32", 200_003, 100 + i, size)
        buf = wb.comm.empty(xs.shape[1], np.float32)
        buf[:] = xs[rank]
        wb.allreduce(buf, op, out=buf)
        if not _close(buf, xs, op):
            bad.append(f"rank {rank}: symmetric {op}")
    return bad


def _sent_on_the_network(algo: str) -> tuple[str, int]:
    """(hostname, bytes this node's interface sent while 4 MiB were reduced with ``algo``)."""
    from mpi4py import MPI

    import workbench as wb

    counter = "/sys/class/net/wb0/statistics/tx_bytes"  # the node's side of the bridge
    x = np.ones(1 << 20, np.float32)
    wb.allreduce(x, algorithm=algo)  # set-up (windows, communicators) before counting
    MPI.COMM_WORLD.Barrier()
    with open(counter) as f:
        before = int(f.read())
    got = wb.allreduce(x, algorithm=algo)
    MPI.COMM_WORLD.Barrier()
    with open(counter) as f:
        after = int(f.read())
    assert got[0] == MPI.COMM_WORLD.Get_size()
    return socket.gethostname(), after - before


def _train() -> tuple[list[float], list[np.ndarray]]:
    """A small MLP trained data-parallel with workbench.train.fit: (loss per epoch, params)."""
    import workbench.train as wt

    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 12)).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((12, 3)), axis=1)
    model = wt.MLP([12, 16, 3], seed=0)
    history = wt.fit(model, X, y, epochs=3, batch_size=64, lr=0.1, progress=False)
    return history.loss, model.params


def _trial(config, report, comm):
    """A sweep objective on 2 ranks: an allreduce over the trial's ranks; it reports on how
    many nodes they ran."""
    import workbench as wb

    total = wb.allreduce(np.array([(comm.rank + 1.0) * config["a"]]), op="sum", comm=comm)
    nodes = len(set(comm.allgather(socket.gethostname())))
    report(step=1, score=float(total[0]), nodes=float(nodes))
    return float(total[0])


def _shm_refuses() -> str:
    import workbench as wb

    try:
        wb.allreduce(np.ones(4), algorithm="shm")
    except ValueError as e:
        return str(e)
    return "no error"


# --- tests ----------------------------------------------------------------------------------


def _check_placement(pool: Pool, per_node: list[int]) -> None:
    where = pool.apply(_whereami, timeout=RUN_TIMEOUT, progress=False)
    hosts = [w[0] for w in where]
    counts = Counter(hosts)
    assert sorted(counts.values(), reverse=True) == per_node, where
    assert all(h.startswith("node") and h != socket.gethostname() for h in hosts), hosts
    for host, n_nodes, on_node, _ in where:  # MPI sees the same nodes as the hostnames
        assert (n_nodes, on_node) == (len(per_node), counts[host]), where
    status = pool.status()
    assert status.nodes == {h: [r for r, x in enumerate(hosts) if x == h] for h in counts}
    assert f"{len(per_node)} nodes: " in str(status)


def test_engines_on_two_nodes_and_status_grouped_by_node(pool2, shell, capsys):
    from workbench.pool import set_current

    names = pool2.run(socket.gethostname)
    assert len(set(names)) == 2, names
    _check_placement(pool2, [3, 1])
    assert_outside_ephemeral(pool2.cluster)  # (srun, starting the engines, binds port 0)
    set_current(pool2)
    shell.run_line_magic("wb", "status")
    out = capsys.readouterr().out
    first, second = sorted(set(names), key=names.index)
    on_first = ", ".join(str(r) for r, h in enumerate(names) if h == first)
    assert f"2 nodes: {first} (ranks {on_first}), {second} (rank" in out, out
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+\d+\s", line)]
    assert [r[2] for r in rows if not r[2].isdigit()] == [first, second], out  # once per node


@pytest.mark.parametrize("which", ["pool2", "pool3"])
def test_every_algorithm_fused_lists_and_teams_across_nodes(which, request):
    pool = request.getfixturevalue(which)
    failures = pool.apply(_check_allreduce, timeout=RUN_TIMEOUT, progress=False)
    assert failures == [[]] * pool.size, [f for per_rank in failures for f in per_rank][:20]


@pytest.mark.parametrize("which", ["pool2", "pool3"])
def test_symmetric_buffers_across_nodes(which, request):
    pool = request.getfixturevalue(which)
    failures = pool.apply(_check_symmetric, timeout=RUN_TIMEOUT, progress=False)
    assert failures == [[]] * pool.size, failures


def test_shm_refuses_a_communicator_spanning_nodes(pool2):
    messages = pool2.apply(_shm_refuses, timeout=RUN_TIMEOUT, progress=False)
    assert all("spans 2 nodes" in m and "hierarchical" in m for m in messages), messages


def test_three_nodes_with_uneven_ranks(pool3):
    _check_placement(pool3, [3, 2, 1])


@pytest.mark.parametrize("algo", ["ring", "rhd", "hierarchical", "mpi"])
def test_traffic_between_nodes_goes_over_the_network(algo, pool3):
    """MPI between the emulated nodes uses TCP over the bridge, as between real nodes (not the
    shared memory their common kernel would allow): each node sends at least a quarter of the
    4 MiB vector on its interface."""
    sent: dict[str, int] = {}  # (the most any of a node's ranks counted)
    for host, n in pool3.apply(_sent_on_the_network, (algo,), timeout=RUN_TIMEOUT, progress=False):
        sent[host] = max(sent.get(host, 0), n)
    assert len(sent) == 3 and min(sent.values()) >= 1 << 20, sent


def test_training_across_nodes_matches_one_node(pool2):
    across = pool2.apply(_train, timeout=RUN_TIMEOUT, progress=False)
    with Pool.local(n=4, progress=False) as local:
        here = local.apply(_train, timeout=RUN_TIMEOUT, progress=False)
    (loss, params), (loss_1, params_1) = across[0], here[0]
    for _, other in across[1:]:  # every rank holds the same model
        assert all(np.array_equal(a, b) for a, b in zip(params, other, strict=True))
    # the same training; sums in another order (hierarchical across nodes) round differently
    assert np.allclose(loss, loss_1, rtol=1e-4), (loss, loss_1)
    assert all(
        np.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(params, params_1, strict=True)
    )
    assert loss[-1] < loss[0]


def test_sweep_with_two_rank_trials_across_nodes(pool2, tmp_path):
    from workbench.sweep import SweepStore, grid, sweep

    db = str(tmp_path / "s.db")
    r = sweep(_trial, {"a": grid([1.0, 2.0, 3.0, 4.0])}, trial_ranks=2, pool=pool2, storage=db,
              show=False, metric="score")  # fmt: skip
    assert all(t["state"] == "done" for t in r.trials), r.trials
    assert sorted(t["value"] for t in r.trials) == [3.0, 6.0, 9.0, 12.0]  # as on one node
    store = SweepStore(db)
    try:
        nodes = {rep["id"]: rep["metrics"]["nodes"] for rep in store.reports(r.name)}
    finally:
        store.close()
    # ranks 0-1 are both on the first node, ranks 2-3 on two nodes (3 + 1)
    spans = {tuple(t["ranks"]): nodes[t["id"]] for t in r.trials}
    assert spans == {(0, 1): 1.0, (2, 3): 2.0}, (spans, r.trials)


def test_svd_offload_across_nodes_matches_numpy(pool2):
    import dask.array as da

    import workbench as wb
    from workbench.pool import set_current

    set_current(pool2)  # free() looks for the array's handle on the current pool
    rng = np.random.default_rng(3)
    a = rng.standard_normal((240, 30)) @ np.diag(np.geomspace(100, 1, 30))
    U, s, Vt = wb.linalg.truncated_svd(da.from_array(a, chunks=(50, 30)), 5, pool=pool2)
    s_true = np.linalg.svd(a, compute_uv=False)[:5]
    assert np.max(np.abs(s - s_true) / s_true) <= 1e-8
    u = U.compute()
    assert np.allclose((u * s) @ Vt, a @ (Vt.T @ Vt), atol=1e-8)  # the rank-5 projection
    wb.linalg.free(U)
