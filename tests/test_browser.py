"""JupyterLab in a real headless Chromium (Debian's package, driven by Playwright): open the
quickstart, run all cells, and check that the rank progress widget renders and finishes and that
rank-labelled output appears. A screenshot is saved under the test's tmp dir.

In CI a missing Chromium or Playwright is a failure, not a skip (.ci/run installs both)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

import pytest
from browser import (
    _choose_workbench_kernel_if_asked,
    _need,
    _open_and_run_all,
    _page,
    _write_notebook,
)
from helpers import stop_if_left

pytestmark = pytest.mark.slow  # (minutes in all: `pytest -m 'not slow'` skips them)


def test_quickstart_runs_in_jupyterlab_with_live_widget(lab, tmp_path):
    url, token, _ = lab
    with _page(tmp_path / "quickstart.png") as page:
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
    url, token, work = lab
    _write_notebook(
        work / "sweep-stop.ipynb", _SWEEP_CELL.format(cluster_file=live_pool.cluster_file)
    )
    with _page(tmp_path / "sweep-stop.png", 1400) as page:
        _open_and_run_all(page, f"{url}/lab/tree/sweep-stop.ipynb?reset&token={token}")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.workbench-sweep')]"
            ".some(e => e.innerText.includes('3 running'))",
            timeout=120_000,
        )
        page.get_by_role("button", name="Stop sweep").click()
        page.get_by_role("button", name=re.compile("^Stopp(ing...|ed)$")).wait_for(timeout=30_000)
        out = page.locator(".jp-OutputArea-output", has_text="WB-DONE").first
        out.wait_for(timeout=120_000)
        line = next(x for x in out.inner_text().splitlines() if x.startswith("WB-DONE"))
        header = page.locator(".workbench-sweep").first.inner_text()
    done, total = (int(w) for w in line.split()[1:4:2])
    assert 0 < done <= 2 * live_pool.size and total < 30, line  # trials are created lazily
    assert "finished" in header


_VIEWS_SETUP = """import time, workbench as wb
pool = wb.Pool.attach({cluster_file!r})

