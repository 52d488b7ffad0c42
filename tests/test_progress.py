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


def test_chart_has_a_legend_log_scale_for_falling_loss_and_no_counter_chart():
    from workbench.widgets.metric_plot import MetricPlot, chart_counters

    plot = MetricPlot()
    hist = {r: [(float(s), {"loss": 10.0 ** -s, "epoch": float(s // 3), "acc": s / 10})
                for s in range(1, 7)] for r in (0, 1)}  # fmt: skip
    plot.update(hist)
    svg = plot.value
    assert svg.count("<svg") == 2 and ">epoch" not in svg  # loss, acc; the counter left out
    assert "loss (log scale)" in svg and ">acc<" in svg  # acc spans less than 2 decades
    assert svg.count('class="workbench-legend-item"') == 4 and ">rank 1<" in svg
    chart_counters("epoch")
    try:
        plot.drawn = ()
        plot.update(hist)
        assert plot.value.count("<svg") == 3
    finally:
        chart_counters()


def test_widget_says_starting_before_the_first_report_and_only_after_a_second():
    t = ProgressTracker([0, 1])
    view = RankProgressWidget()
    view.refresh(t)
    assert view.box is None  # a quick silent call leaves nothing behind
    t.t0 -= 1.5  # a second and a half without a report
    view.refresh(t)
    assert view.box is not None and "starting" in view.header.value
    assert all("starting… (compiling)" in text.value for _, text in view.rows.values())
    t.update({0: _payload(2, 2, loss=0.5), 1: _payload(2, 2, loss=0.5)})
    view.refresh(t)
    assert "starting" not in view.header.value and "2/10" in view.rows[1][1].value
    silent, view = ProgressTracker([0]), RankProgressWidget()
    silent.t0 -= 1.5
    view.refresh(silent)
    shown = view.box
    silent.finish({0: "done"})
    view.close(silent)
    assert view.box is None and shown.comm is None  # nothing was reported: the view goes


def test_ranks_in_lock_step_publish_the_same_steps(monkeypatch):
    """With a total, each rank publishes on the same step boundaries however fast it runs,
    so the notebook shows lock-step ranks at the same step (they used to look apart)."""
    import importlib
    import time

    p = importlib.import_module("workbench.progress")  # the module; wb.progress is the function

    sent: dict[str, list[float]] = {}

    class Pub:
        def __init__(self, name):
            self.name = name

        def publish_data(self, data):
            sent.setdefault(self.name, []).append(data[p.KEY]["step"])

    for name, pause in (("fast", 0.0), ("slow", 0.0004)):
        monkeypatch.setattr(p, "_publisher", lambda name=name: (Pub(name), name))
        for step in range(1, 1401):
            wb.progress(step, total=1400, loss=1.0 / step)
            if pause:
                time.sleep(pause)
        p.flush()
    assert sent["fast"] == sent["slow"]
    assert sent["fast"][0] == 1 and sent["fast"][-1] == 1400
    assert len(sent["fast"]) <= 102 and all(s % 14 == 0 for s in sent["fast"][1:])
