"""%wb and %%distributed driven through a real IPython shell against real MPI engines."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from helpers import wait_idle
from IPython.core.error import UsageError

from workbench.errors import PoolError, PoolTimeoutError, RankError


def test_distributed_output_from_every_rank_labelled(shell, live_pool, capsys):
    shell.run_cell_magic("distributed", "", "print(f'hello from {rank} of {size}')")
    out = capsys.readouterr().out
    for r in range(live_pool.size):
        assert f"[rank {r}] hello from {r} of {live_pool.size}" in out


def test_distributed_targets(shell, live_pool, capsys):
    shell.run_cell_magic("distributed", "--targets 0,2", "print('picked', rank)")
    out = capsys.readouterr().out
    assert "[rank 0] picked 0" in out and "[rank 2] picked 2" in out
    assert "[rank 1]" not in out


def test_distributed_failure_shows_first_failing_rank(shell, live_pool):
    with pytest.raises(RankError) as info:
        shell.run_cell_magic(
            "distributed", "", "if rank >= 1:\n    raise RuntimeError(f'boom {rank}')"
        )
    assert info.value.ranks == [1, 2]
    lines = info.value._render_traceback_()
    assert lines[0] == "[rank 1] RuntimeError: boom 1"
    assert lines[-1] == "1 other rank failed: rank 2 (RuntimeError: boom 2)"


def test_distributed_failure_in_shell_has_no_package_traceback(shell, live_pool, capsys):
    result = shell.run_cell("%%distributed\nif rank == 0:\n    1 / 0\n")
    assert isinstance(result.error_in_exec, RankError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "[rank 0] ZeroDivisionError" in text
    assert "workbench/pool/_wait.py" not in text


def test_distributed_timeout(shell, live_pool):
    with pytest.raises(PoolTimeoutError):
        shell.run_cell_magic("distributed", "--timeout 1", "import time\ntime.sleep(120)")
    shell.run_cell_magic("distributed", "", "assert rank < size")


def test_ctrl_c_interrupts_every_engine(shell, live_pool, capsys):
    """SIGINT on the client side: engines interrupted, the prompt back, the pool usable."""
    threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt, match="interrupted ranks 0, 1, 2") as info:
        shell.run_cell_magic(
            "distributed", "", "import time\nfor _ in range(1200): time.sleep(0.05)"
        )
    # a notebook shows one line, not a trace through workbench and ipyparallel
    assert info.value._render_traceback_() == ["workbench: interrupted ranks 0, 1, 2"]
    wait_idle(live_pool, timeout=30)  # interrupted: the loop takes 60 s
    shell.run_cell_magic("distributed", "", "x = rank * 2")
    assert live_pool.view().pull("x", block=True) == [0, 2, 4]


def test_interrupt_in_a_cell_shows_one_line(shell, live_pool, capsys):
    """What the notebook shows after Ctrl-C: one line, no trace through workbench."""
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    result = shell.run_cell("%%distributed\nimport time\nfor _ in range(1200): time.sleep(0.05)")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "workbench: interrupted ranks 0, 1, 2" in text
    assert "Traceback" not in text and "ipyparallel" not in text, text
    wait_idle(live_pool, timeout=30)  # interrupted: the loop takes 60 s


def test_progress_reaches_the_notebook(shell, live_pool, capsys):
    cell = (
        "import workbench as wb, time\n"
        "for i in range(1, 6):\n"
        "    wb.progress(i, total=5, loss=1 / i)\n"
        "    time.sleep(0.05)\n"
    )
    shell.run_cell_magic("distributed", "", cell)
    out = capsys.readouterr().out
    final = [line for line in out.splitlines() if line.startswith("[progress")][-1]
    for r in range(live_pool.size):
        assert f"r{r} 5/5 loss=0.2" in final
    assert final.endswith("[done]")


def test_no_progress_flag(shell, live_pool, capsys):
    shell.run_cell_magic(
        "distributed", "--no-progress", "import workbench as wb\nwb.progress(1, total=1)"
    )
    assert "[progress" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("magic", "line", "cell"),
    [
        ("wb", "frobnicate", None),
        ("wb", "status extra.json", None),
        ("wb", "start -n zero", None),
        ("wb", "stop -n 2", None),
        ("distributed", "--targets 0,x", "pass"),
        ("distributed", "--targets 3-1", "pass"),
        ("distributed", "--timeout -1", "pass"),
        ("distributed", "--targets 9", "pass"),
        ("distributed", "--bogus", "pass"),
    ],
)
def test_bad_arguments_are_usage_errors(shell, live_pool, magic, line, cell):
    with pytest.raises(UsageError):
        if cell is None:
            shell.run_line_magic(magic, line)
        else:
            shell.run_cell_magic(magic, line, cell)


def test_bad_arguments_print_usage_not_traceback(shell, live_pool, capsys):
    shell.run_cell("%wb frobnicate")
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "UsageError" in text
    assert "Traceback" not in text


def test_wb_status_and_start_refusal(shell, live_pool, capsys):
    shell.run_line_magic("wb", "status")
    out = capsys.readouterr().out
    assert "rank" in out and "idle" in out
    with pytest.raises(UsageError, match="already running"):
        shell.run_line_magic("wb", "start -n 2")


def test_wb_attach_by_file(shell, live_pool, capsys):
    shell.run_line_magic("wb", f"attach {live_pool.cluster_file}")
    assert f"attached to {live_pool.size} MPI engines" in capsys.readouterr().out
    from workbench.pool import current, set_current

    attached = current()
    assert attached is not live_pool and attached.size == live_pool.size
    attached.close()
    set_current(live_pool)


@pytest.mark.slow
def test_distributed_without_pool_starts_default_then_lifecycle(shell, live_pool, capsys):
    from workbench.pool import current, set_current

    set_current(None)
    try:
        shell.run_cell_magic("distributed", "", "print('auto', rank)")
        out = capsys.readouterr().out
        started = current()
        assert started is not None and started is not live_pool
        assert f"started a local pool of {started.size} MPI engines" in out
        assert out.count("no pool yet") == 1
        assert "[rank 0] auto 0" in out
        old = [e.pid for e in started.engines]
        shell.run_line_magic("wb", "restart")
        assert set(old).isdisjoint(e.pid for e in started.engines)
        shell.run_line_magic("wb", "stop")
        assert current() is None and started.stopped
        assert not os.path.exists(started.cluster_file)
    finally:
        if current() is not None:
            current().stop()
        set_current(live_pool)


def test_allreduce_from_a_distributed_cell(shell, live_pool, capsys):
    cell = (
        "import numpy as np, workbench as wb\n"
        "x = np.full(1000, rank + 1, dtype=np.float32)\n"
        "total = wb.allreduce(x, op='sum')\n"
        "both = wb.allreduce([x, np.arange(3) * rank], op='max')\n"
        "print('sum', total[0], total.shape, 'max', both[0][0], both[1].tolist())\n"
    )
    shell.run_cell_magic("distributed", "", cell)
    out = capsys.readouterr().out
    for r in range(3):
        assert f"[rank {r}] sum 6.0 (1000,) max 3.0 [0, 2, 4]" in out


def test_last_throttled_progress_report_is_not_lost(shell, live_pool, capsys):
    # 50 reports in a burst, no total: all but the first are throttled; the last must arrive
    cell = "import workbench as wb\nfor i in range(50):\n    wb.progress(i, marker=i)\n"
    shell.run_cell_magic("distributed", "", cell)
    final = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[progress")][-1]
    for r in range(live_pool.size):
        assert f"r{r} 49 marker=49" in final

    def burst():
        import workbench as wb

        for i in range(50):
            wb.progress(i, marker=i)

    live_pool.run(burst)
    final = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[progress")][-1]
    assert all(f"r{r} 49 marker=49" in final for r in range(live_pool.size))


def _stop_from_another_process(cluster_file: str) -> None:
    """What ipyparallel's STOP button or `ipcluster stop` does: stop it through its file."""
    import subprocess
    import sys

    code = f"import ipyparallel as ipp; ipp.Cluster.from_file({cluster_file!r}).stop_cluster_sync()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_pool_stopped_from_another_process_answers_at_once_then_stops_and_restarts(
    shell, live_pool, capsys
):
    """%wb status on a pool stopped elsewhere says so in one line (it used to hang in the
    controller query; the query is bounded), %wb stop cleans up and succeeds, %wb start works."""
    from workbench.pool import Pool, current, set_current

    pool = Pool.local(1)  # its own pool: the session pool stays up
    attached = Pool.attach(pool.cluster_file)  # a second client, which did not start it
    attached.query_timeout = 2.0
    assert attached.log_file == pool.log_file  # both clusters log to the pool's one file
    try:
        _stop_from_another_process(pool.cluster_file)
        set_current(pool)
        result = shell.run_cell("%wb status")
        assert isinstance(result.error_in_exec, PoolError)
        shown = capsys.readouterr()
        assert "is gone" in shown.out + shown.err and "%wb stop" in str(result.error_in_exec)
        assert len(result.error_in_exec._render_traceback_()) == 1  # one line, no trace
        # a client that did not start the pool finds out through the bounded query
        with pytest.raises(PoolError, match="did not answer within 2 s"):
            attached.status()
        shell.run_line_magic("wb", "stop")
        assert "pool stopped" in capsys.readouterr().out
        assert current() is None
        shell.run_line_magic("wb", "start -n 1")
        fresh = current()
        assert fresh is not None and fresh is not pool and fresh.run(lambda: 1) == [1]
        shell.run_line_magic("wb", "stop")
    finally:
        attached.stop()
        pool.stop()
        set_current(live_pool)


