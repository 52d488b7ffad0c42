"""Helpers the test modules share (conftest.py keeps only fixtures and hooks)."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_idle(pool, timeout: float = 5.0) -> None:
    """Wait (bounded) until every rank shows idle: the controller's queue counts trail replies."""
    import time

    deadline = time.monotonic() + timeout
    while {r["state"] for r in pool.status().rows} != {"idle"}:
        assert time.monotonic() < deadline, f"ranks not idle after {timeout} s:\n{pool.status()}"
        time.sleep(0.1)


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
