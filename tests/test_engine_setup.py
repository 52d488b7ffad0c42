"""How engines start: setup lines before them, a command they run under (a container), their
interpreter; kept by restart and attach; and what a bad one says. On local pools (the same
launch code starts Slurm pools and steps of an allocation: tests/test_sites.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import psutil
import pytest

from workbench.errors import InvalidValueError, PoolError
from workbench.pool import Pool, current, set_current

WRAPPER = """#!/bin/bash
# stands in for a container runtime: sets its environment up, then runs the command
export WB_INSIDE="wrapped-by-$$"
exec "$@"
"""


def _engine_view() -> tuple[str | None, str | None, int, list[str]]:
    import os

    import psutil

    parent = psutil.Process().parent()
    return (os.environ.get("WB_SETUP"), os.environ.get("WB_INSIDE"), os.getpid(),
            parent.cmdline() if parent else [])  # fmt: skip


@pytest.fixture
def wrapper(tmp_path):
    path = tmp_path / "wrap.sh"
    path.write_text(WRAPPER)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def keep_current():
    before = current()
    yield
    set_current(before)


def _check_started_as_asked(pool: Pool, wrapper: str) -> None:
    for setup, inside, pid, parent in pool.run(_engine_view):
        assert setup == "hello from vm" or setup.startswith("hello from "), setup
        assert inside == f"wrapped-by-{pid}"  # the wrapper exec'd into the engine itself
        assert wrapper in parent and "bash" in parent  # the launcher started the wrapper


@pytest.mark.slow
def test_setup_lines_and_a_wrapper_reach_every_engine_and_survive_restart_and_attach(
    wrapper, keep_current
):
    setup = ['export WB_SETUP="hello from $(hostname)"', "true  # a second line"]
    pool = Pool.local(2, setup=setup, container=wrapper, progress=False)
    try:
        _check_started_as_asked(pool, wrapper)
        pool.restart()
        _check_started_as_asked(pool, wrapper)
        assert pool.launch.command.setup == tuple(setup)
        # another process attaches and restarts the pool: the same setup and wrapper
        code = textwrap.dedent(f"""
            import workbench as wb
            pool = wb.Pool.attach({pool.cluster_file!r})
            pool.restart()
            print(set(pool.run(lambda: __import__("os").environ.get("WB_SETUP"))))
            pool.close()
        """)  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=180, env=os.environ.copy())  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "hello from" in done.stdout
    finally:
        pool.stop()


def test_a_wrapper_with_an_environment_of_its_own(keep_current):
    """``env -i`` starts the engine with none of this environment (as a container without
    --env would): it still finds its pool (profile and cluster id are on its command line)."""
    pool = Pool.local(1, container="env -i PATH=/usr/bin:/bin", progress=False)
    try:
        pool.execute("import os\nnames = sorted(os.environ)", stream=False, progress=False)
        (names,) = pool.view().pull("names", block=True)  # (test functions do not import there)
        assert "IPYTHONDIR" not in names and "IPP_CLUSTER_ID" not in names
    finally:
        pool.stop()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not here")
def test_engines_in_a_user_namespace(keep_current):
    """A rootless-container-like wrapper: each engine in a user namespace of its own."""
    pool = Pool.local(2, container="unshare --user --map-root-user", progress=False)
    try:
        maps = pool.run(
            lambda: __import__("pathlib").Path("/proc/self/uid_map").read_text().split()
        )
        assert maps == [["0", "0", "1"]] * 2  # root mapped to one id: a new namespace
        assert pool.run(lambda: __import__("os").getpid()) != [os.getpid()] * 2
    finally:
        pool.stop()


@pytest.mark.skipif(
    shutil.which("apptainer") is None,
    reason="apptainer is not installed (Debian 12 does not package it); the env -i and "
    "unshare wrappers above stand in for a container runtime",
)
def test_engines_in_an_apptainer_image(tmp_path, keep_current):  # pragma: no cover - no apptainer
    image = os.environ.get("WORKBENCH_TEST_SIF", "")
    if not image:
        pytest.skip("apptainer is not installed (set WORKBENCH_TEST_SIF to an image to test)")
    pool = Pool.local(1, container=f"apptainer exec {image}", progress=False)
    try:
        assert pool.run(lambda: os.path.exists("/.singularity.d")) == [True]
    finally:
        pool.stop()


def _engines_running() -> set[int]:
    found = set()
    for p in psutil.process_iter(["cmdline"]):
        if "ipyparallel.engine" in " ".join(p.info["cmdline"] or []):
            found.add(p.pid)
    return found


def test_a_failing_setup_line_is_one_error_naming_it_and_leaves_nothing(keep_current):
    before = _engines_running()
    with pytest.raises(PoolError) as info:
        Pool.local(2, setup=["export OK=1", "module load no-such-mpi"], progress=False)
    message = str(info.value)
    assert "a setup line failed on" in message and "module: command not found" in message
    assert "module load no-such-mpi" in message and "\n" not in message
    assert _engines_running() <= before


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"container": "apptainerx exec img.sif"}, "container command 'apptainerx'"),
        ({"python": "/no/such/python"}, "python='/no/such/python' is not an executable"),
        ({"setup": [1, 2]}, "setup must be shell lines"),
        ({"container": "   "}, "container must be a command"),
    ],
)
def test_what_cannot_start_is_refused_at_once(kwargs, words, keep_current):
    with pytest.raises(InvalidValueError, match=words):
        Pool.local(2, progress=False, **kwargs)
