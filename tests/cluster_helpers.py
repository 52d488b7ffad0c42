"""The multi-node Slurm cluster of tests/cluster/start-cluster.sh, for the tests that use it:
which nodes are up, a fixture body that skips (fails in CI) without them, pools on them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from workbench.pool import Pool

#: The bridge address of tests/cluster/start-cluster.sh: where the nodes reach this machine
#: (on a real cluster: the login node's address on the compute nodes' network). Pools find
#: it themselves (no controller_ip given): the tests check that they do.
BRIDGE_IP = "10.77.0.1"
PARTITION = "multi"
START_TIMEOUT = 150.0  # queue, three nodes' engines importing numpy/numba on 2 cores
RUN_TIMEOUT = 240.0


def cluster_nodes() -> list[str]:
    """The idle (or partly used) nodes of the partition ``multi``."""
    if not shutil.which("sinfo"):
        return []
    done = subprocess.run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N %t"],
                          capture_output=True, text=True, timeout=20)  # fmt: skip
    return [
        line.split()[0]
        for line in done.stdout.splitlines()
        if done.returncode == 0 and line.split()[1].startswith(("idle", "mix", "alloc"))
    ]


def _completing() -> bool:
    done = subprocess.run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%t"],
                          capture_output=True, text=True, timeout=20)  # fmt: skip
    return any(state.startswith("comp") for state in done.stdout.split())


def require_cluster() -> list[str]:
    """The nodes of the cluster; skips the test without three of them (fails in CI). Nodes
    still completing the jobs of a module before (state ``comp``) are waited for (bounded)."""
    deadline = time.monotonic() + 60
    nodes = cluster_nodes()
    while len(nodes) < 3 and time.monotonic() < deadline and _completing():
        time.sleep(1)
        nodes = cluster_nodes()
    if len(nodes) < 3:
        if os.environ.get("CI"):
            pytest.fail(
                f"the multi-node Slurm cluster is not running in CI (nodes up: {nodes}): "
                ".ci/run must start it (tests/cluster/start-cluster.sh --nodes 3)"
            )
        pytest.skip(
            "no multi-node cluster here: run tests/cluster/start-cluster.sh --nodes 3 "
            "(root; after tests/slurm/start-slurm.sh's packages)"
        )
    return nodes


def start_pool(n: int, nodes: int) -> Pool:
    """A pool of ``n`` engines on ``nodes`` nodes of the partition, timed."""
    start = time.monotonic()
    pool = Pool.slurm(n, nodes=nodes, partition=PARTITION, time="15", timeout=START_TIMEOUT)
    print(f"{n} engines on {nodes} nodes started in {time.monotonic() - start:.1f} s")
    return pool
