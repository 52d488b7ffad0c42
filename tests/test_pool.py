"""EnginePool on real MPI engines: rank order, status, failures, timeouts, death, re-attach."""

from __future__ import annotations

import os
import signal

import pytest
from helpers import assert_outside_ephemeral, wait_idle

import workbench as wb
from workbench.errors import EngineDiedError, PoolError, PoolTimeoutError, RankError
from workbench.pool import Pool


def _whoami(tag):
    from mpi4py import MPI

    return (MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size, tag)


def test_run_returns_results_in_rank_order(live_pool):
    out = live_pool.run(_whoami, "x")
    assert out == [(r, live_pool.size, "x") for r in range(live_pool.size)]
    # the engine behind each result is the one the pool lists for that rank
    pids = live_pool.run(os.getpid)
    assert pids == [e.pid for e in live_pool.engines]


def test_namespace_has_comm_rank_size(live_pool):
    live_pool.execute("_probe = (rank, size, comm.Get_rank())", progress=False)
    got = live_pool.view().pull("_probe", block=True)
    assert got == [(r, live_pool.size, r) for r in range(live_pool.size)]


def test_run_on_subset_of_ranks(live_pool):
    assert live_pool.apply(_whoami, ("s",), ranks=[2, 0]) == [(0, 3, "s"), (2, 3, "s")]
    with pytest.raises(ValueError, match="not in this pool"):
        live_pool.apply(_whoami, ("s",), ranks=[7])


def test_status_table(live_pool):
    status = live_pool.status()
    assert [r["rank"] for r in status.rows] == list(range(live_pool.size))
    assert {r["state"] for r in status.rows} == {"idle"}
    assert all(r["memory"] and r["memory"] > 10 * 2**20 for r in status.rows)
    text = str(status)
    assert text.splitlines()[0].split() == ["rank", "engine", "host", "pid", "state", "memory"]
    assert "<table>" in status._repr_html_()
    # where the cluster's log and the engines' output go, named in both forms
    assert live_pool.log_file.endswith(f"workbench-{live_pool.cluster.cluster_id}.log")
    assert os.path.exists(live_pool.log_file)
    assert f"log: {live_pool.log_file}" in text and f"log: {live_pool.log_file}" in (
        status._repr_html_()
    )
    assert "engine output: " in text


def test_status_busy_while_this_or_another_client_works(live_pool):
    """Busy for this client's task, and for another client's task on the same engines."""
    ar = live_pool.client[live_pool.engines[0].engine_id].execute("import time; time.sleep(2)")
    other = Pool.attach(live_pool.cluster_file)
    try:
        mine = {r["rank"]: r["state"] for r in live_pool.status().rows}
        theirs = {r["rank"]: r["state"] for r in other.status().rows}
        assert mine[0] == "busy" and mine[1] == "idle"
        assert theirs[0] == "busy" and theirs[1] == "idle"
        ar.get(timeout=30)
        wait_idle(other)
    finally:
        other.close()
        wb.pool.set_current(live_pool)
    wait_idle(live_pool)


def test_status_ignores_a_stale_controller_queue_entry(live_pool, monkeypatch):
    """The controller can keep a finished request listed under load: neither a finished
    task of this client nor a finished task of another client makes an engine busy."""
    mine = live_pool.client[:].execute("pass")
    mine.get(timeout=30)
    other = Pool.attach(live_pool.cluster_file)
    try:
        theirs = other.client[live_pool.engines[1].engine_id].execute("pass")
        theirs.get(timeout=30)
    finally:
        other.close()
        wb.pool.set_current(live_pool)
    real = live_pool.client.queue_status
    stale = {live_pool.engines[0].engine_id: mine.msg_ids[0],
             live_pool.engines[1].engine_id: theirs.msg_ids[0]}  # fmt: skip

    def stale_queue(targets="all", verbose=False):
        queue = real(targets, verbose)
        for eid, msg_id in stale.items():
            if eid in queue:
                q = queue[eid]["queue"]
                queue[eid]["queue"] = [*q, msg_id] if verbose else q + 1
        return queue

    monkeypatch.setattr(live_pool.client, "queue_status", stale_queue)
    assert [r["state"] for r in live_pool.status().rows] == ["idle"] * live_pool.size


