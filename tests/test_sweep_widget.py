"""The live sweep view, from trial records (no engine needed): the widget updated in place,
its table, charts and controls, the text view, the Pareto front of several objectives."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from workbench.sweep import Trial

MULTI = {"acc": "max", "ms": "min"}


def _rows(states):
    return [Trial(id=i, state=s, config={"lr": 0.1 * i}, step=3.0, value=0.1 * i,
                  best=0.1 * i, ranks=[i % 3], failures=0, error=None,
                  finished=float(i)) for i, s in enumerate(states)]  # fmt: skip


def test_sweep_widget_updates_in_place_with_rows_best_and_controls():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max")
    stops, trial_stops = [], []
    w.on_stop, w.on_stop_trial = (lambda: stops.append(1)), trial_stops.append
    w.update(_rows(["done", "running", "pending"]), {0: [(1, 0.0), (2, 0.0)], 1: [(1, 0.1)]})
    box, table = w.box, w.table
    assert w.best_value == 0.0 and "1 running" in w.header.value
    assert len(w.table.rows) == 3 and w.trial_pick.options == (("trial 1", 1),)
    w.update(_rows(["done", "done", "running", "done"]), {0: [(1, 0.0)], 1: [(1, 0.1)]})
    assert w.box is box and w.table is table  # same widgets, new values
    assert w.best_value == pytest.approx(0.3) and "3 done" in w.header.value
    assert "acc of each finished trial" in w.chart.value and "acc by trial" in w.chart.value
    w.trial_pick.value = 2
    w.stop_trial_button.click()
    w.stop_button.click()
    assert trial_stops == [2] and stops == [1] and w.stop_button.disabled
    w.update(_rows(["done"] * 4), {}, final=True)
    assert "finished" in w.header.value


def test_trial_table_has_a_column_per_parameter_and_agrees_with_the_header():
    """Each parameter its own column (strings as they are, floats to 4 digits with the full
    value on hover, no JSON escapes); the header's best is the bold row's metric cell."""
    from workbench.widgets.sweep_table import SweepWidget

    rows = [
        replace(r, config={"loss": loss, "alpha": 1 / 3 * (r.id + 1), "layers": [64, 32]})
        for r, loss in zip(
            _rows(["done", "done", "running"]), ["hinge", 'modified_huber "x"', "log_loss"],
            strict=True,
        )
    ]  # fmt: skip
    rows[0], rows[1] = replace(rows[0], value=0.953712345), replace(rows[1], value=0.95)
    w = SweepWidget("accuracy", "max", controls=False)
    w.update(rows, {})
    labels = [c["label"] for c in w.table.columns]
    assert labels[:5] == ["trial", "state", "loss", "alpha", "layers"]
    assert "accuracy" in labels and "config" not in labels
    loss_at, alpha_at = labels.index("loss"), labels.index("alpha")
    acc_at = labels.index("accuracy")
    by_id = {r["id"]: r["cells"] for r in w.table.rows}
    assert by_id[1][loss_at][0] == 'modified_huber "x"'  # unescaped, whole
    assert by_id[0][alpha_at][:2] == ["0.3333", repr(1 / 3)]  # 4 digits, full on hover
    assert by_id[0][labels.index("layers")][0] == "[64, 32]"
    assert w.table.best == 0 and by_id[0][acc_at][0] == "0.9537"
    assert "best accuracy 0.9537 (trial 0)" in w.header.value
    assert "&amp;" not in str(w.table.rows) and "&quot;" not in str(w.table.rows)


def test_finished_sweep_greys_its_stop_button_and_says_finished():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max")
    w.update(_rows(["running"]), {})
    assert w.stop_button.button_style == "warning" and not w.stop_button.disabled
    w.update(_rows(["done"]), {}, final=True)
    assert w.stop_button.disabled and w.stop_button.button_style == ""
    assert w.stop_button.description == "Finished"


def test_history_chart_has_a_dot_per_finished_trial_and_a_best_step_line():
    from workbench.widgets.sweep_table import SweepWidget

    w = SweepWidget("acc", "max", controls=False)
    w.update(_rows(["done", "done", "pruned", "done"]), {})
    chart = w.chart.value
    assert "trials finished" in chart and "step 3" not in chart
    assert chart.count("fill-opacity") == 3 and "trial 3: acc 0.3" in chart  # one per done
    assert "best acc" in chart  # the step line, in the legend


def test_text_view_prints_changes_and_a_final_table():
    from workbench.widgets.sweep_table import TextSweepView

    buf = io.StringIO()
    v = TextSweepView("acc", "max", stream=buf, interval=0)
    v.update(_rows(["running"]), {})
    v.update(_rows(["running"]), {})  # unchanged: not printed again
    v.update(_rows(["done", "pruned"]), {}, final=True)
    text = buf.getvalue()
    assert text.count("[sweep]") == 2 and "1 done, 1 pruned" in text and "best acc" in text
    head = next(line for line in text.splitlines() if line.startswith("trial"))
    assert head.split() == ["trial", "state", "lr", "step", "acc", "best", "report"]


# -- several objectives ---------------------------------------------------------------------------
def test_widget_draws_the_pareto_front_with_dominated_trials_faded():
    from workbench.widgets.sweep_table import SweepWidget, TextSweepView

    rows = [
        replace(r, value=acc, values={"acc": acc, "ms": ms} if r.state == "done" else None)
        for r, (acc, ms) in zip(
            _rows(["done", "done", "done", "running"]),
            [(0.9, 5.0), (0.8, 6.0), (0.7, 1.0), (0.0, 0.0)],
            strict=True,
        )
    ]
    w = SweepWidget("acc", "max", controls=False, metrics=MULTI)
    w.update(rows, {})
    assert "2 on the Pareto front" in w.header.value
    chart = w.chart.value
    assert "acc (higher is better) against ms: Pareto front" in chart
    front = chart[chart.index("trial 0: acc 0.9") - 200 : chart.index("trial 0: acc 0.9")]
    assert "#1f77b4" in front  # on the front: coloured
    faded = chart[chart.index("trial 1: acc 0.8") - 200 : chart.index("trial 1: acc 0.8")]
    assert "#c7c7c7" in faded  # dominated by trial 0: faded
    labels = [c["label"] for c in w.table.columns]
    assert labels[labels.index("acc") + 1] == "ms"
    by_id = {r["id"]: r["cells"] for r in w.table.rows}
    assert by_id[2][labels.index("ms")][0] == "1"
    buf = io.StringIO()
    TextSweepView("acc", "max", stream=buf, metrics=MULTI).update(rows, {}, final=True)
    assert "2 on the Pareto front" in buf.getvalue() and " ms " in buf.getvalue()
