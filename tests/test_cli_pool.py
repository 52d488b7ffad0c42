"""`workbench pool start --detach | status | stop` with real processes, attached from a shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import psutil
import pytest

from workbench.pool import Pool, set_current


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.mark.slow
def test_detached_pool_outlives_its_starter_and_is_attachable(shell, live_pool, capsys):
    started = _cli("pool", "start", "-n", "2", "--detach")
    assert started.returncode == 0, started.stderr
    cluster_file = re.search(r"cluster file: (\S+)", started.stdout).group(1)
    assert os.path.exists(cluster_file)
    try:
        status = _cli("pool", "status", cluster_file)
        assert status.returncode == 0, status.stderr
        rows = [line.split() for line in status.stdout.splitlines()[1:3]]
        assert [r[0] for r in rows] == ["0", "1"] and {r[4] for r in rows} == {"idle"}
        pids = [int(r[3]) for r in rows]

        shell.run_line_magic("wb", f"attach {cluster_file}")
        capsys.readouterr()
        shell.run_cell_magic("distributed", "", "print('detached', rank, size)")
        out = capsys.readouterr().out
        assert "[rank 1] detached 1 2" in out
    finally:
        stopped = _cli("pool", "stop", cluster_file)
        set_current(live_pool)
    assert stopped.returncode == 0, stopped.stderr
    assert not os.path.exists(cluster_file)
    time.sleep(3)  # this process attached too: its copy of the cluster must not write it back
    assert not os.path.exists(cluster_file), "a stopped pool's cluster file came back"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_pool_commands_on_missing_pool_fail_clearly(tmp_path):
    done = _cli("pool", "status", str(tmp_path / "gone.json"))
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_pool_start_rejects_bad_count():
    done = _cli("pool", "start", "-n", "0")
    assert done.returncode == 2 and "positive whole number" in done.stderr


@pytest.mark.parametrize("argv", [["pool"], ["pool", "frob"]])
def test_pool_usage(argv):
    done = _cli(*argv)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_attach_without_file_finds_newest(live_pool):
    other = Pool.attach()  # newest cluster file in the (test) profile: the session pool
    try:
        assert other.cluster_file == live_pool.cluster_file
    finally:
        other.close()
        set_current(live_pool)
