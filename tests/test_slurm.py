"""Engines on a real (single-node) Slurm: start through sbatch, run a cell and an allreduce,
queue wait and cancel, scancel under a running cell, detached pools. Needs slurm running
(tests/slurm/start-slurm.sh; .ci/run starts it). Outside CI, skipped when Slurm is absent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from workbench.errors import EngineDiedError
from workbench.pool import Pool, current, set_current
from workbench.pool._slurm import ENDED, SlurmOptions, batch_template, job_state

pytestmark = pytest.mark.slow  # (minutes in all: `pytest -m 'not slow'` skips them)


@pytest.fixture(scope="module")
def slurm_pool(slurm):
    start = time.monotonic()
    pool = Pool.slurm(2, time="10", timeout=120)
    print(f"slurm pool of 2 started in {time.monotonic() - start:.1f} s")
    yield pool
    pool.stop()


def test_batch_script_is_built_from_validated_options():
    opts = SlurmOptions(partition="debug", time="1:00:00", account="proj", nodes=2,
                        extra="--mem=4G --qos=low", launcher="srun")  # fmt: skip
    script = batch_template(opts, "/x/mpiexec")
    for line in ["#SBATCH --partition=debug", "#SBATCH --time=1:00:00", "#SBATCH --account=proj",
                 "#SBATCH --nodes=2", "#SBATCH --mem=4G", "#SBATCH --qos=low",
                 "srun --mpi=pmi2 {program_and_args}"]:  # fmt: skip
        assert line in script.splitlines()
    assert "/x/mpiexec -n {n} {program_and_args}" in batch_template(SlurmOptions(), "/x/mpiexec")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"time": "soon"}, "not a Slurm time"),
        ({"partition": "a;rm -rf /"}, "not a valid name"),
        ({"extra": "--mem=1G\n#SBATCH --x"}, "one line"),
        ({"extra": "hostname"}, "not an option"),
        ({"launcher": "ssh"}, "launcher must be"),
        ({"nodes": 0}, "positive integer"),
    ],
)
def test_bad_slurm_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SlurmOptions(**kwargs)


def test_distributed_cell_and_allreduce_on_slurm_engines(slurm_pool, shell, capsys):
    set_current(slurm_pool)
    assert slurm_pool.job_id and job_state(slurm_pool.job_id)[0] == "RUNNING"
    cell = (
        "import os, numpy as np, workbench as wb\n"
        "total = wb.allreduce(np.full(10, rank + 1.0), op='sum')\n"
        "print('slurm job', os.environ.get('SLURM_JOB_ID'), 'rank', rank, 'sum', total[0])\n"
    )
    shell.run_cell_magic("distributed", "", cell)
    out = capsys.readouterr().out
    for r in range(2):
        assert f"[rank {r}] slurm job {slurm_pool.job_id} rank {r} sum 3.0" in out
    status = slurm_pool.status()
    assert status.backend == f"slurm job {slurm_pool.job_id}"
    assert [row["state"] for row in status.rows] == ["idle", "idle"]
    # the one-node partition's node is this machine: the controller stays on loopback
    assert slurm_pool.launch.controller == "127.0.0.1"
    assert slurm_pool.launch.controller_why == "the engines run here"


def test_scancel_under_a_running_cell_is_a_clear_error(slurm, capsys):
    pool = Pool.slurm(2, timeout=120)
    try:
        job = pool.job_id
        threading.Timer(2.0, subprocess.run, args=(["scancel", job],)).start()
        with pytest.raises(EngineDiedError) as info:
            pool.execute("import time\nfor _ in range(600): time.sleep(0.1)", progress=False)
        assert f"slurm job {job} is cancelled" in str(info.value), info.value
        assert set(pool.dead_ranks()) == {0, 1}
    finally:
        pool.stop()


def test_a_job_sbatch_refuses_is_one_clear_error_and_leaves_nothing(slurm, capsys, caplog):
    """sbatch's own reason, not "returned non-zero exit status 1"; no `scancel ''` after it
    (at once or at exit) and none of the pool's files left behind."""
    from workbench.errors import PoolError

    security = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "security")
    before = set(os.listdir(security)) if os.path.isdir(security) else set()
    with pytest.raises(PoolError, match="sbatch refused the job: invalid partition") as info:
        Pool.slurm(1, partition="nope", timeout=60)
    assert "check the options" in str(info.value)
    err = capsys.readouterr().err + caplog.text
    assert "scancel" not in err, err
    assert set(os.listdir(security)) <= before


def test_ctrl_c_while_queued_cancels_the_job(slurm, capsys):
    threading.Timer(3.0, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        Pool.slurm(2, extra="--begin=now+1hour", timeout=60)  # stays pending
    out = capsys.readouterr().out
    job = re.search(r"slurm job (\d+): pending", out).group(1)
    deadline = time.monotonic() + 15
    while job_state(job)[0] not in ("GONE", "CANCELLED") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_state(job)[0] in ("GONE", "CANCELLED")


def test_detached_slurm_pool_from_the_cli(slurm, shell, capsys, tmp_path, monkeypatch):
    """Start with the CLI, attach from a notebook, stop with the CLI. Attaching leaves
    nothing in the working folder (ipyparallel's own loader made ./log and
    ./slurm_engine.sbatch there)."""
    cli = [sys.executable, "-m", "workbench.cli", "pool"]
    started = subprocess.run([*cli, "start", "--slurm", "-n", "2", "--detach"],
                             capture_output=True, text=True, timeout=180)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    cluster_file = re.search(r"cluster file: (\S+)", started.stdout).group(1)
    try:
        monkeypatch.chdir(tmp_path)
        shell.run_line_magic("wb", f"attach {cluster_file}")
        shell.run_cell_magic("distributed", "", "print('attached', rank)")
        assert "[rank 1] attached 1" in capsys.readouterr().out
        assert list(tmp_path.iterdir()) == []
        attached = current()
        first_job = attached.job_id
        shell.run_line_magic("wb", "restart")  # an attached Slurm pool: a new job
        shell.run_cell_magic("distributed", "", "print('restarted', rank)")
        assert "[rank 1] restarted 1" in capsys.readouterr().out
        assert attached.job_id not in (None, first_job) and attached.size == 2
        assert job_state(first_job)[0] in ENDED
    finally:
        stopped = subprocess.run([*cli, "stop", cluster_file], capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
