"""What a person sees of the ranks' output and failures: lines grouped by rank when a cell
ends in a notebook (printed live elsewhere), and tracebacks naming the notebook's cell.

The notebook tests run a real Jupyter kernel (the workbench kernelspec, driven by nbclient)
attached to the session pool, and record every message the kernel sends."""

from __future__ import annotations

import re

import pytest
from IPython.utils.capture import capture_output

from workbench.pool._output import DisplayedLines, Line, RankOutput, render
from workbench.pool._traceback import renumber_cells, running_cell_number

ANSI = re.compile(r"\x1b\[[0-9;]*m")

# What an engine sent for `x = 1 / if rank == 1: / 1/0` (IPython 9, colours on).
ENGINE_TRACEBACK = (
    "\x1b[31m---------------------------------------------------------------------------\x1b[39m\n"
    "\x1b[31mZeroDivisionError\x1b[39m                         Traceback (most recent call last)\n"
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[17]\x1b[39m\x1b[32m, line 3\x1b[39m\n"
    "\x1b[32m      1\x1b[39m x = \x1b[32m1\x1b[39m\n"
    "\x1b[32m----> \x1b[39m\x1b[32m3\x1b[39m     \x1b[32m1\x1b[39m/\x1b[32m0\x1b[39m  # In[17]\n"
    "\n\x1b[31mZeroDivisionError\x1b[39m: division by zero"
)


# -- cell numbers in tracebacks --------------------------------------------------------------
def test_renumber_puts_the_notebook_number_in_coloured_headers():
    out = renumber_cells(ENGINE_TRACEBACK, 4)
    plain = ANSI.sub("", out)
    assert "Cell In[4], line 3" in plain.splitlines()
    assert "# In[17]" in plain  # only frame headers change, not the code shown
    assert out.count("\x1b[") == ENGINE_TRACEBACK.count("\x1b[")  # colours kept


def test_renumber_without_a_number_drops_it():
    plain = ANSI.sub("", renumber_cells(ENGINE_TRACEBACK, None))
    assert "Cell, line 3" in plain.splitlines()
    text = "Cell In[2], line 1\n  Cell In[3] is not a header\nCell In[12], line 5"
    assert renumber_cells(text, None) == "Cell, line 1\n  Cell In[3] is not a header\nCell, line 5"
    assert (
        renumber_cells(text, 7)
        == "Cell In[7], line 1\n  Cell In[3] is not a header\nCell In[7], line 5"
    )


def test_running_cell_number_in_a_shell(shell):
    code = "from workbench.pool._traceback import running_cell_number\n_n = running_cell_number()"
    result = shell.run_cell(code, store_history=True)
    assert shell.user_ns["_n"] == result.execution_count  # the cell that ran it
    assert running_cell_number() is None  # outside a cell


def test_distributed_failure_in_a_shell_names_its_cell(shell, live_pool, capsys):
    result = shell.run_cell("%%distributed\nx = 1\nif rank == 0:\n    1 / 0\n", store_history=True)
    shown = ANSI.sub("", "\n".join(result.error_in_exec._render_traceback_()))
    assert f"Cell In[{result.execution_count}], line 3" in shown, shown


# -- lines -------------------------------------------------------------------------------------
def test_lines_are_whole_and_keep_blank_lines(capsys):
    out = RankOutput([0, 1], notebook=False)
    out.feed([{"stdout": "a\n\nb"}, {"stderr": "oops\n"}])
    out.feed([{"stdout": "a\n\nbc\n"}, {"stderr": "oops\n"}])
    out.feed([{"stdout": "a\n\nbc\nd"}, {"stderr": "oops\n"}], final=True)
    shown = capsys.readouterr()
    assert shown.out == "[rank 0] a\n[rank 0] \n[rank 0] bc\n[rank 0] d\n"
    assert shown.err == "[rank 1] oops\n"


def test_render_marks_stderr_and_counts_skipped_lines():
    bundle = render(
        [Line(0, "stdout", "<b>x</b>"), Line(1, "stderr", "\x1b[31mbad\x1b[0m")], skipped=3
    )
    assert (
        bundle["text/plain"] == "… 3 earlier lines\n[rank 0] <b>x</b>\n[rank 1] \x1b[31mbad\x1b[0m"
    )
    html = bundle["text/html"]
    assert "[rank 0] &lt;b&gt;x&lt;/b&gt;" in html and "\x1b" not in html
    assert re.search(r'<span class="workbench-stderr" style="[^"]*--jp-rendermime-error-background'
                     r'[^"]*">\[rank 1\] bad</span>', html)  # fmt: skip


def test_display_is_throttled_capped_then_grouped_by_rank(shell):
    now = [100.0]  # the sink's clock, moved by hand: no sleep, no race with a loaded machine
    sink = DisplayedLines(interval=0.5, live_lines=5, clock=lambda: now[0])
    with capture_output() as cap:
        sink.add([Line(1, "stdout", "a1"), Line(0, "stdout", "a0")], final=False)
        now[0] += 0.3
        sink.add([Line(1, "stderr", "e1")], final=False)  # too soon: not sent
        now[0] += 0.25
        sink.add([Line(0, "stdout", f"x{i}") for i in range(10)], final=False)
        sink.add([Line(1, "stdout", "b1"), Line(0, "stdout", "b0")], final=True)
    shown = [(o.update, o.data["text/plain"].splitlines()) for o in cap.outputs]
    assert [u for u, _ in shown] == [False, True, True]
    assert len({o.transient["display_id"] for o in cap.outputs}) == 1  # one, updated in place
    assert shown[0][1] == ["[rank 1] a1", "[rank 0] a0"]
    assert shown[1][1] == ["… 8 earlier lines", *(f"[rank 0] x{i}" for i in range(5, 10))]
    assert shown[2][1] == [
        "[rank 0] a0", *(f"[rank 0] x{i}" for i in range(10)), "[rank 0] b0",
        "[rank 1] a1", "[rank 1] e1", "[rank 1] b1",
    ]  # fmt: skip


# -- in a real kernel ------------------------------------------------------------------------
_ORDER_CELL = """%%distributed
import sys, time
print(f"a{rank}", flush=True)
time.sleep(1.5)
print(f"e{rank}", file=sys.stderr, flush=True)
print(f"b{rank}", flush=True)
"""
_LONG_CELL = """%%distributed
import time
for i in range(300):
    print(f"x{rank} {i}")
time.sleep(1.5)
print("end", flush=True)
"""


@pytest.fixture(scope="module")
def kernel_run(pool, tmp_path_factory):
    """A notebook run in the workbench kernel against the session pool: the executed notebook
    and, per cell, the (msg_type, content) of each output message the kernel sent."""
    import nbformat
    from nbclient import NotebookClient

    from workbench.cli.kernelspec import KERNEL_NAME, ensure_kernelspec

    if pool.dead_ranks():
        pool.restart()
    ensure_kernelspec()
    cells = [
        f"import workbench as wb\npool = wb.Pool.attach({pool.cluster_file!r})",
        "for _ in range(20):  # the engines' own cell numbers run ahead of the notebook's\n"
        "    pool.execute('pass', progress=False)",
        _ORDER_CELL,
        _LONG_CELL,
        "%%distributed\nx = 1\nif rank == 1:\n    1 / 0\n",
        "pool.execute('y = 2\\nif rank == 1:\\n    raise ValueError(rank)', progress=False)",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    sent: dict[int, list[tuple[str, dict]]] = {}

    class Recording(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] in {"stream", "display_data", "update_display_data", "error"}:
                sent.setdefault(cell_index, []).append((msg["msg_type"], msg["content"]))
            return super().process_message(msg, cell, cell_index)

    cwd = tmp_path_factory.mktemp("kernel")
    Recording(
        nb, kernel_name=KERNEL_NAME, timeout=120, allow_errors=True,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()  # fmt: skip
    return nb, sent


def _rank_view(cell) -> dict:
    """The cell's rank-output display (there must be exactly one)."""
    views = [o for o in cell.outputs if "[rank " in str(o.get("data", {}).get("text/plain", ""))]
    assert len(views) == 1, cell.outputs
    assert views[0]["output_type"] == "display_data"
    return views[0]


@pytest.mark.slow
def test_notebook_groups_lines_by_rank_when_the_cell_ends(kernel_run, pool):
    nb, sent = kernel_run
    cell = nb.cells[2]
    assert "error" not in {o["output_type"] for o in cell.outputs}, cell.outputs
    assert not [o for o in cell.outputs if o["output_type"] == "stream"], cell.outputs
    view = _rank_view(cell)
    lines = view["data"]["text/plain"].splitlines()
    ranks = [int(re.match(r"\[rank (\d+)\]", line).group(1)) for line in lines]
    assert ranks == sorted(ranks) and set(ranks) == set(range(pool.size)), lines
    for r in range(pool.size):
        mine = [line.split("] ")[1] for line in lines if line.startswith(f"[rank {r}]")]
        assert mine[0] == f"a{r}" and sorted(mine) == sorted([f"a{r}", f"b{r}", f"e{r}"]), lines
    html = view["data"]["text/html"]
    assert re.search(r'class="workbench-stderr"[^>]*>\[rank 1\] e1</span>', html), html
    # live first (the a lines, before anyone woke), then updated in place at the end
    rank_views = [(kind, c) for kind, c in sent[2]
                  if "[rank " in c.get("data", {}).get("text/plain", "")]  # fmt: skip
    kinds = [kind for kind, _ in rank_views]
    assert kinds[0] == "display_data" and kinds[-1] == "update_display_data", kinds
    first = rank_views[0][1]["data"]["text/plain"]
    assert "a0" in first and "b0" not in first, first
    ids = {content["transient"]["display_id"] for _, content in rank_views}
    assert len(ids) == 1, ids


def test_notebook_live_view_is_capped_and_final_view_complete(kernel_run, pool):
    nb, sent = kernel_run
    lines = _rank_view(nb.cells[3])["data"]["text/plain"].splitlines()
    assert len(lines) == 301 * pool.size
    assert lines[:2] == ["[rank 0] x0 0", "[rank 0] x0 1"] and lines[-1] == "[rank 2] end"
    live = [c["data"]["text/plain"].splitlines() for k, c in sent[3] if k != "error"][:-1]
    assert live and all(len(view) <= 201 for view in live), [len(v) for v in live]
    assert any(view[0].endswith("earlier lines") for view in live), [v[0] for v in live]


@pytest.mark.parametrize("index", [4, 5], ids=["distributed", "pool.execute"])
def test_notebook_traceback_names_the_notebook_cell(kernel_run, index):
    nb, _ = kernel_run
    cell = nb.cells[index]
    errors = [o for o in cell.outputs if o["output_type"] == "error"]
    assert len(errors) == 1, cell.outputs
    shown = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert "[rank 1]" in shown.splitlines()[0], shown
    headers = re.findall(r"^Cell In\[(\d+)\]", shown, re.MULTILINE)
    assert headers == [str(cell.execution_count)], shown
