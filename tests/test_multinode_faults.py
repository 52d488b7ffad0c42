"""Several compute nodes when things go wrong: a node lost under a running collective or
sweep, its network cut, its job's time limit reached. Each test starts and breaks its own pool
on the emulated cluster (tests/cluster/start-cluster.sh)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import numpy as np
import pytest
from cluster_helpers import (
    PARTITION,
    RUN_TIMEOUT,
    START_TIMEOUT,
    require_cluster,
    start_pool,
)

from workbench.pool import Pool

pytestmark = [pytest.mark.multinode, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> list[str]:
    return require_cluster()


# --- losing a node, its network, its time ------------------------------------------------------
# These tests break their pool on purpose: each starts its own (the module's pools stay
# healthy for the tests above).

_LOOP = (
    "import numpy as np, workbench as wb\n"
    "x = np.ones(1 << 14, dtype=np.float32)\n"
    "for _ in range(10_000_000):\n"
    "    wb.allreduce(x, op='sum')\n"
)


def _node_processes(host: str) -> list[int]:
    """The processes of emulated node ``host`` (its network namespace) but its slurmd."""
    out = subprocess.run(["ip", "netns", "pids", f"wb{host}"], capture_output=True, text=True,
                         timeout=10).stdout.split()  # fmt: skip
    pids = []
    for pid in map(int, out):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) != b"slurmd":  # the node stays in the cluster
            pids.append(pid)
    return pids


def _lose_node(host: str, when: dict[str, float]) -> None:
    """SIGKILL every process of ``host`` (engines, hydra's proxy, the job step) at once, as
    when a node goes down; its slurmd lives on, so the cluster stays usable."""
    when["lost"] = time.monotonic()
    for pid in _node_processes(host):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """(The emulated nodes share this machine's process table.)"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_lost_node_during_a_collective_is_named_and_restart_recovers(cluster, shell, capsys):
    from workbench.errors import EngineDiedError
    from workbench.pool import set_current

    pool = start_pool(4, 2)
    try:
        set_current(pool)
        lost = pool.engines[3].host  # 3 ranks on one node, 1 on the other
        kept = pool.engines[0].host
        when: dict[str, float] = {}
        threading.Timer(4.0, _lose_node, args=(lost, when)).start()
        with pytest.raises(EngineDiedError) as info:
            shell.run_cell_magic("distributed", "--no-progress --timeout 120", _LOOP)
        err = info.value
        assert err.nodes == {lost: [3], kept: [0, 1, 2]}, str(err)
        assert str(err).startswith(f"engines died: rank 3 on {lost} (lost: "), str(err)
        assert "restart" in str(err)
        # no rank is left waiting in the allreduce for the lost one: the job is over
        deadline = time.monotonic() + 15
        while any(_alive(e.pid) for e in pool.engines) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [e for e in pool.engines if _alive(e.pid)], pool.engines
        capsys.readouterr()
        shell.run_line_magic("wb", "status")
        out = capsys.readouterr().out
        states = [line.split()[-2] for line in out.splitlines() if re.match(r"^\d+\s+\d+\s", line)]
        assert states == ["dead"] * 4, out
        assert f"dead: rank 3 on {lost} (lost: " in out, out
        old_job = pool.job_id
        shell.run_line_magic("wb", "restart")
        assert "workbench: restarted 4 MPI engines" in capsys.readouterr().out
        assert pool.job_id != old_job and not pool.dead_ranks()
        shell.run_cell_magic(
            "distributed", "--no-progress --timeout 120",
            "import socket, numpy as np, workbench as wb\n"
            "print(socket.gethostname(), wb.allreduce(np.ones(3), algorithm='hierarchical')[0])",
        )  # fmt: skip
        out = capsys.readouterr().out
        for r, e in enumerate(pool.engines):
            assert f"[rank {r}] {e.host} 4.0" in out, out
        assert {e.host for e in pool.engines} == {lost, kept}
    finally:
        pool.stop()
        set_current(None)


def _slow_trial(config, report):
    for step in range(1, 4):
        time.sleep(config["sleep"])
        report(step=step, score=config["a"] * step)
    return float(config["a"])


def test_sweep_survives_a_lost_node_and_finishes_every_trial_once(cluster, tmp_path):
    from workbench.sweep import SweepStore, grid, sweep

    pool = start_pool(4, 2)
    try:
        old_job, when = pool.job_id, {}
        threading.Timer(3.0, _lose_node, args=(pool.engines[3].host, when)).start()
        db = str(tmp_path / "s.db")
        r = sweep(_slow_trial, {"a": grid(list(range(12))), "sleep": 0.4}, pool=pool,
                  storage=db, show=False, max_failures=1, metric="score")  # fmt: skip
        assert "lost" in when
        store = SweepStore(db)
        try:
            trials, events = store.trials(r.name), store.events(r.name)
        finally:
            store.close()
        assert [t["id"] for t in trials] == list(range(12))
        finals = Counter(i for i, _, state in events if state in ("done", "pruned", "failed"))
        assert all(finals[i] == 1 for i in range(12)), finals  # none lost, none finished twice
        assert all(t["state"] == "done" for t in trials), trials
        hit = [t for t in trials if t["failures"]]
        assert hit and all("died" in t["error"] for t in hit), hit
        assert sorted(t["value"] for t in trials) == [float(a) for a in range(12)]
        assert pool.job_id != old_job and not pool.dead_ranks()  # the runner restarted it
        assert len({e.host for e in pool.engines}) == 2
    finally:
        pool.stop()


_TRAIN_UNTIL_THE_END = """
import numpy as np, workbench.train as wt
rng = np.random.default_rng(0)
X = rng.standard_normal((3072, 12)).astype(np.float32)
y = np.argmax(X @ rng.standard_normal((12, 3)), axis=1)
model = wt.MLP([12, 32, 3], seed=0)
wt.fit(model, X, y, epochs={epochs}, batch_size=64, checkpoint={path!r}, progress=False)
"""


def _resume_training(path: str, epochs: int) -> tuple[int, int]:
    """(step resumed from, steps when done) of fit resuming from ``path``."""
    import numpy as np

    import workbench.train as wt

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3072, 12)).astype(np.float32)
    y = np.argmax(X @ rng.standard_normal((12, 3)), axis=1)
    model = wt.MLP([12, 32, 3], seed=1)  # its weights come from the checkpoint
    history = wt.fit(model, X, y, epochs=epochs, batch_size=64, checkpoint=path, progress=False)
    return history.resumed_from, history.steps


