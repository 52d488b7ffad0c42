"""Shared fixtures: one real local MPI pool for the whole session, an IPython shell, and the
single-node Slurm of tests/slurm/ when it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

# skip_guard: in CI, an unexpected skip fails the run; leftovers: a pool process or Slurm job
# left running fails the session; browser: the `lab` fixture (a JupyterLab to drive);
# jupyter_server: jp_fetch for the panel API
pytest_plugins = ["skip_guard", "leftovers", "browser", "pytest_jupyter.jupyter_server"]

# Keep cluster files and profiles of the test run away from the user's ~/.ipython.
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="wb-ipython-"))
# Engines unpickle functions defined in test modules by reference: let them import tests.
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_TESTS, os.environ.get("PYTHONPATH")]))

POOL_SIZE = 3  # not a power of two, and more ranks than cores: ordering must not be luck


@pytest.fixture(scope="session")
def pool():
    """A real pool of MPI engines, shared by the session (restarted by tests that break it)."""
    import workbench as wb

    p = wb.Pool.local(n=POOL_SIZE)
    yield p
    p.stop()


@pytest.fixture
def live_pool(pool):
    """The session pool, made current for the magics and healthy (restarted if a test broke it)."""
    from workbench.pool import set_current

    if pool.dead_ranks():
        pool.restart()
    set_current(pool)
    return pool


@pytest.fixture(scope="session")
def shell():
    """An IPython InteractiveShell with the workbench extension loaded."""
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "workbench")
    return ip


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    return done.returncode == 0 and any(s.startswith(("idle", "mix")) for s in done.stdout.split())


@pytest.fixture(scope="module")
def slurm():
    """The single-node Slurm of tests/slurm/ (skips without it; in CI its absence fails)."""
    if not _slurm_up():
        if os.environ.get("CI"):
            pytest.fail("Slurm is not running in CI: .ci/run must start it (tests/slurm/)")
        pytest.skip("no Slurm here: run tests/slurm/start-slurm.sh (needs root, slurm-wlm, munge)")
