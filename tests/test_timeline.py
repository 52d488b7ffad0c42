"""The timeline: spans recorded per rank, merged into a Chrome trace, summarised.

The recorder and the merge are tested on their own; a real 2-rank training run under
``mpiexec`` (``WORKBENCH_TIMELINE``, with a straggler made on purpose) and a real
``%%distributed --timeline`` cell on the pool are read back. Perfetto's trace processor
cannot be installed here (it downloads its binary at run time), so the traces are checked
against the trace event format's schema.
"""

from __future__ import annotations

import itertools
import json

import jsonschema
import pytest
from helpers import assert_passed, run_mpi

import workbench as wb
from workbench import _spans
from workbench._spans import Record
from workbench.errors import InvalidValueError, RankError
from workbench.timeline import Trace, merge
from workbench.timeline._show import view_data

# The Chrome trace event format (the JSON object form), as far as the timeline uses it:
# complete events ("X") with microsecond ts/dur, metadata events ("M") naming tracks.
TRACE_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "traceEvents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "ph", "pid", "tid"],
                "properties": {
                    "name": {"type": "string"},
                    "cat": {"type": "string"},
                    "ph": {"enum": ["X", "M"]},
                    "pid": {"type": "integer", "minimum": 0},
                    "tid": {"type": "integer", "minimum": 0},
                    "ts": {"type": "number", "minimum": 0},
                    "dur": {"type": "number", "minimum": 0},
                    "args": {"type": "object"},
                },
                "allOf": [
                    {
                        "if": {"properties": {"ph": {"const": "X"}}},
                        "then": {"required": ["ts", "dur", "cat"]},
                    },
                    {
                        "if": {"properties": {"ph": {"const": "M"}}},
                        "then": {
                            "required": ["args"],
                            "properties": {
                                "name": {
                                    "enum": ["process_name", "process_sort_index", "thread_name"]
                                }
                            },
                        },
                    },
                ],
            },
        },
    },
}
PHASES = ["copy in", "wait for peers", "reduce", "copy out"]  # two ranks: one wait


@pytest.fixture
def recording():
    """Recording on for the test, off and empty after it."""
    _spans.start()
    yield
    _spans.stop()
    _spans.take()


def _record(rank: int, host: str, spans, *, skew: int = 0) -> Record:
    return Record(rank=rank, host=host, pid=100 + rank, spans=spans, threads={1: "MainThread"},
                  dropped=0, began=0, ended=10**9, monotonic_ns=0, wall_ns=skew)  # fmt: skip


def test_spans_are_recorded_only_while_on_and_nest(recording):
    with wb.timeline.span("outer", {"k": 1}), wb.timeline.span("inner"):
        pass
    t0 = _spans.now()
    _spans.add("direct", "comm", t0)
    _spans.stop()
    with wb.timeline.span("not recorded"):
        pass
    rec = _spans.take(rank=3)
    names = [s[2] for s in rec.spans]
    assert names == ["inner", "outer", "direct"], names
    inner, outer = rec.spans[0], rec.spans[1]
    assert outer[0] <= inner[0] <= inner[1] <= outer[1]
    assert outer[5] == {"k": 1} and outer[3] == "user"
    assert rec.rank == 3 and rec.threads[rec.spans[0][4]] == "MainThread"
    assert _spans.take().spans == []  # taken means gone


def test_the_buffer_is_bounded_and_counts_what_it_dropped(recording, monkeypatch):
    monkeypatch.setattr(_spans, "MAX_SPANS", 3)
    for k in range(5):
        _spans.add(f"s{k}", "user", _spans.now())
    rec = _spans.take()
    assert [s[2] for s in rec.spans] == ["s0", "s1", "s2"] and rec.dropped == 2
    trace = merge([rec])
    assert trace.data["otherData"]["dropped_spans"] == {0: 2}


def test_merge_gives_a_track_per_rank_and_aligns_other_hosts_by_wall_clock():
    ms = 1_000_000
    a = _record(0, "node1", [(10 * ms, 20 * ms, "step", "train", 1, {"step": 1})])
    # node2's monotonic clock is 500 ms behind node1's: the same instant reads 500 ms less
    b = _record(1, "node2", [(-490 * ms, -480 * ms, "step", "train", 1, {"step": 1})],
                skew=500 * ms)  # fmt: skip
    trace = merge([b, a])
    jsonschema.validate(trace.data, TRACE_SCHEMA)
    assert trace.names() == {0: "rank 0 (node1)", 1: "rank 1 (node2)"}
    steps = {e["pid"]: e for e in trace.events}
    assert steps[0]["ts"] == steps[1]["ts"] and steps[0]["dur"] == 10_000.0
    assert trace.data["otherData"]["hosts"] == ["node1", "node2"]
    with pytest.raises(InvalidValueError, match="nothing was recorded"):
        merge([])


