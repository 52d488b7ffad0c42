"""Faults and security of a local pool, with real processes: dead ranks inside an allreduce,
orphans, loopback-only sockets, private files, signed messages, no eval of user text."""

from __future__ import annotations

import ast
import contextlib
import glob
import json
import os
import signal
import threading
from pathlib import Path

import psutil
import pytest
import zmq
from jupyter_client.session import Session

from workbench.errors import EngineDiedError

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"


def _pool_processes(pool) -> list[psutil.Process]:
    controller = psutil.Process(pool.cluster.controller.process.pid)
    procs = [controller, *controller.children(recursive=True)]
    procs += [psutil.Process(e.pid) for e in pool.engines]
    launcher = [s for s in pool.cluster.engines.values()]
    for engine_set in launcher:
        with_pid = getattr(engine_set, "process", None)
        if with_pid is not None:
            procs.append(psutil.Process(with_pid.pid))
    return procs


def test_local_pool_listens_on_loopback_only(live_pool):
    listening = {
        (p.pid, c.laddr.ip)
        for p in _pool_processes(live_pool)
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening, "the controller should listen somewhere"
    assert {ip for _, ip in listening} == {"127.0.0.1"}, listening


def test_cluster_and_connection_files_are_private(live_pool):
    security = os.path.dirname(live_pool.cluster_file)
    files = glob.glob(os.path.join(security, f"*{live_pool.cluster.cluster_id}*"))
    assert len(files) >= 3  # cluster file, client + engine connection files, rank map
    for f in files:
        assert os.stat(f).st_mode & 0o777 == 0o600, f


def _connection_request(info: dict, key: bytes) -> bool:
    """Send a connection_request signed with ``key``; True if the controller answered."""
    session = Session(key=key, signature_scheme=info["signature_scheme"])
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(info["registration"] if "://" in str(info["registration"]) else
                     f"{info['interface']}:{info['registration']}")  # fmt: skip
        session.send(sock, "connection_request")
        return bool(sock.poll(3000))
    finally:
        sock.close()


@pytest.mark.slow
def test_controller_rejects_unsigned_messages(live_pool):
    security = os.path.dirname(live_pool.cluster_file)
    cid = live_pool.cluster.cluster_id
    with open(os.path.join(security, f"ipcontroller-{cid}-client.json")) as f:
        info = json.load(f)
    assert info["key"], "message signing (HMAC key) must stay on"
    assert _connection_request(info, info["key"].encode())  # signed: answered
    assert not _connection_request(info, b"")  # unsigned: dropped
    assert not _connection_request(info, b"not-the-key")  # wrongly signed: dropped
    assert live_pool.run(os.getpid) == [e.pid for e in live_pool.engines]  # still fine


@pytest.mark.slow
def test_killed_rank_inside_allreduce_does_not_hang_and_restart_recovers(live_pool):
    old = [e.pid for e in live_pool.engines]
    code = (
        "import numpy as np, workbench as wb\n"
        "x = np.ones(1 << 16, dtype=np.float32)\n"
        "for _ in range(1_000_000):\n"
        "    wb.allreduce(x, op='sum')\n"
    )
    threading.Timer(2.0, os.kill, args=(old[1], signal.SIGKILL)).start()
    with pytest.raises(EngineDiedError) as info:
        live_pool.execute(code, timeout=120, progress=False)
    assert 1 in info.value.ranks and "restart" in str(info.value)
    live_pool.restart()
    assert not [p for p in old if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert live_pool.run(os.getpid) == [e.pid for e in live_pool.engines]


@pytest.mark.slow
def test_no_orphans_after_stop(tmp_path):
    from workbench.pool import Pool, current, set_current

    keep = current()
    pool = Pool.local(2)
    procs = _pool_processes(pool)
    pool.stop()
    set_current(keep)
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert not alive, [p.cmdline() for p in alive]


def test_package_never_evals_or_execs_text():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"eval", "exec"}):  # fmt: skip
                calls.append(f"{path.name}:{node.lineno}")
    assert not calls, f"eval/exec of text in the package: {calls}"


_KILLED_RANKS = """
import os, signal
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()
os.kill(os.getpid(), signal.SIGKILL)
"""
_LIVE_RANKS = """
import sys, time
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_shared_memory_left_by_killed_ranks_is_removed_and_a_live_jobs_kept():
    """Killed MPICH ranks leave their /dev/shm segment; a later job whose name repeats it
    (process ids wrap around) aborts in MPI_Init. Such segments go; a running job's stay."""
    import subprocess
    import sys

    from workbench.pool._launch import local_mpiexec
    from workbench.pool._procs import SHM, remove_stale_segments

    def segments():
        return {n for n in os.listdir(SHM) if n.startswith("mpich_")}

    def mapped_by(procs):
        out = set()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                out |= {os.path.basename(m.path) for m in p.memory_maps() if m.path.startswith(SHM)}
        return out

    before = segments()
    subprocess.run([local_mpiexec(), "-n", "2", sys.executable, "-c", _KILLED_RANKS],
                   capture_output=True, timeout=120)  # fmt: skip
    # (another job on this machine may have made one meanwhile: only unmapped ones count)
    leaked = segments() - before - mapped_by(psutil.process_iter())
    assert leaked, "the killed ranks left no segment: nothing to test"
    live = subprocess.Popen([local_mpiexec(), "-n", "2", sys.executable, "-c", _LIVE_RANKS],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert live.stdout.readline().startswith("ready")
        running = {n for n in mapped_by(psutil.Process(live.pid).children(recursive=True))
                   if n.startswith("mpich_")}  # fmt: skip
        assert running
        removed = {os.path.basename(p) for p in remove_stale_segments(min_age=0)}
        assert leaked <= removed and not running & removed
        assert running <= segments()
    finally:
        live.communicate("", timeout=60)
