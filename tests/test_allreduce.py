"""The shared allreduce under real ``mpiexec``: correctness, fusion, teams, safety.

Each test launches one script of ``tests/mpi/`` on P ranks (more ranks than cores is
intended: results must not depend on scheduling luck); every launch is bounded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_passed, run_mpi

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5])
def test_every_algorithm_op_dtype_and_size_matches_numpy(ranks: int) -> None:
    code, out = run_mpi("allreduce_correctness", ranks)
    assert_passed(code, out, f"allreduce correctness p={ranks}")
    assert "800 cases" in out  # 8 algorithms x 4 ops x 5 dtypes x 5 sizes


@pytest.mark.parametrize("ranks", [1, 2, 3])  # (2: auto reduces a large list with cma)
def test_fusion_teams_in_place_inputs_and_tuning(ranks: int) -> None:
    code, out = run_mpi("allreduce_features", ranks)
    assert_passed(code, out, f"allreduce features p={ranks}")


def test_torch_tensors_reduced_in_place_and_returned_as_tensors() -> None:
    pytest.importorskip(
        "torch",
        reason="torch not installed: pip install torch (CPU wheel) to test the PyTorch paths",
    )
    code, out = run_mpi("allreduce_features", 3)
    assert_passed(code, out, "allreduce features p=3")
    assert "torch checked" in out


@pytest.mark.parametrize("ranks", [2, 3])
def test_cached_calls_match_numpy_and_every_rank(ranks: int) -> None:
    code, out = run_mpi("allreduce_cached", ranks, timeout=240.0)
    assert_passed(code, out, f"allreduce cached p={ranks}")


def test_cached_calls_given_to_the_mpi_library(tmp_path: Path) -> None:
    """Two ranks whose tuning table picks ``mpi`` beyond the node window (as where the
    kernel forbids cross-memory attach): those calls are cached too (:class:`MpiCall`)."""
    row = {"bytes": 1 << 20, "best": "mpi"}
    entry = {"ranks": 2, "nodes": 1, "ranks_per_node": 2, "sizes": [row]}
    table = tmp_path / "tune.json"
    table.write_text(json.dumps({"version": 1, "layouts": {"p=2 nodes=1x2": entry}}))
    code, out = run_mpi("allreduce_cached", 2, timeout=240.0, WORKBENCH_TUNE_FILE=str(table),
                        EXPECT_MPI_CALLS="1")  # fmt: skip
    assert_passed(code, out, "allreduce cached p=2")


def _safety() -> tuple[int, str]:
    # no case tracing here: its lines would interleave with the warnings the test reads
    return run_mpi(
        "allreduce_safety", 3, timeout=120.0, WORKBENCH_STALL_SECONDS="1", WORKBENCH_TEST_TRACE="0"
    )


def test_mismatched_shapes_raise_on_every_rank_naming_ranks_and_shapes() -> None:
    code, out = _safety()
    assert_passed(code, out, "allreduce safety p=3")
    first = next(line for line in out.splitlines() if line.startswith("MISMATCH MESSAGE"))
    assert "rank 1: (4,) float32" in first and "ranks 0, 2: (3, 4) float32" in first


def test_late_rank_triggers_stall_warning_then_correct_result() -> None:
    code, out = _safety()
    assert_passed(code, out, "allreduce safety p=3")
    for label in ("STALL WARNING:", "STALL WARNING (cached):"):
        warning = next(line for line in out.splitlines() if line.startswith(label))
        assert "rank(s) 2 have not joined" in warning and "WORKBENCH_STALL_SECONDS" in warning


@pytest.mark.parametrize("ranks", [1, 2, 3, 4, 5])
def test_symmetric_buffers_zero_copy(ranks: int) -> None:
    """Every op, dtype and odd size equal to numpy and bitwise equal on every rank; slices;
    lists; two teams at once; mismatch raises on every rank; fake nodes from p=3."""
    code, out = run_mpi("allreduce_symmetric", ranks, timeout=240.0)
    assert_passed(code, out, f"allreduce symmetric p={ranks}")


@pytest.mark.parametrize("buffer", ["symmetric", "plain", "cma"])
def test_rank_that_dies_in_a_zero_copy_allreduce_makes_the_others_raise(buffer: str) -> None:
    """Symmetric buffers, plain small arrays on the cached path (one compiled call), and
    plain arrays copied between the ranks (cross-memory attach)."""
    env = (
        {"WORKBENCH_ALLREDUCE_ALGO": "cma", "WORKBENCH_ALLREDUCE_CHECK": "0"}
        if buffer == "cma"
        else {}
    )
    code, out = run_mpi("allreduce_symmetric_death", 3, timeout=60.0, launcher="mpiexec.gforker",
                        DEATH_BUFFER=buffer, **env)  # fmt: skip
    assert code == 0, out
    for rank in (0, 1):
        assert f"[rank {rank}] aborted after" in out and "rank 2 (pid" in out, out
        assert f"[rank {rank}] still broken: OK" in out, out
