"""``auto`` follows the measured table: forced picks, never slower than mpi, teams, corrupt
files, layouts without an entry, rank 0's table on every rank, and the overrides.

Run: mpiexec -n P python -m mpi4py tests/mpi/tune_auto.py
With ``WORKBENCH_TEST_TUNED=FILE`` (a table written by ``python -m workbench.comm.tune``),
also checks that ``auto`` picks each row's recorded winner (or the built-ins when the file has
no entry for P ranks).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from _common import COMM, RANK, SIZE, Failures

from workbench.comm import ENV_ALGO, _fast, allreduce, get_algorithm
from workbench.comm._config import ENV_TUNE_FILE
from workbench.comm._teams import team_comm
from workbench.comm.algorithms import AutoAlgorithm, available

KiB, MiB = 1 << 10, 1 << 20
AUTO = get_algorithm("auto")
LAYOUT = f"p={SIZE} nodes=1x{SIZE}"
TMP = Path(COMM.bcast(tempfile.mkdtemp(prefix="wb-tune-test-") if RANK == 0 else None))
CMA = available(COMM) is None  # the kernel lets the ranks copy from each other
_keep = []  # communicators stay alive: a freed handle could be reused with a stale plan


def fresh() -> object:
    """A new communicator: ``auto`` makes its plan (and reads the table) at first use."""
    comm = COMM.Dup()
    _keep.append(comm)
    return comm


def use_table(name: str, layouts: dict | str, *, rank0_only: bool = False) -> Path:
    """Write a table (dict of layouts, or raw text) on rank 0 and point every rank at it."""
    path = TMP / f"{name}.json"
    if RANK == 0:
        text = (
            layouts if isinstance(layouts, str) else json.dumps({"version": 1, "layouts": layouts})
        )
        path.write_text(text)
    COMM.Barrier()
    if not rank0_only or RANK == 0:
        os.environ[ENV_TUNE_FILE] = str(path)
    return path


def entry(*rows: dict) -> dict:
    return {LAYOUT: {"ranks": SIZE, "nodes": 1, "ranks_per_node": SIZE, "sizes": list(rows)}}


def picks(comm: object, *sizes: int) -> list[str]:
    return [AUTO.select(n, comm).name for n in sizes]


def builtin(nbytes: int) -> str:
    if nbytes < 64 * KiB:
        return "mpi"
    if SIZE == 2 and CMA and nbytes >= 512 * KiB:  # two ranks copy between them (cma)
        return "cma"
    if nbytes >= 32 * MiB:
        return "ring"
    return "mpi" if SIZE == 2 else "shm"


def forced_ring() -> None:
    use_table(
        "forced",
        entry(
            {"bytes": 4 * KiB, "best": "mpi", "us": {"mpi": 10, "ring": 20}},
            {"bytes": 1 * MiB, "best": "ring", "us": {"mpi": 300, "ring": 200, "rhd": 250}},
            {"bytes": 64 * MiB, "us": {"mpi": 9000, "rhd": 5000, "ring": 6000}},
        ),
    )
    comm = fresh()
    # buckets split at the geometric mean of neighbours: 64 KiB and 8 MiB
    got = picks(comm, 1, 4 * KiB, 60 * KiB, 64 * KiB, 1 * MiB, 7 * MiB, 9 * MiB, 1 << 30)
    assert got == ["mpi", "mpi", "mpi", "ring", "ring", "ring", "rhd", "rhd"], got
    x = np.full(300_000, RANK + 1.0)  # 2.4 MB through auto -> ring, still right
    np.testing.assert_array_equal(allreduce(x, comm=comm), np.full(x.shape, SIZE * (SIZE + 1) / 2))


def never_slower_than_mpi() -> None:
    use_table(
        "slower",
        entry(
            {"bytes": 64 * KiB, "best": "ring", "us": {"mpi": 50, "ring": 80}},
            {"bytes": 1 * MiB, "best": "rhd", "native_us": 100, "us": {"rhd": 150}},
            {"bytes": 16 * MiB, "best": "ring", "us": {"mpi": 900, "ring": 950, "rhd": 800}},
        ),
    )
    assert picks(fresh(), 64 * KiB, 1 * MiB, 16 * MiB) == ["mpi", "mpi", "rhd"]


def team_skips_windows() -> None:
    use_table(
        "team",
        entry({"bytes": 1 * MiB, "best": "shm", "us": {"mpi": 300, "shm": 100, "ring": 200}}),
    )
    comm = fresh()
    team = team_comm("tune-test", comm).comm
    assert picks(comm, 1 * MiB) == ["shm"], picks(comm, 1 * MiB)
    assert picks(team, 1 * MiB) == ["ring"], picks(team, 1 * MiB)


def corrupt_file_warns_once() -> None:
    for name, text in [
        ("corrupt", '{"version": 1, "layouts": {'),
        ("unknown", json.dumps({"version": 1, "layouts": entry({"bytes": 4096, "best": "x"})})),
    ]:
        path = use_table(name, text)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            got = picks(fresh(), 4 * KiB, 1 * MiB, 64 * MiB) + picks(fresh(), 64 * MiB)
        assert got == [builtin(4 * KiB), builtin(1 * MiB), builtin(64 * MiB),
                       builtin(64 * MiB)], got  # fmt: skip
        mine = [w for w in seen if issubclass(w.category, RuntimeWarning)]
        assert len(mine) == (1 if RANK == 0 else 0), [str(w.message) for w in seen]
        if mine:
            msg = str(mine[0].message)
            assert str(path) in msg and "python -m workbench.comm.tune" in msg, msg
            print(f"TUNE WARNING {msg}", flush=True)


def no_entry_for_layout() -> None:
    other = {"ranks": 99, "nodes": 1, "ranks_per_node": 99, "sizes": [{"bytes": 1, "best": "rhd"}]}
    use_table("other", {"p=99 nodes=1x99": other})
    sizes = (4 * KiB, 1 * MiB, 64 * MiB)
    assert picks(fresh(), *sizes) == [builtin(n) for n in sizes]
    assert picks(fresh(), 64 * MiB) == [AutoAlgorithm(tuned=False).select(64 * MiB, COMM).name]


def rank0_table_wins() -> None:
    use_table("rank1", entry({"bytes": 1 * MiB, "best": "rhd"}))  # every rank points here ...
    use_table("rank0", entry({"bytes": 1 * MiB, "best": "ring"}), rank0_only=True)  # ... but 0
    assert picks(fresh(), 1 * MiB) == ["ring"]


def overrides_win() -> None:
    use_table("override", entry({"bytes": 1 * MiB, "best": "ring"}))
    os.environ[ENV_ALGO] = "rhd"
    try:
        assert get_algorithm(None).name == "rhd"
        x = np.full(1000, RANK + 1.0)
        np.testing.assert_array_equal(allreduce(x, comm=fresh()), SIZE * (SIZE + 1) / 2)
    finally:
        del os.environ[ENV_ALGO]
    assert get_algorithm(None).name == "auto"
    assert get_algorithm("mpi").name == "mpi"


def window_where_it_won() -> None:
    """A table that measured the node window: ``auto`` lets the window take only the sizes
    where it won (below 32 KiB here); a larger repeated call is cached as the library's."""
    use_table(
        "window",
        entry(
            {"bytes": 4 * KiB, "best": "window", "us": {"mpi": 10, "window": 5}},
            {"bytes": 256 * KiB, "us": {"mpi": 100, "window": 140}},
        ),
    )
    comm = fresh()
    got = [AUTO.stages(n, comm) for n in (8, 4 * KiB, 31 * KiB, 33 * KiB, 256 * KiB)]
    assert got == [True, True, True, False, False], got
    assert picks(comm, 4 * KiB, 256 * KiB) == ["mpi", "mpi"]
    for nbytes, kind in ((4 * KiB, "SmallCall"), (64 * KiB, "MpiCall")):
        x = np.full(nbytes // 4, RANK + 1, np.float32)
        for _ in range(2):  # the first call takes the general path, the second the cached one
            y = allreduce(x, comm=comm)
            assert (y == SIZE * (SIZE + 1) / 2).all()
        cached = _fast.lookup(_fast.key(x, "sum", comm, None, None, None, None))
        assert type(cached).__name__ == kind, (nbytes, cached)


def measured_table() -> None:
    path = Path(os.environ["WORKBENCH_TEST_TUNED"])
    os.environ[ENV_TUNE_FILE] = str(path)
    table = json.loads(path.read_text())
    comm = fresh()
    rows = table["layouts"].get(LAYOUT, {}).get("sizes")
    if rows is None:  # measured for other rank counts only: the built-ins
        got = picks(comm, 4 * KiB, 1 * MiB, 64 * MiB)
        assert got == [builtin(n) for n in (4 * KiB, 1 * MiB, 64 * MiB)], got
        return
    for row in rows:
        fastest = min(row["us"], key=row["us"].get)
        assert row["best"] == fastest and row["us"][fastest] <= row["us"]["mpi"], row
        algorithms = {k: v for k, v in row["us"].items() if k != "window"}
        want = min(algorithms, key=algorithms.get)  # (where the window won: the next best)
        assert picks(comm, row["bytes"]) == [want], (row, picks(comm, row["bytes"]))
        staged = row["best"] == "window" or "window" not in row["us"]
        assert AUTO.stages(row["bytes"], comm) == staged, row
    if RANK == 0:
        print(f"MEASURED TABLE used for {LAYOUT}", flush=True)


def main() -> None:
    f = Failures()
    f.case("forced_ring", forced_ring)
    f.case("never_slower_than_mpi", never_slower_than_mpi)
    f.case("team_skips_windows", team_skips_windows)
    f.case("corrupt_file_warns_once", corrupt_file_warns_once)
    f.case("no_entry_for_layout", no_entry_for_layout)
    f.case("rank0_table_wins", rank0_table_wins)
    f.case("overrides_win", overrides_win)
    f.case("window_where_it_won", window_where_it_won)
    if os.environ.get("WORKBENCH_TEST_TUNED"):
        f.case("measured_table", measured_table)
    COMM.Barrier()
    if RANK == 0:
        shutil.rmtree(TMP, ignore_errors=True)
    f.finish(f"tune auto p={SIZE}")


if __name__ == "__main__":
    main()
