"""The pool panel's server API (/workbench/api/pools) on a real Jupyter server (pytest-jupyter's
jp_fetch) against real pools: list, start, restart, stop, a stale cluster file, bad input, and
an unauthenticated request refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from helpers import stop_if_left
from tornado.httpclient import HTTPClientError

from workbench.pool import Pool


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"workbench.panel": True}}}


async def _pools(jp_fetch) -> list[dict]:
    response = await jp_fetch("workbench", "api", "pools", request_timeout=60)
    assert response.code == 200
    return json.loads(response.body)["pools"]


def _find(pools: list[dict], cluster_file: str) -> dict | None:
    return next((p for p in pools if p["cluster_file"] == cluster_file), None)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
async def test_a_pool_from_the_command_line_is_listed_busy_then_stopped(jp_fetch):
    cmd = [sys.executable, "-m", "workbench.cli", "pool", "start", "-n", "2", "--detach"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)
    cluster_file = next(line.split(": ", 1)[1] for line in out.stdout.splitlines()
                        if line.startswith("cluster file: "))  # fmt: skip
    try:
        pool = _find(await _pools(jp_fetch), cluster_file)
        assert pool is not None and pool["state"] == "running" and pool["backend"] == "local"
        assert [r["state"] for r in pool["ranks"]] == ["idle", "idle"] and pool["registered"] == 2
        assert {"rank", "host", "pid", "memory"} <= set(pool["ranks"][0])
        other = Pool.attach(cluster_file)  # another client keeps the ranks busy
        try:
            other.client[:].apply_async(time.sleep, 30)
            # the controller hands the tasks to the engines one after the other: poll (bounded)
            deadline = time.monotonic() + 25
            while True:
                states = [r["state"] for r in _find(await _pools(jp_fetch), cluster_file)["ranks"]]
                if states == ["busy", "busy"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert states == ["busy", "busy"], states
        finally:
            other.close()
        pids = [r["pid"] for r in pool["ranks"]]
        response = await jp_fetch("workbench", "api", "pools", pool["id"], method="DELETE",
                                  request_timeout=90)  # fmt: skip
        assert "stopped the pool of 2 MPI engines" in json.loads(response.body)["message"]
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "engines still running after stop"
        assert _find(await _pools(jp_fetch), cluster_file) is None
    finally:
        stop_if_left(cluster_file)


@pytest.mark.slow
async def test_start_restart_and_stop_from_the_panel(jp_fetch):
    response = await jp_fetch("workbench", "api", "pools", method="POST",
                              body=json.dumps({"ranks": 1}), request_timeout=180)  # fmt: skip
    assert response.code == 201
    cluster_file = json.loads(response.body)["cluster_file"]
    pool = _find(await _pools(jp_fetch), cluster_file)
    try:
        assert pool["registered"] == 1 and pool["ranks"][0]["state"] == "idle"
        before = pool["ranks"][0]["pid"]
        restart = json.dumps({"action": "restart"})
        response = await jp_fetch("workbench", "api", "pools", pool["id"], method="POST",
                                  body=restart, request_timeout=180)  # fmt: skip
        assert "restarted 1 MPI engine" in json.loads(response.body)["message"]
        after = _find(await _pools(jp_fetch), cluster_file)
        assert after["ranks"][0]["pid"] != before and after["ranks"][0]["state"] == "idle"
    finally:
        await jp_fetch("workbench", "api", "pools", pool["id"], method="DELETE",
                       request_timeout=90)  # fmt: skip
    assert not os.path.exists(cluster_file)


async def test_a_stale_cluster_file_shows_the_pool_gone_and_stop_cleans_it(jp_fetch, pool):
    with open(pool.cluster_file) as f:
        data = json.load(f)
    dead = subprocess.Popen(["true"])
    dead.wait()
    data["cluster"]["cluster_id"] = "stale-0001"
    data["controller"]["state"]["pid"] = dead.pid
    stale = os.path.join(os.path.dirname(pool.cluster_file), "cluster-stale-0001.json")
    with open(stale, "w") as f:
        json.dump(data, f)
    shown = _find(await _pools(jp_fetch), stale)
    assert shown["state"] == "gone" and "not running" in shown["error"] and shown["ranks"] == []
    assert _find(await _pools(jp_fetch), pool.cluster_file)["state"] == "running"
    response = await jp_fetch("workbench", "api", "pools", shown["id"], method="DELETE")
    assert "already gone" in json.loads(response.body)["message"]
    assert not os.path.exists(stale) and pool.run(lambda: 1) == [1] * pool.size


async def test_bad_requests_are_refused_with_a_reason(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "pools", method="POST", body=json.dumps({"ranks": 0}))
    assert e.value.code == 400 and "ranks must be a positive" in str(e.value.response.reason)
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "pools", "default:nope", method="DELETE")
    assert e.value.code == 404
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "pools", headers={"Authorization": ""})
    assert e.value.code == 403  # no token: refused


async def test_slurm_missing_is_a_readable_refusal(jp_fetch, monkeypatch, tmp_path):
    """No Slurm on the server's PATH: the start form gets one line saying so, not a trace."""
    monkeypatch.setenv("PATH", str(tmp_path))  # (mpiexec is found next to python)
    body = json.dumps({"ranks": 1, "slurm": {"time": "5"}})
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "pools", method="POST", body=body, request_timeout=60)
    assert e.value.code == 409
    assert "Slurm commands not found: sbatch" in str(e.value.response.reason)


async def test_a_job_slurm_refuses_comes_back_in_sbatch_words(jp_fetch, slurm):
    body = json.dumps({"ranks": 1, "slurm": {"partition": "nope"}})
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "pools", method="POST", body=body, request_timeout=60)
    assert e.value.code == 409
    reason = str(e.value.response.reason)
    assert "sbatch refused the job: invalid partition specified: nope" in reason, reason