def train():
    time.sleep(3)  # imports, a first numba compile: no report yet
    for step in range(1, 31):
        time.sleep(0.05)
        wb.progress(step, total=30, loss=10.0 ** -(step / 6), epoch=step // 10)

pool.run(train)
print("WB-TRAINED")
"""

_VIEWS_SWEEP = """def objective(config, report):
    score = 0.5 + config["alpha"] * (2 if config["loss"] == "hinge" else 1)
    for step in range(1, 4):
        report(step=step, acc=score * step / 3)
    return score

result = wb.sweep(objective, {"loss": wb.grid(["hinge", 'modified_huber "q"']),
                              "alpha": wb.grid([0.0123456789, 0.2, 0.15])},
                  metric="acc", storage="views.db", name="views", pool=pool)
print("WB-SWEPT", round(result.best_value, 4))
"""


def test_rank_charts_and_sweep_table_as_a_person_sees_them(lab, live_pool, tmp_path):
    """The "starting…" line shows before the first report; the rank chart has a legend, a log scale
    for the falling loss and no chart for the epoch counter; the sweep table has a column per
    parameter with no escape fragments and sorts by a click on a header."""
    url, token, work = lab
    _write_notebook(work / "views.ipynb", _VIEWS_SETUP.format(cluster_file=live_pool.cluster_file),
                    _VIEWS_SWEEP)  # fmt: skip
    with _page(tmp_path / "views.png") as page:
        _open_and_run_all(page, f"{url}/lab/tree/views.ipynb?reset&token={token}")
        progress = page.locator(".workbench-progress").first
        progress.wait_for(timeout=120_000)
        starting = progress.inner_text()  # shown while the ranks sleep, before a report
        page.screenshot(path=str(tmp_path / "starting.png"), full_page=True)
        page.locator(".jp-OutputArea-output", has_text="WB-TRAINED").wait_for(timeout=120_000)
        chart = page.locator(".workbench-metric-plot").first.inner_html()
        page.locator(".jp-OutputArea-output", has_text="WB-SWEPT").wait_for(timeout=180_000)
        table = page.locator(".workbench-sweep-table").first
        header = [t.strip() for t in table.locator("th").all_inner_texts()]
        text = table.inner_text()
        page.locator(".workbench-sweep").first.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "sweep-table.png"), full_page=True)
        table.locator("th", has_text="alpha").click()
        at = header.index("alpha")
        alphas = table.locator(f"tbody tr td:nth-child({at + 1})").all_inner_texts()
        page.screenshot(path=str(tmp_path / "sweep-sorted.png"), full_page=True)
    assert "starting… (compiling)" in starting, starting
    assert chart.count('class="workbench-legend-item"') == live_pool.size and ">rank 1<" in chart
    assert "loss (log scale)" in chart and ">epoch" not in chart
    assert header[:4] == ["trial", "state", "loss", "alpha"] and "acc" in header, header
    assert "&quot;" not in text and "&amp;" not in text and 'modified_huber "q"' in text
    assert "0.01235" in text and "0.0123456789" not in text  # 4 digits, the rest on hover
    assert [float(a) for a in alphas] == sorted(float(a) for a in alphas), alphas


_TIMELINE_CELLS = (
    "import workbench as wb\npool = wb.Pool.attach({cluster_file!r})",
    "%%distributed --timeline trace.json --no-progress\n"
    "import time, numpy as np, workbench as wb\n"
    "for step in range(30):  # rank 1 is slow on purpose: the straggler\n"
    "    with wb.timeline.span('compute', {{'step': step}}):\n"
    "        time.sleep(0.006 if rank == 1 else 0.002)\n"
    "    wb.allreduce(np.ones(4096, dtype=np.float32))",
    "wb.timeline.show()",
)


def test_timeline_shows_ranks_phases_and_the_straggler(lab, live_pool, tmp_path):
    """`wb.timeline.show()` after a `%%distributed --timeline` cell: a row per rank on a
    canvas, a legend of the span kinds, the summary table naming the straggler; the wheel
    zooms in (the axis changes) and a span tells what it is on hover."""
    url, token, work = lab
    (work / "trace.json").unlink(missing_ok=True)
    cells = [c.format(cluster_file=live_pool.cluster_file) for c in _TIMELINE_CELLS]
    _write_notebook(work / "timeline.ipynb", *cells)
    with _page(tmp_path / "timeline.png", 1000) as page:
        _open_and_run_all(page, f"{url}/lab/tree/timeline.ipynb?reset&token={token}")
        view = page.locator(".workbench-timeline").first
        view.wait_for(timeout=180_000)
        view.scroll_into_view_if_needed()
        page.locator(".workbench-timeline-summary").first.wait_for(timeout=60_000)
        legend = view.locator(".legend").inner_text()
        caption = view.locator(".caption").inner_text()
        summary = page.locator(".workbench-timeline-summary").first.inner_text()
        canvas = view.locator("canvas")
        box = canvas.bounding_box()
        before = canvas.screenshot()
        page.screenshot(path=str(tmp_path / "timeline-all.png"), full_page=True)
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
        for _ in range(6):
            page.mouse.wheel(0, -300)
        page.wait_for_timeout(300)
        zoomed = canvas.screenshot()
        page.screenshot(path=str(tmp_path / "timeline-zoomed.png"), full_page=True)
        found = ""
        for k in range(40):  # hover along rank 0's row until a span answers
            page.mouse.move(box["x"] + 175 + k * (box["width"] - 190) / 40, box["y"] + 30)
            tip = view.locator(".tip")
            if tip.is_visible():
                found = tip.inner_text()
                break
    assert (work / "trace.json").exists()
    for kind in ("compute", "allreduce", "wait for peers", "reduce", "cell"):
        assert kind in legend, legend
    assert f"{live_pool.size} ranks" in caption and "wheel: zoom" in caption, caption
    assert "rank 1 held the others up longest" in summary, summary
    assert "computing" in summary and "waiting" in summary
    assert before != zoomed, "the wheel did not zoom"
    assert "rank 0" in found, found


_STOPPED_CELLS = (
    "%wb start -n 1\nimport workbench as wb\n"
    "open('cluster-file.txt', 'w').write(wb.pool.current().cluster_file)",
    "import os, time\nfor _ in range(600):  # the test stops the pool from the sidebar meanwhile\n"
    "    if os.path.exists('stopped.flag'):\n        break\n    time.sleep(0.1)",
    "%wb status",
    "%wb stop",
)


def test_pool_stopped_from_the_ipyparallel_sidebar_answers_in_the_notebook(lab, tmp_path):
    """ipyparallel's sidebar STOP (its REST call, as the button makes it) on a workbench pool:
    `%wb status` then answers within 10 s in one line, `%wb stop` cleans up, and no engine or
    controller log lands in the notebook."""
    import json
    import urllib.parse

    url, token, work = lab
    for name in ("cluster-file.txt", "stopped.flag"):
        (work / name).unlink(missing_ok=True)
    _write_notebook(work / "stopped.ipynb", *_STOPPED_CELLS)
    with _page(tmp_path / "stopped.png", 1200) as page:
        _open_and_run_all(page, f"{url}/lab/tree/stopped.ipynb?reset&token={token}")
        # while `%wb start` runs, its cell says what starts and the kernel reads busy
        page.locator(".jp-OutputArea-output", has_text="starting 1 MPI engine").wait_for()
        starting_status = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute(
            "data-status"
        )
        started_by_then = page.locator(".jp-OutputArea-output", has_text="started 1 MPI").count()
        deadline = time.monotonic() + 120
        while not (work / "cluster-file.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        cluster_file = (work / "cluster-file.txt").read_text()
        auth = {"Authorization": f"token {token}"}
        req = urllib.request.Request(f"{url}/ipyparallel/clusters", headers=auth)
        listed = json.load(urllib.request.urlopen(req, timeout=30))
        key = next(c["id"] for c in listed if c.get("cluster_file") == cluster_file)
        req = urllib.request.Request(f"{url}/ipyparallel/clusters/{urllib.parse.quote(key)}",
                                     headers=auth, method="DELETE")  # fmt: skip
        urllib.request.urlopen(req, timeout=60)
        (work / "stopped.flag").touch()
        gone = page.locator(".jp-OutputArea-output", has_text="is gone")
        gone.wait_for(timeout=60_000)
        message = gone.first.inner_text()
        page.locator(".jp-Cell").last.click()  # Run All stopped at the error: run `%wb stop`
        page.keyboard.press("Shift+Enter")
        page.locator(".jp-OutputArea-output", has_text="pool stopped").wait_for(timeout=60_000)
        everything = page.locator(".jp-Notebook").first.inner_text()
    assert started_by_then or starting_status == "busy", starting_status
    assert "%wb start" in message and len(message.strip().splitlines()) <= 2, message
    for log_line in ("engine set stopped", "Controller stopped", "KernelNanny", "mpiexec error"):
        assert log_line not in everything, f"{log_line!r} printed into the notebook"


# -- the MPI pools panel ------------------------------------------------------------------------
@contextlib.contextmanager
def _detached(*args: str):
    """`workbench pool start --detach ARGS`; yields the cluster file it printed and stops
    the pool afterwards if the test did not (a failed test leaves nothing running)."""
    cmd = [sys.executable, "-m", "workbench.cli", "pool", "start", "--detach", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    cluster_file = next(line.split(": ", 1)[1] for line in out.stdout.splitlines()
                        if line.startswith("cluster file: "))  # fmt: skip
    try:
        yield cluster_file
    finally:
        stop_if_left(cluster_file)


def _open_panel(page) -> None:
    page.locator(".jp-SideBar [data-id='workbench-pools']").first.click()
    page.locator("#workbench-pools .wb-start-form").wait_for()


def _pool_node(page, cluster_file: str):
    return page.locator(f"#workbench-pools .wb-pool[data-cluster-file='{cluster_file}']")


def test_pools_panel_lists_attaches_shows_busy_ranks_and_stops(lab, tmp_path):
    """A pool from `workbench pool start -n 2 --detach` shows in the panel with two idle
    ranks; Attach runs `%wb attach` in the open notebook; a %%distributed sleep there turns
    both ranks busy (panel and status bar); Stop removes the pool and its processes."""
    import psutil

    url, token, work = lab
    with _detached("-n", "2") as cluster_file:
        _write_notebook(work / "panel.ipynb", "%%distributed\nimport time\ntime.sleep(6)",
                        "%wb status")  # fmt: skip
        pids: list[int] = []
        with _page(tmp_path / "panel.png", 1000) as page:
            page.goto(f"{url}/lab/tree/panel.ipynb?reset&token={token}")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=90_000)  # fmt: skip
            _choose_workbench_kernel_if_asked(page)
            _open_panel(page)
            node = _pool_node(page, cluster_file)
            node.locator(".wb-rank[data-state='idle']").nth(1).wait_for(timeout=30_000)
            rows = node.locator(".wb-rank").count()
            pids = [int(t) for t in node.locator(".wb-rank td:nth-child(3)").all_inner_texts()]
            page.screenshot(path=str(tmp_path / "panel-idle.png"))
            node.locator(".wb-attach").click()
            page.locator(".jp-OutputArea-output", has_text="attached to 2 MPI engines").wait_for()
            status = page.locator("#workbench-statusbar")
            page.wait_for_function("() => document.querySelector('#workbench-statusbar')"
                                   "?.textContent.includes('MPI pool · 2 ranks')")  # fmt: skip
            page.locator(".jp-Cell").first.click()  # the %%distributed sleep
            page.keyboard.press("Shift+Enter")
            node.locator(".wb-rank[data-state='busy']").nth(1).wait_for(timeout=30_000)
            busy_bar = status.inner_text()
            page.screenshot(path=str(tmp_path / "panel-busy.png"))
            node.locator(".wb-rank[data-state='idle']").nth(1).wait_for(timeout=60_000)
            page.locator(".jp-Cell").nth(1).click()  # %wb status, in the attached notebook
            page.keyboard.press("Shift+Enter")
            page.locator(".jp-OutputArea-output", has_text="log:").first.wait_for()
            node.locator(".wb-stop").click()
            node.wait_for(state="detached", timeout=60_000)
            page.screenshot(path=str(tmp_path / "panel-stopped.png"))
        stopped = not os.path.exists(cluster_file)  # (before the block's own clean-up)
    assert rows == 2 and len(pids) == 2
    assert "2 busy" in busy_bar, busy_bar
    deadline = time.monotonic() + 20
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(psutil.pid_exists(p) for p in pids), "engines still running after Stop"
    assert stopped, "the panel's Stop left the cluster file"


def test_pools_panel_in_notebook_7_attaches_and_stops(lab, tmp_path):
    """Notebook 7 (same server, /notebooks/ page): the panel opens from View > Left Sidebar
    > Show MPI pools, lists the pool, Attach runs `%wb attach` in that notebook, and Stop
    stops it. Notebook 7 has no status bar: nothing else is asked of it there."""
    url, token, work = lab
    with _detached("-n", "1") as cluster_file:
        _write_notebook(work / "nb7.ipynb", "%%distributed\nprint('nb7 rank', rank)")
        with _page(tmp_path / "nb7.png", 1000) as page:
            page.goto(f"{url}/notebooks/nb7.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=90_000)  # fmt: skip
            _choose_workbench_kernel_if_asked(page)
            page.get_by_role("menuitem", name="View", exact=True).click()
            page.locator(".lm-Menu-item", has_text="Left Sidebar").click()
            page.locator(".lm-Menu-item", has_text="Show MPI pools").click()
            node = _pool_node(page, cluster_file)
            node.locator(".wb-rank[data-state='idle']").first.wait_for(timeout=30_000)
            node.locator(".wb-attach").click()
            page.locator(".jp-OutputArea-output", has_text="attached to 1 MPI engine").wait_for()
            page.locator(".jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            page.locator(".jp-OutputArea-output", has_text="nb7 rank 0").wait_for()
            page.screenshot(path=str(tmp_path / "nb7-attached.png"))
            node.locator(".wb-stop").click()
            node.wait_for(state="detached", timeout=60_000)
        stopped = not os.path.exists(cluster_file)
    assert stopped, "the panel's Stop left the cluster file"


def test_pools_panel_shows_a_slurm_pool_pending_then_running_with_time_left(lab, tmp_path):
    """The single-node Slurm of the test suite: a job held back a few seconds shows pending
    with its reason, then running with the time left in its allocation."""
    import shutil as _sh

    if not _sh.which("sbatch"):
        _need("Slurm", "tests/slurm/start-slurm.sh (needs slurm-wlm, munge)")
    url, token, _ = lab
    cmd = [sys.executable, "-m", "workbench.cli", "pool", "start", "--detach", "--slurm",
           "-n", "1", "--time", "5", "--extra=--begin=now+6"]  # fmt: skip
    starter = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    cluster_file = None
    try:
        with _page(tmp_path / "panel-slurm.png", 900) as page:
            page.goto(f"{url}/lab?reset&token={token}")
            _open_panel(page)
            pool = page.locator("#workbench-pools .wb-pool", has_text="Slurm job")
            pool.filter(has_text="pending").first.wait_for(timeout=60_000)
            pending = pool.first.inner_text()
            page.screenshot(path=str(tmp_path / "panel-slurm-pending.png"))
            pool.filter(has_text="left").locator(".wb-rank").first.wait_for(timeout=120_000)
            running = pool.first.inner_text()
            cluster_file = pool.first.get_attribute("data-cluster-file")
            pool.first.locator(".wb-stop").click()
            # (a Slurm pool's stop cancels the job and waits for it: minutes on a loaded
            # machine, where 60 s ran out once)
            pool.first.wait_for(state="detached", timeout=180_000)
    finally:
        starter.wait(timeout=120)
        stop_if_left(cluster_file)
    assert "BeginTime" in pending or "pending" in pending, pending
    assert "running" in running and re.search(r"\d+:\d\d left", running), running
