"""A rank that dies while the others wait in a zero-copy allreduce (``DEATH_BUFFER=symmetric``)
or in the cached small path of a plain array (``plain``), both the compiled calls of
``workbench.comm._fast``, or in a cross-memory-attach call (``cma``, with
``WORKBENCH_ALLREDUCE_ALGO=cma``: never cached): they raise, never hang.

Run: mpiexec.gforker -n 3 python tests/mpi/allreduce_symmetric_death.py
(every rank leaves with os._exit: MPI cannot be finalised with a dead rank). MPICH's
launchers end the whole job when a rank exits early; the survivors ignore the signals they
send for a moment, so that what is tested is workbench noticing the death by itself (as it
must under launchers that leave the other ranks running).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
from mpi4py import MPI

from workbench.comm import _fast, allreduce, empty
from workbench.errors import AllreduceAbortedError

RANK, SIZE = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
# from the start: on a loaded machine a survivor may still be finishing the call before
# the last one when the dying rank exits and the launcher signals
for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)

WHAT = os.environ.get("DEATH_BUFFER")
buf = empty(1000, np.float32) if WHAT == "symmetric" else np.ones(1000, np.float32)
buf[:] = 1
allreduce(buf, out=buf)
assert (buf == SIZE).all()
buf[:] = 1
allreduce(buf, out=buf)  # (the call shape is cached from here on)
assert (buf == SIZE).all()
cached = _fast.lookup(_fast.key(buf, "sum", None, buf, None, None, None))
kind = {"symmetric": "SymmetricCall", "plain": "SmallCall"}.get(WHAT, "NoneType")  # cma: never
assert type(cached).__name__ == kind, (WHAT, cached)
if RANK == SIZE - 1:
    os._exit(0)  # dies with the others about to wait for it
start = time.monotonic()
try:
    allreduce(buf, out=buf)
except AllreduceAbortedError as exc:
    print(f"[rank {RANK}] aborted after {time.monotonic() - start:.2f}s: {exc}", flush=True)
    try:  # the buffer stays broken: the next call raises at once
        allreduce(buf, out=buf)
    except AllreduceAbortedError:
        print(f"[rank {RANK}] still broken: OK", flush=True)
    sys.stdout.flush()
    os._exit(0)
print(f"[rank {RANK}] no error although rank {SIZE - 1} died", flush=True)
os._exit(1)
