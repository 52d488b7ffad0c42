"""JupyterLab in a real headless Chromium (Debian's package, driven by Playwright): open the
quickstart, run all cells, and check that the rank progress widget renders and finishes and that
rank-labelled output appears. A screenshot is saved under the test's tmp dir.

In CI a missing Chromium or Playwright is a failure, not a skip (.ci/run installs both)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip


def _need(thing: str, why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{thing} missing in CI: {why}")
    pytest.skip(f"{thing} missing: {why}")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    _need("chromium", "apt-get install chromium")
    raise AssertionError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _choose_workbench_kernel_if_asked(page, wait: float = 3.0) -> None:
    """A fresh JupyterLab may ask which kernel to use: answer "Workbench (MPI)"."""
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=wait * 1000)
    except Exception:  # no dialog: nothing to answer
        return
    select = dialog.locator("select")
    if select.count():
        label = next(o for o in select.locator("option").all_inner_texts() if "Workbench" in o)
        select.select_option(label=label)
    dialog.get_by_role("button", name="Select").click()


def _open_and_run_all(page, address: str) -> None:
    """Open a notebook, wait for its workbench kernel to be idle, then Run > Run All Cells."""
    page.goto(address)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=90_000)  # fmt: skip
    _choose_workbench_kernel_if_asked(page)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    _choose_workbench_kernel_if_asked(page)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real `jupyter lab` on loopback with token auth, serving a copy of notebooks/."""
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "00-quickstart.ipynb", work)
    # the kernelspec goes where `workbench lab` puts it: this environment
    subprocess.run([sys.executable, "-m", "workbench.cli", "kernel", "install", "--sys-prefix"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("runtime"))}
    token, port = secrets.token_hex(16), _free_port()
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
            "--ServerApp.open_browser=False", "--LabApp.news_url=", "--allow-root",
            f"--LabApp.workspaces_dir={tmp_path_factory.mktemp('workspaces')}"]  # fmt: skip
    log = open(work / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"jupyter lab did not start: {(work / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, token, work
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_quickstart_runs_in_jupyterlab_with_live_widget(lab, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", "pip install playwright (the Python package; no browser download)")
    url, token, _ = lab
    chromium = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        try:
            _open_and_run_all(page, f"{url}/lab/tree/00-quickstart.ipynb?reset&token={token}")
            # the rank progress widget renders and reaches its end state
            page.wait_for_selector(".workbench-progress", timeout=180_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.workbench-progress')]"
                ".some(e => e.innerText.includes('2/2 ranks done'))",
                timeout=180_000,
            )
            page.wait_for_selector("text=[rank 1] hello from rank 1 of 2", timeout=60_000)
            page.wait_for_selector("text=workbench: pool stopped", timeout=120_000)
            widget = page.locator(".workbench-progress").first
            widget.scroll_into_view_if_needed()
            text = widget.inner_text()
            bars = widget.locator(".progress-bar-success, .widget-bar-success").count()
            plot = page.locator(".workbench-metric-plot svg polyline").count()
        finally:
            page.screenshot(path=str(tmp_path / "quickstart.png"), full_page=True)
            browser.close()
    print(f"screenshot: {tmp_path / 'quickstart.png'}")
    assert "rank 0" in text and "rank 1" in text and "20/20" in text
    assert bars == 2, f"expected 2 green bars, found {bars}"
    assert plot == 2, "live loss chart: one line per rank"


_SWEEP_CELL = """import time, workbench as wb
pool = wb.Pool.attach({cluster_file!r})

def slow(config, report):
    for step in range(1, 41):  # about 4 s per trial, unless stopped
        time.sleep(0.1)
        report(step=step, score=config["a"] * step)
    return config["a"] * 40

result = wb.sweep(slow, {{"a": wb.grid(list(range(30)))}}, metric="score",
                  storage="stop.db", name="stop", pool=pool)
done = sum(t["state"] == "done" for t in result.trials)
print(f"WB-DONE {{done}} of {{len(result.trials)}} trials")
"""


def test_sweep_stop_button_acts_while_the_cell_runs(lab, live_pool, tmp_path):
    """Click the sweep widget's Stop in the browser while wb.sweep() blocks the cell: the
    sweep ends after the running trials instead of running all 30 (40 s on 3 engines)."""
    import nbformat

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", "pip install playwright (the Python package; no browser download)")
    url, token, work = lab
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Workbench (MPI)", "language": "python",
                                 "name": "workbench"}  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell(_SWEEP_CELL.format(cluster_file=live_pool.cluster_file))]
    nbformat.write(nb, work / "sweep-stop.ipynb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.set_default_timeout(60_000)
        try:
            _open_and_run_all(page, f"{url}/lab/tree/sweep-stop.ipynb?reset&token={token}")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.workbench-sweep')]"
                ".some(e => e.innerText.includes('3 running'))",
                timeout=120_000,
            )
            page.get_by_role("button", name="Stop sweep").click()
            page.get_by_role("button", name=re.compile("^Stopp(ing...|ed)$")).wait_for(
                timeout=30_000
            )
            out = page.locator(".jp-OutputArea-output", has_text="WB-DONE").first
            out.wait_for(timeout=120_000)
            line = next(x for x in out.inner_text().splitlines() if x.startswith("WB-DONE"))
            header = page.locator(".workbench-sweep").first.inner_text()
        finally:
            page.screenshot(path=str(tmp_path / "sweep-stop.png"), full_page=True)
            browser.close()
    done, total = (int(w) for w in line.split()[1:4:2])
    assert 0 < done <= 2 * live_pool.size and total < 30, line  # trials are created lazily
    assert "finished" in header
