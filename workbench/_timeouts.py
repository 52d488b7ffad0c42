"""Every default wait of workbench, in one table (seconds).

Each is a default only: the call that waits takes a ``timeout=`` (or similarly named)
argument that wins over it. Waits that are not listed here are polls inside a bounded loop.

=====================  =======  ==================================================================
name                   seconds  what waits
=====================  =======  ==================================================================
``ENGINE_START``       120      local engines registering; engines answering the first bootstrap
``SLURM_START``        600      a Slurm job queueing, starting and its engines registering
``ATTACH``             30       engines of a running pool answering ``Pool.attach``
``QUERY``              10       one question to Slurm (``squeue``) or a shell thread
``CONTROLLER``         5        one request to the pool's controller (status, queue, stop);
                                what is left of its processes exiting after the stop
``PING``               2        engines on other nodes answering a liveness ping (status, losses)
``HEARTBEAT``          2        the controller's heartbeat period for Slurm pools; an engine
                                silent for ``HEARTBEAT_MISSES`` + 1 periods is declared dead
``ENGINES_EXIT``       15       engine processes exiting after a stop or restart
``INTERRUPT_GRACE``    5        engines stopping their work after Ctrl-C or a timeout
``TRANSFER``           3600     one block of data moving between the notebook, dask and the ranks
``CELL``               600      one cell of ``workbench run`` (``--timeout``)
``KERNEL_START``       60       the kernel of ``workbench run`` starting
``DECISION``           30       a sweep trial waiting for the scheduler's decision at a rung
``STORE_LOCK``         30       SQLite waiting for another writer of the sweep store
``DASK_CONNECT``       30       connecting to a dask scheduler
``EXIT_CLEANUP``       5        freeing shared windows and team threads at interpreter exit
``SUBSHELL``           5        the kernel creating or removing the subshell of a sweep's buttons
=====================  =======  ==================================================================
"""

from __future__ import annotations

__all__ = [
    "ATTACH",
    "CELL",
    "CONTROLLER",
    "DASK_CONNECT",
    "DECISION",
    "ENGINES_EXIT",
    "ENGINE_START",
    "EXIT_CLEANUP",
    "HEARTBEAT",
    "HEARTBEAT_MISSES",
    "INTERRUPT_GRACE",
    "KERNEL_START",
    "PING",
    "QUERY",
    "SLURM_START",
    "STORE_LOCK",
    "SUBSHELL",
    "TRANSFER",
]

ENGINE_START = 120
SLURM_START = 600
ATTACH = 30
QUERY = 10
CONTROLLER = 5
PING = 2
HEARTBEAT = 2
HEARTBEAT_MISSES = 5  # (a count, not seconds): ~12 s of silence unregisters an engine
ENGINES_EXIT = 15
INTERRUPT_GRACE = 5
TRANSFER = 3600
CELL = 600
KERNEL_START = 60
DECISION = 30
STORE_LOCK = 30
DASK_CONNECT = 30
EXIT_CLEANUP = 5
SUBSHELL = 5
