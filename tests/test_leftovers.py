"""The session-end check (tests/leftovers.py) on a real pool left running by a test."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import psutil
import pytest
from leftovers import processes

TESTS = os.path.dirname(os.path.abspath(__file__))

_LEAVES_A_POOL = """
def test_leaves_a_pool_running():
    import workbench as wb
    wb.Pool.local(1, detach=True, progress=False)
"""


@pytest.mark.slow
def test_a_pool_left_running_fails_the_session_and_is_stopped(tmp_path):
    (tmp_path / "test_leave.py").write_text(_LEAVES_A_POOL)
    ipythondir = tempfile.mkdtemp(prefix="wb-leftover-")
    env = {**os.environ, "IPYTHONDIR": ipythondir, "PYTHONPATH": TESTS}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "leftovers", "-p", "no:cacheprovider",
         "test_leave.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out  # the test passed, the session did not
    assert "1 passed" in out and "left running by the tests (now stopped)" in out, out
    assert "ipyparallel.controller" in out and "ipyparallel.engine" in out, out
    assert processes(ipythondir) == [], "the check must stop what it found"
    assert not [p for p in psutil.process_iter(["environ"])
                if (p.info["environ"] or {}).get("IPYTHONDIR") == ipythondir]  # fmt: skip
