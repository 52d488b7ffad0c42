"""Working the way a site user works, on the emulated multi-node cluster: engines inside the
allocation one holds (no new job), several pools in one allocation, a controller the nodes
reach with no address given, the site profile's setup on every node, requests Slurm can never
grant, a process killed while its job waits, and notebooks as batch jobs that survive the
time limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import nbformat
import psutil
import pytest
from cluster_helpers import BRIDGE_IP, PARTITION, require_cluster

from workbench.errors import InvalidValueError, PoolError
from workbench.pool import Pool, current, set_current

pytestmark = [pytest.mark.multinode, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> list[str]:
    return require_cluster()


@pytest.fixture
def keep_current():
    before = current()
    yield
    set_current(before)


def _jobs() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         timeout=20).stdout  # fmt: skip
    return set(out.split())


def _in_allocation(script: str, *salloc: str, timeout: float = 240) -> dict:
    """Run ``script`` with salloc (its last printed line is JSON); return that JSON."""
    code = textwrap.dedent(script)
    done = subprocess.run(
        ["salloc", "-p", PARTITION, *salloc, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


_HERE = """
import json, os, subprocess, workbench as wb

def queued():
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    return sorted(out.split())

def reduce_ones():
    import numpy as np, socket, workbench as wb
    return socket.gethostname(), float(wb.allreduce(np.ones(3), op="sum")[0])

before = queued()
pool = wb.Pool.here()
during = queued()
got = pool.run(reduce_ones)
status = pool.status()
pool.stop()
state = subprocess.run(["squeue", "-h", "-j", os.environ["SLURM_JOB_ID"], "-o", "%T"],
                       capture_output=True, text=True).stdout.strip()
print(json.dumps({"job": os.environ["SLURM_JOB_ID"], "before": before, "during": during,
                  "got": got, "backend": status.backend, "nodes": status.nodes,
                  "after_stop": state}))
"""


def test_a_pool_inside_the_allocation_spans_its_nodes_and_submits_nothing(cluster):
    out = _in_allocation(_HERE, "-N", "2", "-n", "2")
    assert out["before"] == out["during"] == [out["job"]]  # no new job: a step of this one
    assert sorted(h for h, _ in out["got"]) == ["node1", "node2"]
    assert [total for _, total in out["got"]] == [2.0, 2.0]  # over TCP between the nodes
    assert out["backend"].startswith(f"inside allocation {out['job']} (nodes node1,node2)")
    assert out["after_stop"] == "RUNNING"  # stopping the pool ended only its step


_SHARED = """
import json, workbench as wb
from workbench.errors import InvalidValueError, PoolError

pid = lambda: __import__("os").getpid()
first = wb.Pool.here(2, progress=False)
second = wb.Pool.here(2, progress=False)
pids = [first.run(pid), second.run(pid)]
errors = []
for n in (1, 5):
    try:
        wb.Pool.here(n, progress=False).stop()
        errors.append("started")
    except (InvalidValueError, PoolError) as e:
        errors.append(f"{type(e).__name__}: {e}")
totals = [p.run(lambda: 1) for p in (first, second)]
first.stop(); second.stop()
print(json.dumps({"pids": pids, "errors": errors, "totals": totals}))
"""


def test_two_pools_share_an_allocation_and_one_too_many_is_told_so(cluster):
    out = _in_allocation(_SHARED, "-N", "2", "-n", "4")
    one, two = out["pids"]
    assert len(one) == len(two) == 2 and not set(one) & set(two)
    assert out["totals"] == [[1, 1], [1, 1]]  # both still work after the refusals
    full, too_many = out["errors"]
    assert full.startswith("PoolError") and "has no free tasks for this pool" in full, full
    assert "%wb stop" in full and "\n" not in full
    assert too_many.startswith("InvalidValueError") and "holds 4 tasks" in too_many
    assert "5 engines do not fit" in too_many


def test_a_slurm_pool_finds_the_controller_address_the_nodes_reach(cluster, keep_current):
    """No controller_ip: the address on the route to the partition's nodes (the bridge)."""
    pool = Pool.slurm(2, nodes=2, partition=PARTITION, time="5", progress=False)
    try:
        assert pool.launch.controller == BRIDGE_IP
        assert "route to the nodes" in pool.launch.controller_why
        hosts = pool.run(lambda: __import__("socket").gethostname())
        assert sorted(hosts) == ["node1", "node2"]
    finally:
        pool.stop()


