"""Where code runs: a pool of MPI engines driven through ipyparallel, addressed by rank.

>>> import workbench as wb
>>> pool = wb.Pool.local(4)            # or wb.Pool.slurm(64, nodes=2, ...), wb.Pool.attach(file)
>>> pool.run(fn, *args)                # fn on every rank -> results ordered by rank
>>> wb.pool.current()                  # the pool the magics use
>>> wb.pool.require(pool=None)         # the given or current pool, or NoPoolError
>>> wb.pool.stop_file(cluster_file)    # stop what is left of a pool, without attaching
>>> wb.pool.job_info(job_id)           # a Slurm job's state, reason, time left, nodes
>>> wb.pool.checkpoint_requested()     # on an engine: the pool's Slurm job ends soon, save now
>>> wb.pool.kernel_pools(runtime_dir)  # {kernel id: cluster file} of the running kernels

Modules: ``_pool`` (the :class:`Pool`), ``_launch`` (local ``mpiexec`` and Slurm clusters),
``_slurm`` (batch script, job state), ``_wait`` (waiting on work: progress, Ctrl-C, dead
engines, failures, a Slurm job's time limit), ``_output`` (the ranks' printed lines: live,
then grouped by rank in a notebook), ``_traceback`` (rank tracebacks name the notebook's
cell), ``_status`` (the status table), ``_busy`` (which engines have work in flight),
``_engine`` (what runs on the engines when a pool connects and around each call),
``_globals`` (notebook names a function needs there),
``_health`` (which ranks on other nodes are dead or unreachable, and why), ``_timelimit``
(time left, one warning before a Slurm job's end), ``_ipp`` (the one module that reads
ipyparallel internals). Data placed on the engines lives in :mod:`workbench.data` (the
handles) and :mod:`workbench.engine_store` (the engine side). A start shows what it does
through ``_feedback`` (the launcher, then the engines registering); ``_logs`` gives each
pool's cluster its own log file, so ipyparallel never logs into the notebook.
"""

from __future__ import annotations

from workbench.pool._binding import kernel_pools
from workbench.pool._engine import checkpoint_requested, checkpoint_requests
from workbench.pool._launch import stop_file
from workbench.pool._pool import Pool, current, require, set_current
from workbench.pool._slurm import SlurmOptions, job_info
from workbench.pool._status import EngineInfo, PoolStatus

__all__ = [
    "EngineInfo",
    "Pool",
    "PoolStatus",
    "SlurmOptions",
    "checkpoint_requested",
    "checkpoint_requests",
    "current",
    "job_info",
    "kernel_pools",
    "require",
    "set_current",
    "stop_file",
]
