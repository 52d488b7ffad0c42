"""The progress channel: payload merging, text fallback, the ipywidgets view, input checks."""

from __future__ import annotations

import io

import pytest

import workbench as wb
from workbench.progress import ProgressTracker
from workbench.widgets import RankProgressWidget, TextProgress


def _payload(seq, step, total=10, t0=1.0, **metrics):
    hist = [(q, float(q), {"loss": 1.0 / q}) for q in range(1, seq + 1)]
    return {
        "step": step,
        "total": total,
        "metrics": metrics,
        "t0": t0,
        "t": 2.0,
        "seq": seq,
        "history": hist,
    }


def test_tracker_merges_latest_and_history_once():
    t = ProgressTracker([0, 1])
    assert t.update({0: _payload(3, 3, loss=0.3)})
    assert not t.update({0: _payload(3, 3, loss=0.3)})  # same seq: nothing new
    assert t.update({0: _payload(5, 5, loss=0.2)})
    r0 = t.ranks[0]
    assert (r0.step, r0.total, r0.fraction) == (5, 10, 0.5)
    assert [s for s, _ in r0.history] == [1, 2, 3, 4, 5]
    assert t.ranks[1].seq == 0
    t.update({0: _payload(1, 1, t0=9.0)})  # a new run on rank 0 restarts its history
    assert [s for s, _ in t.ranks[0].history] == [1]


def test_text_view_prints_every_rank_and_final_state():
    t = ProgressTracker([0, 1])
    buf = io.StringIO()
    view = TextProgress(stream=buf, interval=0)
    view.refresh(t)
    assert buf.getvalue() == ""  # nothing reported yet, nothing printed
    t.update({0: _payload(2, 2, loss=0.5), 1: _payload(4, 4, loss=0.25)})
    view.refresh(t)
    t.finish({0: "done", 1: "failed"})
    view.close(t)
    lines = buf.getvalue().splitlines()
    assert "r0 2/10 loss=0.5 | r1 4/10 loss=0.25" in lines[0]
    assert lines[-1].endswith("[done, failed]")


def test_widget_view_bars_per_rank_update_in_place():
    t = ProgressTracker([0, 1, 2])
    view = RankProgressWidget()
    view.refresh(t)
    assert view.box is None  # created lazily on the first report
    t.update({1: _payload(5, 5, loss=0.2)})
    view.refresh(t)
    box = view.box
    assert len(view.rows) == 3
    bar, text = view.rows[1]
    assert bar.value == pytest.approx(0.5) and "5/10 loss=0.2" in text.value
    t.update({1: _payload(10, 10, loss=0.1)})
    t.finish({0: "done", 1: "done", 2: "failed"})
    view.close(t)
    assert view.box is box  # same widget, updated, never redrawn
    assert view.rows[1][0].value == 1.0 and view.rows[1][0].bar_style == "success"
    assert view.rows[2][0].bar_style == "danger"
    assert "2/3 ranks done" in view.header.value


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (("a",), {}, TypeError, "finite number"),
        ((float("nan"),), {}, TypeError, "finite number"),
        ((1,), {"total": 0}, ValueError, "positive number"),
        ((1,), {"loss": [1, 2]}, TypeError, "loss="),
    ],
)
def test_progress_rejects_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        wb.progress(*args, **kwargs)


def test_progress_outside_engine_prints_text(capsys):
    wb.progress(3, total=4, loss=0.5)
    assert "[progress] step 3/4 loss=0.5" in capsys.readouterr().err


def test_widget_view_draws_live_metric_chart_in_place():
    t = ProgressTracker([0, 1])
    view = RankProgressWidget()
    t.update({0: _payload(3, 3, loss=0.3), 1: _payload(2, 2, loss=0.5)})
    view.refresh(t)
    svg = view.plot.value
    assert svg.count("<svg") == 1 and ">loss<" in svg
    assert svg.count("<polyline") == 2  # one line per rank
    widget = view.plot.widget
    t.update({0: _payload(6, 6, loss=0.1)})
    view.refresh(t)
    assert view.plot.widget is widget and view.plot.value != svg
    assert view.box.children[-1] is widget


def test_chart_of_constant_metric_and_nan_is_safe():
    from workbench.widgets.metric_plot import svg_chart

    assert svg_chart("x", {0: [(1, 2.0), (2, 2.0)]}).startswith("<svg")
    assert svg_chart("x", {0: [(1, float("nan"))]}) == ""