def test_engines_that_cannot_reach_the_controller_say_what_to_try(cluster, keep_current):
    with pytest.raises(PoolError) as info:
        Pool.slurm(
            2,
            nodes=2,
            partition=PARTITION,
            time="5",
            controller_ip="127.0.0.1",
            progress=False,
            timeout=120,
        )
    message = str(info.value)
    assert "could not reach the controller at 127.0.0.1" in message, message
    assert f"controller_ip='{BRIDGE_IP}'" in message and "--controller-ip" in message
    assert "If the controller and engines are not on the same machine" not in message


def test_the_site_profile_sets_partition_and_setup_on_every_node(
    cluster, tmp_path, monkeypatch, keep_current
):
    site = tmp_path / "site.toml"
    site.write_text(
        f'[slurm]\npartition = "{PARTITION}"\ntime = "5"\n'
        'setup = ["export WB_NODE=set-on-$(hostname)"]\n'
    )
    monkeypatch.setenv("WORKBENCH_SITE", str(site))
    pool = Pool.slurm(2, nodes=2, progress=False)  # no partition, time or setup given
    try:
        seen = pool.run(lambda: __import__("os").environ.get("WB_NODE"))
        assert sorted(seen) == ["set-on-node1", "set-on-node2"]
        assert pool.launch.command.setup == ("export WB_NODE=set-on-$(hostname)",)
    finally:
        pool.stop()


def test_a_request_the_partition_never_grants_fails_at_once(cluster, keep_current):
    """The single-node default partition cannot give 2 nodes: Slurm says PartitionConfig."""
    before = _jobs()
    # "at once": the reason is read from the queue, not waited out (only that path says it)
    with pytest.raises(InvalidValueError, match=r"can never start \(PartitionConfig\)") as info:
        Pool.slurm(4, nodes=2, time="5", progress=False, timeout=600)
    assert "ask for fewer" in str(info.value) and "it was cancelled" in str(info.value)
    assert not _jobs() - before  # its job cancelled (another test's may have ended meanwhile)