def test_a_reply_lost_after_an_interrupt_does_not_keep_a_rank_busy(live_pool):
    """Seen under load after a Ctrl-C: a reply never reached the client, which kept the
    request outstanding, and status showed the rank busy for good while it ran later work.
    A request the controller has completed (or with a later one completed on its engine)
    is not in flight."""
    client = live_pool.client
    eid = live_pool.engines[2].engine_id
    lost = client[eid].execute("pass")
    lost.get(timeout=30)
    later = client[eid].execute("pass")
    later.get(timeout=30)
    uuid = client._engines[eid]
    client._outstanding_dict[uuid].add(lost.msg_ids[0])  # as if its reply had not come
    client.outstanding.add(lost.msg_ids[0])
    try:
        assert [r["state"] for r in live_pool.status().rows] == ["idle"] * live_pool.size
        running = client[eid].execute("import time; time.sleep(3)")
        assert live_pool.status().rows[2]["state"] == "busy"  # while it really runs
        running.get(timeout=60)
    finally:
        client._outstanding_dict[uuid].discard(lost.msg_ids[0])
        client.outstanding.discard(lost.msg_ids[0])


def _fail_on_one():
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 1:
        raise KeyError("missing-column")
    return "fine"


def test_failing_rank_reports_rank_and_traceback(live_pool):
    with pytest.raises(RankError) as info:
        live_pool.run(_fail_on_one)
    err = info.value
    assert err.ranks == [1]
    assert "rank 1 raised KeyError" in str(err)
    rendered = "\n".join(err._render_traceback_())
    assert "[rank 1] KeyError" in rendered
    assert "_fail_on_one" in rendered  # the remote traceback, not ours
    assert live_pool.run(_whoami, 1)[1][0] == 1  # pool still works


def test_all_ranks_failing_counts_the_others(live_pool):
    with pytest.raises(RankError) as info:
        live_pool.execute("raise ValueError(f'bad {rank}')", progress=False)
    assert info.value.ranks == [0, 1, 2]
    assert "2 other ranks failed: rank 1 (ValueError: bad 1), rank 2 (ValueError: bad 2)" in str(
        info.value
    )


def test_timeout_interrupts_engines_and_pool_stays_usable(live_pool):
    with pytest.raises(PoolTimeoutError, match="timeout of 1 s"):
        live_pool.execute("import time\nfor _ in range(600): time.sleep(0.1)", timeout=1)
    wait_idle(live_pool)
    assert live_pool.run(_whoami, 2)[0] == (0, 3, 2)


def test_reattach_after_dropping_the_client(live_pool):
    other = Pool.attach(live_pool.cluster_file)
    try:
        assert other.run(_whoami, "again") == live_pool.run(_whoami, "again")
        assert [e.pid for e in other.engines] == [e.pid for e in live_pool.engines]
    finally:
        other.close()  # drops the connection, keeps the engines
        wb.pool.set_current(live_pool)
    assert live_pool.run(_whoami, 0)[0] == (0, 3, 0)


def test_the_controller_listens_outside_the_ports_the_kernel_hands_out(live_pool):
    assert_outside_ephemeral(live_pool.cluster)


def test_controller_ports_are_free_and_outside_the_range(tmp_path):
    import socket

    from workbench.pool._ports import _LOWEST, controller_ports, ephemeral_range

    ports = controller_ports(12, ephemeral=(20000, 60000))
    assert ports == list(range(ports[0], ports[0] + 12)), ports  # one consecutive run
    assert all(_LOWEST <= p < 20000 or p > 60000 for p in ports), ports
    # room for one run only, one of whose ports is taken: the free others
    with socket.socket() as held:
        held.bind(("", _LOWEST + 5))
        held.listen()
        ports = controller_ports(12, ephemeral=(_LOWEST + 12, 65535))
    assert _LOWEST + 5 not in ports and len(ports) <= 11 and ports, ports
    assert set(ports) <= set(range(_LOWEST, _LOWEST + 12)), ports
    assert controller_ports(12, ephemeral=(_LOWEST + 5, 65530)) == []  # no room: ipyparallel's
    bad = tmp_path / "range"
    bad.write_text("not numbers\n")
    assert ephemeral_range(str(bad)) == (32768, 60999)
    bad.write_text("40000\t50000\n")
    assert ephemeral_range(str(bad)) == (40000, 50000)


def test_attach_to_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PoolError, match="does not exist"):
        Pool.attach(str(tmp_path / "nope.json"))


def test_bad_pool_size():
    with pytest.raises(ValueError, match="positive number of engines"):
        Pool.local(0)