def test_summary_tells_computing_waiting_and_idle_and_finds_the_straggler():
    ms = 1_000_000
    # rank 0 computes 2 ms then waits 8 ms for rank 1, which computes 10 ms; both reduce 1 ms
    fast = [(0, 11 * ms, "step", "train", 1, {"step": 1}),
            (0, 2 * ms, "forward", "train", 1, None),
            (2 * ms, 11 * ms, "allreduce", "comm", 1, None),
            (2 * ms, 10 * ms, "wait for peers", "comm", 1, None),
            (10 * ms, 11 * ms, "reduce", "comm", 1, None)]  # fmt: skip
    slow = [(0, 11 * ms, "step", "train", 1, {"step": 1}),
            (0, 10 * ms, "forward", "train", 1, None),
            (10 * ms, 11 * ms, "allreduce", "comm", 1, None),
            (10 * ms, 11 * ms, "reduce", "comm", 1, None),
            (12 * ms, 20 * ms, "update", "train", 1, None)]  # fmt: skip
    summary = merge([_record(0, "n", fast), _record(1, "n", slow)]).summary()
    r0, r1 = summary.ranks
    assert summary.window_ms == 20.0
    assert (r0.computing, r0.waiting, r0.communicating, r0.idle) == (2.0, 8.0, 1.0, 9.0)
    assert (r1.computing, r1.waiting, r1.communicating, r1.idle) == (18.0, 0.0, 1.0, 1.0)
    assert summary.slowest == 1
    step = next(s for s in summary.stragglers if s.what == "step 1")
    assert step.rank == 1 and step.late_ms == 8.0
    arrival = next(s for s in summary.stragglers if s.what == "allreduce 1")
    assert arrival.rank == 1 and arrival.late_ms == 8.0
    text = str(summary)
    assert "rank 1 held the others up longest" in text and "step 1: rank 1" in text
    assert "<table>" in summary._repr_html_()


def test_the_view_puts_nested_spans_on_lanes_below_their_parent():
    ms = 1_000_000
    rec = _record(0, "n", [(0, 10 * ms, "step", "train", 1, None),
                           (1 * ms, 4 * ms, "forward", "train", 1, None),
                           (2 * ms, 3 * ms, "inner", "user", 1, {"x": 1}),
                           (5 * ms, 9 * ms, "backward", "train", 1, None)])  # fmt: skip
    data = view_data(merge([rec]))
    spans = [data["spans"][k : k + 6] for k in range(0, len(data["spans"]), 6)]
    lanes = {data["names"][s[3]]: s[4] for s in spans}
    assert lanes == {"step": 0, "forward": 1, "inner": 2, "backward": 1}
    assert data["rows"] == [{"label": "rank 0 (n)", "lanes": 3}]
    assert json.loads(data["details"][0]) == {"x": 1}


def test_show_and_summary_without_a_trace_say_how_to_record_one(monkeypatch, tmp_path):
    from workbench.timeline import _record

    monkeypatch.setattr(_record, "_last", [])
    with pytest.raises(InvalidValueError, match="%%distributed --timeline"):
        wb.timeline.show()
    with pytest.raises(InvalidValueError, match="no timeline at"):
        wb.timeline.summary(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"events": []}')
    with pytest.raises(InvalidValueError, match="traceEvents"):
        wb.timeline.load(tmp_path / "bad.json")