# What ipyparallel's cluster logs when its pool is stopped: for the log file, not a cell.
_CLUSTER_LOG_LINES = ("engine set stopped", "Controller stopped", "mpiexec error output",
                      "Output for ipengine", "[IPEngine]")  # fmt: skip

_STOP_ELSEWHERE_AND_WAIT = """\
import subprocess, sys, time
pool = wb.pool.current()
attached = wb.Pool.attach(pool.cluster_file)  # a second cluster object, loaded from the file
code = ("import ipyparallel as ipp; "
        f"ipp.Cluster.from_file({pool.cluster_file!r}).stop_cluster_sync()")
subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

def logged():
    try:
        with open(pool.log_file) as f:
            text = f.read()
    except OSError:
        return False
    return "engine set stopped" in text and "Controller stopped" in text

deadline = time.monotonic() + 15
while not logged() and time.monotonic() < deadline:
    time.sleep(0.2)
"""


def _run_in_kernel(*cells: str, timeout: float = 120) -> list[list[dict]]:
    """Run ``cells`` one by one in a fresh kernel (ipykernel, as JupyterLab runs it); return
    every output message (stream, display, update) the kernel published, grouped by the cell
    it names as parent, and a last group for messages that name none of them. A front end
    shows a message in the cell it names, however late it comes, so every one counts."""
    import queue

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=os.environ.copy())
    outputs: list[list[dict]] = [[] for _ in range(len(cells) + 1)]
    ids: dict[str, int] = {}

    def drain(cell: str | None, seconds: float) -> None:
        """Collect messages until ``cell`` is idle (or for ``seconds`` when None)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            parent = msg["parent_header"].get("msg_id")
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("stream", "display_data", "update_display_data"):
                outputs[ids.get(parent, len(cells))].append({"type": kind, **content})
            if kind == "status" and parent == cell and content["execution_state"] == "idle":
                return
        assert cell is None, f"a cell did not finish within {seconds} s: {outputs}"

    try:
        for i, code in enumerate(cells):
            cell = kc.execute(code)
            ids[cell] = i
            drain(cell, timeout)
            reply = kc.get_shell_msg(timeout=10)
            assert reply["content"]["status"] == "ok", (code, reply["content"])
        drain(None, 1.0)  # anything published after the last cell
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return outputs


def _text(messages: list[dict]) -> str:
    return "".join(m.get("text", "") + str(m.get("data", {}).get("text/plain", "")) + "\n"
                   for m in messages)  # fmt: skip


@pytest.mark.slow
def test_in_a_kernel_start_shows_progress_and_the_cluster_log_stays_out_of_cells():
    """In a real kernel (where ipyparallel's background threads watch the processes):
    `%wb start` shows the launcher, the registrations in one output updated in place and the
    summary, no tqdm bar; a pool stopped from another process logs the stop to its file and
    prints nothing into any cell, neither through the cluster that started it nor through
    one attached to it."""
    outputs = _run_in_kernel(
        "%load_ext workbench",
        "%wb start -n 2",
        "import workbench as wb\n" + _STOP_ELSEWHERE_AND_WAIT,
        "time.sleep(1)  # a late log line would land here",
        "attached.stop()\npool.stop()\nprint('log file:', pool.log_file)",
    )
    start = outputs[1]
    assert [m["type"] for m in start][:2] == ["stream", "display_data"], start
    assert start[0]["text"].startswith("workbench: starting 2 MPI engines (mpiexec")
    handle = start[1]["transient"]["display_id"]
    shown = start[1:-1]  # the registration line and its updates, all of one display
    assert all(m["transient"]["display_id"] == handle for m in shown), start
    assert shown[-1]["data"]["text/plain"] == "workbench: 2/2 engines registered"
    assert start[-1]["type"] == "stream"
    assert start[-1]["text"].startswith("workbench: started 2 MPI engines")
    assert "engine/s" not in _text(start) and "%|" not in _text(start)
    everything = "".join(_text(o) for o in outputs)
    leaked = [line for line in _CLUSTER_LOG_LINES if line in everything]
    assert not leaked, f"the cluster's log reached the notebook: {leaked}\n{everything}"
    log_file = _text(outputs[4]).split("log file: ")[1].strip()
    log = _read(log_file)
    assert "engine set stopped" in log and "Controller stopped" in log, log
    assert log.startswith("20")  # each line starts with its time stamp


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


@pytest.mark.slow
def test_wb_start_says_what_starts_then_registrations_then_started(shell, live_pool, capsys):
    """`%wb start` prints the launcher at once, each registration count, then the summary;
    no tqdm bar; `%wb status` names the pool's log file."""
    from workbench.pool import current, set_current

    set_current(None)
    try:
        shell.run_line_magic("wb", "start -n 2")
        shown = capsys.readouterr()
        lines = shown.out.splitlines()
        assert lines[0] == "workbench: starting 2 MPI engines (mpiexec.gforker)…", lines
        counts = [ln for ln in lines if ln.endswith("engines registered")]
        assert counts and counts[-1] == "workbench: 2/2 engines registered", lines
        assert counts == sorted(counts) and len(set(counts)) == len(counts)  # 1/2, then 2/2
        assert lines[-1].startswith("workbench: started 2 MPI engines (cluster file "), lines
        assert lines == [lines[0], *counts, lines[-1]]
        assert "engine/s" not in shown.out + shown.err and "%|" not in shown.out + shown.err
        pool = current()
        shell.run_line_magic("wb", "status")
        status = capsys.readouterr().out
        assert f"log: {pool.log_file}" in status and os.path.exists(pool.log_file)
        assert "engine output: " in status
        assert "Starting 2 engines" in _read(pool.log_file)  # ipyparallel's own line, there
    finally:
        if current() is not None:
            current().stop()
        set_current(live_pool)
