"""The sweep widget's Stop and Stop-trial controls act while ``wb.sweep()`` blocks its cell.

A real Jupyter kernel (jupyter_client) attaches to the session pool and runs a sweep; this
test plays the front end: it finds the widgets' comms on IOPub and sends the messages a
browser sends for a dropdown choice and a click, while the cell is still running.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import time

import pytest

_CELL = """
import time, workbench as wb
pool = wb.Pool.attach({cluster_file!r})

def slow(config, report):
    for step in range(1, 41):  # about 4 s, unless stopped
        time.sleep(0.1)
        report(step=step, score=config["a"] * step)
    return config["a"] * 40

t0 = time.monotonic()
result = wb.sweep(slow, {{"a": wb.grid([1, 2, 3, 4, 5, 6, 7, 8, 9])}}, metric="score",
                  storage={storage!r}, name="controls", pool=pool)
print("WB-RESULT", json.dumps({{"seconds": time.monotonic() - t0,
      "trials": [(t["id"], t["state"]) for t in result.trials]}}))
"""


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


_CLICK = {"method": "custom", "content": {"event": "click"}}


def _send(kc, comm_id: str, data: dict) -> None:
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))


@pytest.mark.slow
def test_stop_and_stop_trial_act_while_the_sweep_cell_runs(kernel, live_pool, tmp_path):
    cell = "import json\n" + _CELL.format(
        cluster_file=live_pool.cluster_file, storage=str(tmp_path / "s.db")
    )
    msg_id = kernel.execute(cell)
    comms: dict[str, str] = {}  # description or model name -> comm id
    sent: list[str] = []
    step = "wait for three running"  # what the test waits for next (each a message, no sleep)
    out, errors = [], []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            msg = kernel.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        kind, content = msg["msg_type"], msg["content"]
        data = content.get("data", {}) if kind == "comm_msg" else {}
        state, comm = data.get("state", {}), content.get("comm_id")
        if kind == "comm_open":
            opened = content["data"].get("state", {})
            key = opened.get("description") or opened.get("_model_name", "")
            comms[key] = content["comm_id"]
        elif step == "wait for three running" and kind == "comm_msg":
            options = state.get("_options_labels")
            if options and len(options) == live_pool.size and "trial" in comms:
                # three trials run, three wait behind them: stop the sweep (the waiting ones
                # are taken back), then pick the first running trial and stop it too
                _send(kernel, comms["Stop sweep"], _CLICK)
                step, first = "wait for the stop", options[0]
        elif step == "wait for the stop" and comm == comms.get("Stop sweep"):
            if state.get("description") == "Stopping...":  # the click was handled
                _send(kernel, comms["trial"], {"method": "update", "state": {"index": 0},
                                               "buffer_paths": []})  # fmt: skip
                step = "wait for the pick"
        elif step == "wait for the pick" and comm == comms.get("trial"):
            if data.get("method") == "echo_update" and state.get("index") == 0:  # received
                _send(kernel, comms["Stop trial"], _CLICK)
                sent.append(first)
                step = "wait for the end"
        elif kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))
        elif (
            kind == "status"
            and content["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            break
    else:
        pytest.fail("the sweep cell did not finish within 120 s")
    assert not errors, errors[0]
    assert sent == ["trial 0"], f"the controls never showed three running trials: {comms}"
    line = next(x for x in "".join(out).splitlines() if x.startswith("WB-RESULT"))
    result = json.loads(line.split(" ", 1)[1])
    states = {tid: state for tid, state in result["trials"]}
    # trial 0 pruned by the user, 1 and 2 finished, the three queued behind them never ran;
    # had the clicks waited for the cell to end, all nine trials would be done
    assert states == {0: "pruned", 1: "done", 2: "done", 3: "pending", 4: "pending",
                      5: "pending"}, result  # fmt: skip
    with sqlite3.connect(tmp_path / "s.db") as db:
        details = dict(db.execute("SELECT id, detail FROM events WHERE state != 'running'"))
    assert details[0] == "stopped by the user"
    assert all(details[t] == "not started: the sweep was stopped" for t in (3, 4, 5)), details
