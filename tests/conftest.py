"""Shared fixtures: one real local MPI pool for the whole session, and an IPython shell."""

from __future__ import annotations

import os
import tempfile

import pytest

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


def wait_idle(pool, timeout: float = 5.0) -> None:
    """Wait (bounded) until every rank shows idle: the controller's queue counts trail replies."""
    import time

    deadline = time.monotonic() + timeout
    while {r["state"] for r in pool.status().rows} != {"idle"}:
        assert time.monotonic() < deadline, f"ranks not idle after {timeout} s:\n{pool.status()}"
        time.sleep(0.1)
