"""Shared notebook templates executed headless (`workbench run`) on a real local MPI pool."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from helpers import cell_text, outputs_text, run_template

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quickstart(tmp_path):
    nb = run_template("00-quickstart.ipynb", tmp_path, "n_engines=3")
    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = "\n".join(cell_text(c) for c in code)
    assert "started 3 MPI engines" in everything
    # starting: the launcher at once, registrations in one output updated in place, no tqdm
    start = next(c for c in code if "%wb start" in c.source)
    shown = cell_text(start)
    assert shown.index("starting 3 MPI engines (mpiexec") < shown.index("3/3 engines registered")
    assert shown.index("3/3 engines registered") < shown.index("started 3 MPI engines")
    assert "engine/s" not in shown and "%|" not in shown
    for r in range(3):
        assert f"[rank {r}] hello from rank {r} of 3" in everything
        assert f"[rank {r}] final loss" in everything
        assert f"[rank {r}] sum of (rank + 1) over 3 ranks = 6" in everything
    assert "squares by rank: [1, 4, 9]" in everything
    progress = next(c for c in code if "wb.progress" in c.source)
    views = [o for o in progress.outputs if o.get("output_type") == "display_data"]
    assert views and "application/vnd.jupyter.widget-view+json" in views[0]["data"]
    status = next(c for c in code if c.source.strip() == "%wb status")
    assert "idle" in cell_text(status) and "rank" in cell_text(status)
    assert "pool stopped" in everything


@pytest.mark.slow
def test_end_to_end_workflow(tmp_path):
    before = sorted(os.listdir(ROOT / "notebooks"))
    nb = run_template("end-to-end-workflow.ipynb", tmp_path, "n_trials=6")
    assert sorted(os.listdir(ROOT / "notebooks")) == before  # the shared originals stay clean
    assert (tmp_path / "end-to-end.db").exists()  # the sweep's store went to the run's folder
    text = outputs_text(nb)
    assert "started 2 MPI engines" in text
    assert "kept 32 of 64 pixels; scores equal scikit-learn's: True" in text
    states = re.search(r"trials by state: (\{.*\})", text).group(1)
    assert sum(ast.literal_eval(states).values()) == 6
    single, ensemble = map(
        float,
        re.search(
            r"best single model test accuracy ([\d.]+); ensemble of \d: ([\d.]+)", text
        ).groups(),
    )
    assert single >= 0.9 and ensemble >= 0.9
    assert "most important pixels (row, col): [(" in text
    assert "data-parallel training:" in text and "pool stopped" in text
