"""`workbench run` as a batch job runs it: the output saved after every cell, a run stopped by
SIGTERM or SIGUSR1 (Slurm, before a time limit) keeps every finished cell and exits 3, and
`--resume` goes on from the first cell that did not finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

SLOW_CELL = """import os, time
if not os.path.exists("go-on"):
    open("started", "w").close()
    time.sleep(300)
print("third done")"""


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import time\nstamp = time.time()\nprint('first', stamp)", metadata={"tags": ["rerun"]}
        ),
        nbformat.v4.new_code_cell("print('second')"),
        nbformat.v4.new_code_cell(SLOW_CELL),
        nbformat.v4.new_code_cell("print('fourth', stamp)"),
    ]
    nbformat.write(nb, path)
    return path


def _outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]


def _run(*args: str, cwd: Path, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stopped_run_keeps_every_finished_cell_and_resumes(tmp_path, sig):
    nb = _notebook(tmp_path / "job.ipynb")
    out = tmp_path / "job.out.ipynb"
    run = _run(str(nb), "-o", str(out), cwd=tmp_path)
    _wait_for(tmp_path / "started")
    assert _outputs(out)[1] == "second\n"  # saved after each cell, before the run ended
    kernels = [p for p in psutil.Process(run.pid).children(recursive=True)]
    run.send_signal(sig)
    said, _ = run.communicate(timeout=60)
    assert run.returncode == 3, said  # stopped, saved, resumable
    assert f"stopped by {sig.name}" in said and f"-o {out} --resume" in said, said
    saved = nbformat.read(out, as_version=4)
    assert saved.metadata["workbench"]["state"] == "stopped"
    assert saved.metadata["workbench"]["cell"] == 3
    done = [bool(c.metadata.get("workbench", {}).get("finished")) for c in saved.cells]
    assert done == [True, True, False, False]
    first, second, *_ = _outputs(out)
    assert first.startswith("first ") and second == "second\n"
    _, alive = psutil.wait_procs(kernels, timeout=15)
    assert not alive, f"the kernel outlived the run: {alive}"

    (tmp_path / "go-on").touch()
    resumed = _run(str(nb), "-o", str(out), "--resume", cwd=tmp_path)
    said, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, said
    assert "cells 2 kept (finished); cells 1 run again (tagged rerun); on from cell 3" in said
    again, kept, third, fourth = _outputs(out)
    assert kept == "second\n" and third == "third done\n"
    assert again != first and fourth.split()[1] == again.split()[1]  # rerun, then used
    assert nbformat.read(out, as_version=4).metadata["workbench"]["state"] == "completed"


def test_resume_needs_a_saved_run(tmp_path):
    nb = _notebook(tmp_path / "job.ipynb")
    missing = _run(str(nb), "-o", str(tmp_path / "none.ipynb"), "--resume", cwd=tmp_path)
    said, _ = missing.communicate(timeout=60)
    assert missing.returncode == 2 and "does not exist; run without --resume first" in said
    foreign = tmp_path / "foreign.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), foreign)
    other = _run(str(nb), "-o", str(foreign), "--resume", cwd=tmp_path)
    said, _ = other.communicate(timeout=60)
    assert other.returncode == 2 and "was not written by `workbench run`" in said
    both = _run(str(nb), "--timeout", "5", "--no-cell-timeout", cwd=tmp_path)
    said, _ = both.communicate(timeout=60)
    assert both.returncode == 2 and "either --timeout S or --no-cell-timeout" in said