def test_time_limit_warns_once_checkpoints_and_a_new_allocation_resumes(
    cluster, shell, capsys, tmp_path
):
    """A 2-minute job warned 90 s before its end (scaled down from the default 5 minutes):
    the running cell prints the warning once, fit checkpoints at its next step, the job
    ends at its limit, and a new allocation resumes from the checkpoint."""
    import pickle

    from workbench.errors import EngineDiedError
    from workbench.pool import set_current

    path = str(tmp_path / "model.ckpt")
    pool = Pool.slurm(2, nodes=2, partition=PARTITION, time="2", warn_before=90,
                      timeout=START_TIMEOUT)  # fmt: skip
    job = pool.job_id
    try:
        set_current(pool)
        capsys.readouterr()
        shell.run_line_magic("wb", "status")
        out = capsys.readouterr().out
        left = re.search(r"time left: (\d+):(\d\d) \(warning at 1:30\)", out)
        assert left and 90 < int(left[1]) * 60 + int(left[2]) <= 120, out
        with pytest.raises(EngineDiedError) as info:  # the job reaches its time limit
            shell.run_cell_magic("distributed", "--no-progress --timeout 400",
                                 _TRAIN_UNTIL_THE_END.format(epochs=10**6, path=path))  # fmt: skip
        out = capsys.readouterr().out
        assert f"slurm job {job} reached its time limit" in str(info.value), (str(info.value), out)
        warnings = re.findall(
            rf"workbench: slurm job {job} ends in (\d+):(\d\d) \(time limit\): save your work; "
            r"wb.train.fit checkpoints now",
            out,
        )
        assert len(warnings) == 1, out
        assert 80 <= int(warnings[0][0]) * 60 + int(warnings[0][1]) <= 90, warnings
        saved_at = re.findall(r"\[rank 0\] wb.train.fit: the job ends soon: checkpoint written "
                              rf"to {re.escape(path)} at step (\d+) of", out)  # fmt: skip
        assert len(saved_at) == 1, out
    finally:
        pool.stop()
        set_current(None)
    with open(path, "rb") as f:
        saved = pickle.load(f)
    done = saved["epoch"] * (3072 // 64) + saved["extra"].get("batch", 0)
    assert done >= int(saved_at[0]) > 0, (saved["epoch"], saved["extra"], saved_at)
    # a new allocation (the first one's engines are gone) picks up where it left off
    again = start_pool(2, 2)
    try:
        results = again.apply(_resume_training, (path, saved["epoch"] + 1), timeout=RUN_TIMEOUT,
                              progress=False)  # fmt: skip
    finally:
        again.stop()
    assert results == [(done, (saved["epoch"] + 1) * (3072 // 64))] * 2, (results, done)


def _link(host: str, state: str) -> None:
    """Bring emulated node ``host``'s network interface ``up`` or ``down``."""
    subprocess.run(["ip", "-n", f"wb{host}", "link", "set", "wb0", state], check=True, timeout=10)


def _states(status) -> list[str]:
    return [row["state"] for row in status.rows]


def test_network_outage_of_a_node_is_reported_and_the_pool_recovers(cluster, shell, capsys):
    """Node 2's link goes down for 5 s under an idle pool: ``%wb status`` answers within a
    few seconds, naming the node and its ranks unreachable, and the pool works again once
    the link is back."""
    from workbench.pool import set_current

    pool = start_pool(4, 2)
    cut = pool.engines[3].host
    try:
        set_current(pool)
        assert _states(pool.status()) == ["idle"] * 4
        _link(cut, "down")
        down = time.monotonic()
        try:
            capsys.readouterr()
            shell.run_line_magic("wb", "status")
            asked = time.monotonic() - down
            out = capsys.readouterr().out
            rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+\d+\s", line)]
            assert [r[-2] for r in rows] == ["idle", "idle", "idle", "unreachable"], out
            assert f"unreachable: rank 3 on {cut} (no answer within 2 s: {cut} unreachable" in out
            assert asked < 5, asked  # bounded: one ping round, not a hang
            time.sleep(max(0.0, 5 - (time.monotonic() - down)))
        finally:
            _link(cut, "up")
        deadline = time.monotonic() + 30
        while _states(pool.status()) != ["idle"] * 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _states(pool.status()) == ["idle"] * 4, str(pool.status())
        assert not pool.dead_ranks()
        sums = pool.apply(_sum_hosts, timeout=RUN_TIMEOUT, progress=False)
        assert sums == [4.0] * 4
    finally:
        pool.stop()
        set_current(None)


def _sum_hosts() -> float:
    import workbench as wb

    return float(wb.allreduce(np.ones(2), algorithm="hierarchical")[0])