@pytest.mark.mpi
@pytest.mark.slow
def test_a_recorded_training_run_shows_the_phases_and_the_straggler(tmp_path):
    whole, block = tmp_path / "run.json", tmp_path / "block.json"
    code, out = run_mpi("timeline_training", 2, WORKBENCH_TIMELINE=str(whole),
                        BLOCK_TRACE=str(block))  # fmt: skip
    assert_passed(code, out, "timeline training")
    assert f"timeline of 2 rank(s) written to {whole}" in out
    trace = Trace.load(whole)
    jsonschema.validate(trace.data, TRACE_SCHEMA)
    assert trace.ranks == [0, 1]
    threads = trace.threads()
    assert threads[(0, 0)] == threads[(1, 0)] == "MainThread"
    for rank in (0, 1):
        mine = [e for e in trace.events if e["pid"] == rank]
        names = {e["name"] for e in mine}
        assert {"step", "forward", "backward", "update", "wait for gradients"} <= names
        # the gradient buckets are reduced on the team's thread, in place (symmetric)
        team = [e for e in mine if e["tid"] != 0]
        assert any(e["name"] == "reduce" and e["args"]["algorithm"] == "symmetric" for e in team)
        # a small plain allreduce on the main thread: the staged phases, in order, inside it
        call = next(e for e in mine if e["name"] == "allreduce" and e["tid"] == 0)
        end = call["ts"] + call["dur"]
        inside = [e for e in mine if e["tid"] == 0 and call["ts"] <= e["ts"] and
                  e["ts"] + e["dur"] <= end and e is not call]  # fmt: skip
        assert [e["name"] for e in inside] == PHASES, inside
        stamps = [(e["ts"], e["ts"] + e["dur"]) for e in inside]
        assert all(a[1] <= b[0] + 0.001 for a, b in itertools.pairwise(stamps))  # no overlap
    summary = trace.summary()
    assert summary.slowest == 1, str(summary)
    steps = [s for s in summary.stragglers if s.what.startswith("step")]
    assert sum(s.rank == 1 for s in steps) >= len(steps) - 1, str(summary)
    assert any(e["name"] == "slow data" and e["pid"] == 1 for e in trace.events)
    # the block's own trace: its three allreduces on each rank, nothing of the training
    inner = Trace.load(block)
    jsonschema.validate(inner.data, TRACE_SCHEMA)
    calls = [e["pid"] for e in inner.events if e["name"] == "allreduce"]
    assert sorted(calls) == [0, 0, 0, 1, 1, 1]
    assert not any(e["name"] == "step" for e in inner.events)


@pytest.mark.slow
def test_distributed_timeline_writes_the_cell_and_keeps_it_when_the_cell_fails(
    shell, live_pool, tmp_path, capsys
):
    path = tmp_path / "cell.json"
    cell = ("import numpy as np, workbench as wb\n"
            "for _ in range(3):\n"
            "    wb.allreduce(np.ones(64, dtype=np.float32))\n")  # fmt: skip
    shell.run_cell_magic("distributed", f"--timeline {path} --no-progress", cell)
    assert f"written to {path}" in capsys.readouterr().out
    trace = wb.timeline.last()
    assert trace is not None and Trace.load(path).data == trace.data
    jsonschema.validate(trace.data, TRACE_SCHEMA)
    assert trace.ranks == list(range(live_pool.size))
    cells = [e for e in trace.events if e["name"] == "cell"]
    assert sorted(e["pid"] for e in cells) == list(range(live_pool.size))
    for c in cells:  # each rank's allreduces lie inside its cell
        mine = [e for e in trace.events if e["pid"] == c["pid"] and e["name"] == "allreduce"]
        assert len(mine) == 3
        assert all(c["ts"] <= e["ts"] and e["ts"] + e["dur"] <= c["ts"] + c["dur"] for e in mine)
    failing = tmp_path / "failing.json"
    with pytest.raises(RankError):
        shell.run_cell_magic(
            "distributed", f"--timeline {failing} --no-progress",
            "import workbench as wb\nwith wb.timeline.span('before the error'):\n"
            "    pass\nif rank == 1:\n    raise ValueError('bad')\n",
        )  # fmt: skip
    kept = Trace.load(failing)
    assert sorted(e["pid"] for e in kept.events if e["name"] == "before the error") == list(
        range(live_pool.size)
    )


def _square(i: int) -> int:
    return i * i


@pytest.mark.slow
def test_a_sweep_and_joblib_tasks_on_the_pool_are_on_its_timeline(live_pool, tmp_path, capsys):
    import joblib
    from sweep_helpers import quick

    from workbench.sweep import grid

    path = tmp_path / "pool.json"
    with wb.timeline.pool(path) as rec:
        result = wb.sweep(quick, {"x": grid([1.0, 2.0, 3.0, 4.0])}, metric="score",
                          storage=str(tmp_path / "s.db"), show=False)  # fmt: skip
        with live_pool.joblib():
            squares = joblib.Parallel(n_jobs=-1)(joblib.delayed(_square)(i) for i in range(6))
    assert squares == [i * i for i in range(6)]
    assert f"written to {path}" in capsys.readouterr().out
    trace = Trace.load(path)
    assert rec.trace is not None and trace.data == rec.trace.data == wb.timeline.last().data
    jsonschema.validate(trace.data, TRACE_SCHEMA)
    trials = [e for e in trace.events if e["name"] == "trial"]
    assert sorted(e["args"]["trial"] for e in trials) == sorted(t.id for t in result.trials)
    assert all(e["args"]["state"] == "done" for e in trials)
    tasks = [e for e in trace.events if e["name"] == "joblib task"]
    assert len(tasks) == 6 and {e["args"]["function"] for e in tasks} == {"_square"}
