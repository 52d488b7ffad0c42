"""``auto`` chosen by measurement: the tuner writes the table, ``auto`` reads and obeys it.

The tuner and ``tests/mpi/tune_auto.py`` run under real ``mpiexec``; the table rules (nearest
bucket, never slower than ``mpi``, one warning for a corrupt file) are also checked in
process. Every launch is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers import MPIEXEC, ROOT, assert_passed, run_mpi

from workbench.comm import _config, _tuning
from workbench.comm.algorithms import AutoAlgorithm

KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture(scope="module")
def quick_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A table written by ``python -m workbench.comm.tune --ranks 2 --quick``, and its output."""
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    out = tmp_path_factory.mktemp("tune") / "table.json"
    cmd = [sys.executable, "-m", "workbench.comm.tune", "--ranks", "2", "--quick", "--timeout",
           "150", "--output", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


@pytest.mark.mpi
def test_quick_run_writes_the_table_and_prints_it(quick_table: tuple[Path, str]) -> None:
    path, printed = quick_table
    table = json.loads(path.read_text())
    assert table["version"] == 1 and table["updated"] and "MPICH" in table["mpi"]
    assert table["machine"]["cores"] >= 1
    entry = table["layouts"]["p=2 nodes=1x2"]
    assert (entry["ranks"], entry["nodes"], entry["ranks_per_node"]) == (2, 1, 2)
    assert [r["bytes"] for r in entry["sizes"]] == [4 * KiB, 64 * KiB, 1 * MiB]
    cma = set() if "(cma) is not allowed here" in printed else {"cma"}  # the kernel's say
    for row in entry["sizes"]:
        window = {"window"} if row["bytes"] <= 512 * KiB else set()  # (two ranks' window)
        assert set(row["us"]) == {"mpi", "ring", "rhd", "shm"} | cma | window
        assert row["native_us"] > 0
        assert row["best"] == min(row["us"], key=row["us"].get)
    assert "| native MPI" in printed and "x native" in printed and " <-" in printed
    assert "p=2 nodes=1x2: 4 KiB " in printed


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_auto_follows_the_table_on_every_rank(ranks: int, quick_table: tuple[Path, str]) -> None:
    code, out = run_mpi("tune_auto", ranks, 120.0, WORKBENCH_TEST_TUNED=str(quick_table[0]))
    assert_passed(code, out, f"tune auto p={ranks}")
    assert ("MEASURED TABLE used" in out) == (ranks == 2)
    # ranks' lines may run together in mpiexec's output: find the warnings anywhere in a line
    warned = ["TUNE WARNING" + part for part in out.split("TUNE WARNING")[1:]]
    assert len(warned) == 2, out  # one per bad file (corrupt JSON, unknown algorithm), rank 0
    assert "ignoring the allreduce tuning file" in warned[0] and "corrupt.json" in warned[0]


def _plan(*rows: dict, nodes: int = 1) -> _tuning.Plan:
    entry = {"ranks": 4, "nodes": nodes, "ranks_per_node": 4 // nodes, "sizes": list(rows)}
    return _tuning.plan_from_entry(entry, "test")[1]


def test_nearest_bucket_and_never_slower_than_mpi() -> None:
    plan = _plan(
        {"bytes": 4 * KiB, "us": {"mpi": 10, "shm": 12}},
        {"bytes": 1 * MiB, "best": "shm", "us": {"mpi": 90, "shm": 60, "ring": 70}},
        {"bytes": 64 * MiB, "best": "ring", "us": {"mpi": 900, "ring": 990}},
    )
    assert [plan.pick(n) for n in (0, 63 * KiB, 64 * KiB, 7 * MiB, 9 * MiB)] == [
        "mpi", "mpi", "shm", "shm", "mpi",
    ]  # fmt: skip
    assert plan.pick(1 * MiB, team=True) == "ring"  # teams never get shared windows
    two_nodes = _plan({"bytes": 1 * MiB, "best": "shm", "us": {"mpi": 9, "shm": 1}}, nodes=2)
    assert two_nodes.pick(1 * MiB) == "mpi"  # shm cannot span nodes


def test_the_window_only_where_it_won() -> None:
    """Rows that measured the node window let it take their sizes only where it won; rows
    that did not leave it to the window's capacity; no bucket picks it as an algorithm."""
    plan = _plan(
        {"bytes": 4 * KiB, "best": "window", "us": {"mpi": 10, "window": 5}},
        {"bytes": 64 * KiB, "us": {"mpi": 40, "window": 30, "shm": 35}},
        {"bytes": 256 * KiB, "us": {"mpi": 100, "window": 140, "shm": 90}},
        {"bytes": 4 * MiB, "us": {"mpi": 900, "shm": 700}},
    )
    sizes = (1 * KiB, 4 * KiB, 64 * KiB, 256 * KiB, 4 * MiB)
    assert [plan.stages(n) for n in sizes] == [True, True, True, False, True]
    assert [plan.pick(n) for n in sizes] == ["mpi", "mpi", "shm", "shm", "shm"]
    assert _plan({"bytes": 4 * KiB, "us": {"mpi": 10}}).stages(4 * KiB)  # not measured
    slower = _plan({"bytes": 4 * KiB, "us": {"mpi": 10, "window": 11}})
    assert not slower.stages(4 * KiB)  # never where it lost to the library


def test_corrupt_table_warns_once_and_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("not json")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _tuning.load_plans(path) == {} and _tuning.load_plans(path) == {}
    assert len(seen) == 1 and seen[0].category is RuntimeWarning
    assert str(path) in str(seen[0].message) and "workbench.comm.tune" in str(seen[0].message)
    assert _tuning.load_plans(tmp_path / "absent.json") == {}


def test_table_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(_config.ENV_TUNE_FILE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _config.tune_file() == tmp_path / "workbench" / "allreduce-tune.json"
    monkeypatch.setenv(_config.ENV_TUNE_FILE, str(tmp_path / "mine.json"))
    assert _config.tune_file() == tmp_path / "mine.json"


@pytest.mark.slow
def test_one_rank_needs_no_table() -> None:
    from mpi4py import MPI

    assert AutoAlgorithm().select(1 << 30, MPI.COMM_SELF).name == "mpi"
