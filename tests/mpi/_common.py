"""Helpers of the MPI test scripts: collect failures per rank, agree on the outcome."""

from __future__ import annotations

import os
import sys
import traceback

from mpi4py import MPI

COMM = MPI.COMM_WORLD
RANK = COMM.Get_rank()
SIZE = COMM.Get_size()
TRACE = os.environ.get("WORKBENCH_TEST_TRACE", "1") != "0"


class Failures:
    """Record failed cases instead of stopping (a rank that stops would hang the rest)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.cases = 0

    def case(self, name: str, fn, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        self.cases += 1
        if TRACE:  # on a hang, the last line of each rank says where it is
            print(f"[rank {RANK}] case {name}", file=sys.stderr, flush=True)
        try:
            fn(*args, **kw)
        except Exception:
            self.items.append(f"rank {RANK} {name}:\n{traceback.format_exc()}")
            if TRACE:  # at once: a rank that failed may leave the others waiting
                print(f"[rank {RANK}] FAILED {self.items[-1]}", file=sys.stderr, flush=True)

    def finish(self, label: str) -> None:
        """Print every rank's failures on rank 0 and exit 1 if any rank failed."""
        everyone = COMM.allgather(self.items)
        bad = [f for per_rank in everyone for f in per_rank]
        if RANK == 0:
            for f in bad[:20]:
                print("FAIL", f, flush=True)
            status = "FAILED" if bad else "PASSED"
            print(f"{label}: {status} {self.cases} cases x {SIZE} ranks, {len(bad)} failures")
            sys.stdout.flush()
        COMM.Barrier()
        if bad:
            sys.exit(1)