def test_launcher_that_exits_while_starting_fails_at_once_with_its_output(
    tmp_path, monkeypatch, capsys
):
    """An mpiexec that dies before its engines register: PoolError within seconds (not the
    start timeout) with the launcher's last words and the log file; nothing left behind."""
    import glob

    from workbench.pool import _launch, current

    fake = tmp_path / "mpiexec"
    fake.write_text("#!/bin/sh\nsleep 1\necho 'no MPI for you'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(_launch, "local_mpiexec", lambda: str(fake))
    keep = current()
    security = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "security")
    before = set(glob.glob(os.path.join(security, "cluster-*.json")))
    with pytest.raises(PoolError, match="launcher exited") as info:
        Pool.local(2, timeout=60)
    assert "no MPI for you" in str(info.value) and "log: " in str(info.value)
    assert set(glob.glob(os.path.join(security, "cluster-*.json"))) == before
    assert current() is keep
    assert capsys.readouterr().out == "workbench: starting 2 MPI engines (mpiexec)…\n"


@pytest.mark.slow
def test_killed_engine_is_reported_by_rank_then_restart_recovers(live_pool):
    victim = live_pool.engines[1].pid
    code = "import time\nfor _ in range(600): time.sleep(0.1)"
    import threading

    threading.Timer(1.5, os.kill, args=(victim, signal.SIGKILL)).start()
    with pytest.raises(EngineDiedError) as info:
        live_pool.execute(code, timeout=60, progress=False)
    assert 1 in info.value.ranks
    assert f"process {victim}" in str(info.value)
    live_pool.restart()
    assert live_pool.run(_whoami, "back") == [(r, 3, "back") for r in range(3)]
    assert victim not in [e.pid for e in live_pool.engines]


_NOTEBOOK = """
import time as tm
from os.path import join
SCALE = 3
OFFSETS = {"a": 1}

def helper(x):
    return x * SCALE

def fn(x):
    return (tm.time() > 0, join("a", "b"), helper(x) + OFFSETS["a"], rank)
"""


def test_a_notebook_function_finds_the_notebooks_imports_on_the_engines(live_pool):
    """A function defined in the notebook (module __main__) uses what the notebook imported
    and its helpers; names the engines define (rank) stay the engines' own."""
    ns = {"__name__": "__main__"}
    exec(_NOTEBOOK, ns)
    assert live_pool.run(ns["fn"], 2) == [(True, "a/b", 7, r) for r in range(live_pool.size)]
    ns["SCALE"] = 5  # changed in the notebook: the engines get the new value
    assert [x[2] for x in live_pool.run(ns["fn"], 2)] == [11] * live_pool.size
    live_pool.execute("SCALE = 100")  # the engines' own definition wins over the notebook's
    assert [x[2] for x in live_pool.run(ns["fn"], 2)] == [201] * live_pool.size
    live_pool.execute("del SCALE")


def _controller_and_schedulers(pool: Pool) -> tuple[int, list]:
    """The pid of ``pool``'s controller and its processes (the schedulers it forked)."""
    import psutil

    from workbench.pool import _ipp

    pid = _ipp.controller_pid(pool.cluster)
    family = psutil.Process(pid).children(recursive=True)
    assert family, "the controller has scheduler processes"
    return pid, family


def _assert_gone(procs: list) -> None:
    """Every one of ``procs`` exits within 30 s (a zombie counts as gone)."""
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive


@pytest.mark.slow  # a pool of its own
def test_stopping_a_pool_whose_controller_dies_first_leaves_none_of_its_processes(monkeypatch):
    """Seen under load: the controller killed while stopping, its scheduler processes left
    orphaned to PID 1. Whatever of the controller's family outlives the stop is ended."""
    pool = Pool.local(1, progress=False)
    pid, family = _controller_and_schedulers(pool)
    stop = pool.cluster.stop_cluster_sync

    def killed_first():  # the controller alone, as a SIGKILL would; then the usual stop
        os.kill(pid, signal.SIGKILL)
        stop()

    monkeypatch.setattr(pool.cluster, "stop_cluster_sync", killed_first, raising=False)
    pool.stop()
    _assert_gone(family)


@pytest.mark.slow  # a pool of its own
def test_a_killed_controllers_schedulers_die_with_it():
    """However the controller dies (ipyparallel's own stop kills it after 5 s without an
    exit; CI once found two of its schedulers orphaned to PID 1 at the session's end), the
    scheduler processes it forked end with it, with no stop of ours to reap them."""
    import psutil

    pool = Pool.local(1, progress=False)
    try:
        pid, family = _controller_and_schedulers(pool)
        assert "ipyparallel.controller" in " ".join(psutil.Process(pid).cmdline())
        os.kill(pid, signal.SIGKILL)
        _assert_gone(family)
    finally:
        pool.stop()
