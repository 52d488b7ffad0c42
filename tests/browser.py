"""Helpers of the browser tests: Debian's Chromium driven by Playwright, and a real
JupyterLab on loopback (the module-scoped ``lab`` fixture, imported by the test modules)."""

from __future__ import annotations

import contextlib
import os
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


def _write_notebook(path: Path, *sources: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Workbench (MPI)", "language": "python",
                                 "name": "workbench"}  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def _browser() -> str:
    """Debian's Chromium, once Playwright is known to be importable (else skip or fail)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need("playwright", "pip install playwright (the Python package; no browser download)")
    return _chromium()


@contextlib.contextmanager
def _page(screenshot: Path, height: int = 1800):
    """A Chromium page (Debian's browser, driven by Playwright) that saves a full-page
    ``screenshot`` when the block ends, passed or failed."""
    from playwright.sync_api import sync_playwright

    chromium = _browser()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    print(f"screenshot: {screenshot}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real `jupyter lab` on loopback with token auth, serving a copy of notebooks/.
    Without a browser to drive it every test here skips (fails in CI) before starting
    anything: a test that started a pool and then skipped would leave it running."""
    _browser()
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