_PENDING = """
import workbench as wb
wb.Pool.slurm(2, partition="{partition}", time="5", extra="--begin=now+600")
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_process_killed_while_its_job_waits_leaves_nothing(cluster, sig):
    before = _jobs()
    starter = subprocess.Popen(
        [sys.executable, "-c", _PENDING.format(partition=PARTITION)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (_jobs() - before):
        assert time.monotonic() < deadline and starter.poll() is None, starter.stdout
        time.sleep(0.5)
    (job,) = _jobs() - before
    controllers = [p for p in psutil.Process(starter.pid).children(recursive=True)
                   if "ipyparallel.controller" in " ".join(p.cmdline())]  # fmt: skip
    assert controllers
    starter.send_signal(sig)
    starter.wait(timeout=30)
    deadline = time.monotonic() + 30
    while job in _jobs() or any(p.is_running() and p.status() != "zombie" for p in controllers):
        assert time.monotonic() < deadline, f"left behind: job {job} or its controller"
        time.sleep(0.5)


def _two_node_notebook(path, slow: bool = False) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext workbench\n%wb start", metadata={"tags": ["rerun"]}),
        nbformat.v4.new_code_cell(
            "%%distributed\nimport socket, numpy as np, workbench as wb\n"
            "print(socket.gethostname(), wb.allreduce(np.ones(2))[0])"
        ),
        nbformat.v4.new_code_cell(
            "import os, time\nif not os.path.exists('go-on'):\n    open('started', 'w').close()\n"
            "    time.sleep(600)\nprint('after the wait')"
            if slow
            else "print('no wait')"
        ),
        nbformat.v4.new_code_cell("%wb stop"),
    ]
    nbformat.write(nb, path)


def _submit(*args: str, cwd) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "submit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("submitted slurm job ")[1].split(":")[0]


def _job_state(job: str, cwd) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "jobs"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(ln for ln in done.stdout.splitlines() if ln.split()[:1] == [job])
    return line.split(None, 1)[1]


def _wait_ended(job: str, cwd, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while job in _jobs():
        assert time.monotonic() < deadline, f"job {job} still queued or running"
        time.sleep(2)
    return _job_state(job, cwd)


def _texts(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return ["".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                    for o in c.outputs) for c in nb.cells]  # fmt: skip


def test_a_notebook_submitted_as_a_batch_job_runs_on_two_nodes(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    _two_node_notebook(tmp_path / "two.ipynb")
    job = _submit(
        "two.ipynb",
        "--nodes",
        "2",
        "-n",
        "2",
        "--partition",
        PARTITION,
        "--time",
        "5",
        cwd=tmp_path,
    )
    state = _wait_ended(job, tmp_path)
    assert state.startswith("completed"), state
    texts = _texts(tmp_path / "two.out.ipynb")
    assert f"inside allocation {job} (2 nodes: node[1-2])" in texts[0]
    assert "[rank 0] node1 2.0" in texts[1] and "[rank 1] node2 2.0" in texts[1]
    assert "workbench: pool stopped" in texts[3]


def _limit_once_waiting(job: str, started, timeout: float = 240) -> None:
    """Once the job's notebook waits in cell 3, bring its time limit to the next minute but one
    (Slurm counts whole minutes), so the limit, not the pool's start-up, decides when it ends."""
    deadline = time.monotonic() + timeout
    while not started.exists():
        assert time.monotonic() < deadline and job in _jobs(), f"job {job} never reached cell 3"
        time.sleep(1)
    elapsed = subprocess.run(["squeue", "-h", "-j", job, "-o", "%M"], capture_output=True,
                             text=True, timeout=20).stdout.strip()  # fmt: skip
    minutes = sum(int(x) * 60**i for i, x in enumerate(reversed(elapsed.split(":")))) // 60
    subprocess.run(["scontrol", "update", f"JobId={job}", f"TimeLimit={minutes + 2}"],
                   check=True, timeout=20)  # fmt: skip


def test_a_batch_job_at_its_time_limit_saves_and_a_resumed_one_finishes(
    cluster, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    _two_node_notebook(tmp_path / "long.ipynb", slow=True)
    job = _submit(
        "long.ipynb",
        "--nodes",
        "2",
        "-n",
        "2",
        "--partition",
        PARTITION,
        "--time",
        "10",
        "--save-before",
        "30",
        cwd=tmp_path,
    )
    _limit_once_waiting(job, tmp_path / "started")
    state = _wait_ended(job, tmp_path, timeout=240)
    assert state.startswith("stopped in cell 3 before the time limit"), state
    assert "--resume" in state
    out = tmp_path / "long.out.ipynb"
    first = _texts(out)
    assert "[rank 1] node2 2.0" in first[1]  # the finished cells were saved
    (tmp_path / "go-on").touch()
    again = _submit(
        "long.ipynb",
        "-o",
        str(out),
        "--nodes",
        "2",
        "-n",
        "2",
        "--partition",
        PARTITION,
        "--time",
        "5",
        "--resume",
        cwd=tmp_path,
    )
    assert _wait_ended(again, tmp_path).startswith("completed")
    second = _texts(out)
    assert second[1] == first[1]  # kept, not run again
    assert f"inside allocation {again}" in second[0]  # tagged rerun: a pool in the new job
    assert second[2] == "after the wait\n" and "pool stopped" in second[3]
