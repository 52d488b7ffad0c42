"""Helpers the test modules share (conftest.py keeps only fixtures and hooks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_idle(pool, timeout: float = 5.0) -> None:
    """Wait (bounded) until every rank shows idle: the controller's queue counts trail replies."""
    import time

    deadline = time.monotonic() + timeout
    while {r["state"] for r in pool.status().rows} != {"idle"}:
        assert time.monotonic() < deadline, f"ranks not idle after {timeout} s:\n{pool.status()}"
        time.sleep(0.1)


def controller_ports(cluster) -> list[int]:
    """Every port the controller of ``cluster`` listens on for engines and clients (read
    from its connection files)."""
    import json

    ports: set[int] = set()
    for kind in ("engine", "client"):
        path = os.path.join(cluster.profile_dir, "security",
                            f"ipcontroller-{cluster.cluster_id}-{kind}.json")  # fmt: skip
        with open(path) as f:
            info = json.load(f)
        for name, value in info.items():
            if name not in ("ssh", "interface", "key", "location", "pack", "unpack"):
                values = value if isinstance(value, list) else [value]
                ports.update(v for v in values if isinstance(v, int))
    return sorted(ports)


def assert_outside_ephemeral(cluster) -> None:
    """The controller of ``cluster`` was given ports no process binding port 0 can take
    (workbench.pool._ports): none in the kernel's ephemeral range."""
    from workbench.pool._ports import ephemeral_range

    lo, hi = ephemeral_range()
    ports = controller_ports(cluster)
    assert len(ports) >= 8, ports
    assert not [p for p in ports if lo <= p <= hi], (ports, (lo, hi))


def stop_if_left(cluster_file: str | None) -> None:
    """Stop the pool of ``cluster_file`` when the test did not: a failed test must leave
    nothing running (nor a newer cluster file that a later test would attach to)."""
    if cluster_file and os.path.exists(cluster_file):
        subprocess.run([sys.executable, "-m", "workbench.cli", "pool", "stop", cluster_file],
                       capture_output=True, timeout=180)  # fmt: skip


def run_template(name: str, tmp_path, *params: str, timeout: float = 300):
    """Run ``notebooks/<name>`` headless with ``workbench run -p ...`` in ``tmp_path``
    (the kernel's files stay out of notebooks/); return the executed notebook."""
    import subprocess
    import sys

    import nbformat

    out = os.path.join(str(tmp_path), f"{name}.out.ipynb")
    args = [sys.executable, "-m", "workbench.cli", "run", os.path.join(ROOT, "notebooks", name)]
    for p in params:
        args += ["-p", p]
    done = subprocess.run(
        [*args, "-o", out, "--cwd", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return nbformat.read(out, as_version=4)


def cell_text(cell) -> str:
    """The printed text and text/plain results of one cell."""
    return "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for o in cell.get("outputs", [])
    )


def outputs_text(nb) -> str:
    """Everything the code cells of ``nb`` printed, one cell per line block."""
    return "\n".join(cell_text(c) for c in nb.cells if c.cell_type == "code")


# -- scripts under real mpiexec (tests/mpi/) ---------------------------------------------
SCRIPTS = Path(ROOT) / "tests" / "mpi"
MPIEXEC = Path(sys.executable).with_name("mpiexec")


@cache
def run_mpi(
    script: str, ranks: int, timeout: float = 150.0, launcher: str = "mpiexec", **env: str
) -> tuple[int, str]:
    """Run ``tests/mpi/<script>.py`` on ``ranks`` ranks; (exit code, stdout + stderr).

    ``launcher`` is ``mpiexec`` (hydra; the script runs under ``python -m mpi4py``, which
    aborts the job on an uncaught exception) or ``mpiexec.gforker`` (plain ``python``).
    The launch runs in its own process group, so a timeout kills every rank.
    """
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    runner = [sys.executable, "-m", "mpi4py"] if launcher == "mpiexec" else [sys.executable]
    cmd = [str(MPIEXEC.with_name(launcher)), "-n", str(ranks), *runner, f"{SCRIPTS / script}.py"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout}s (hang?); output:\n{out}")
    return proc.returncode, out


def assert_passed(code: int, out: str, label: str) -> None:
    assert code == 0 and f"{label}: PASSED" in out, f"exit code {code}; output:\n{out[-6000:]}"
