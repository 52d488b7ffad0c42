"""Where code runs: a pool of MPI engines driven through ipyparallel, addressed by rank.

>>> import workbench as wb
>>> pool = wb.Pool.local(4)            # or wb.Pool.slurm(64, nodes=2, ...), wb.Pool.attach(file)
>>> pool = wb.Pool.here()              # inside salloc/sbatch: a step of that allocation
>>> wb.pool.load_site()                # the site profile (partition, setup, container...)
>>> pool.run(fn, *args)                # fn on every rank -> results ordered by rank
>>> wb.pool.current()                  # the pool the magics use
>>> wb.pool.require(pool=None)         # the given or current pool, or NoPoolError
>>> wb.pool.stop_file(cluster_file)    # stop what is left of a pool, without attaching
>>> wb.pool.job_info(job_id)           # a Slurm job's state, reason, time left, nodes
>>> wb.pool.checkpoint_requested()     # on an engine: the pool's Slurm job ends soon, save now
>>> wb.pool.kernel_pools(runtime_dir)  # {kernel id: cluster file} of the running kernels
>>> wb.pool.classify_failure(exc)      # what a task's exception means: Failure.ENGINE_DIED...

Modules: ``_pool`` (the :class:`Pool`), ``_current`` (the pool used when none is given),
``_starts`` (local, a new Slurm job, a step of the allocation: settings resolved with the
site profile, ``_site``), ``_launch`` (build, start, reload and stop clusters; local pools),
``_slurm_launch`` (new jobs and allocation steps; a request Slurm never grants fails at
once), ``_allocation`` (the allocation this process runs in), ``_command`` (how each engine
starts: setup lines, container, python; the launch spec kept beside the cluster file),
``_address`` (where the controller listens for nodes), ``_diagnose`` (why engines failed, in
one sentence), ``_guard`` (stops a pool whose starter was killed), ``_with_children`` (the
controller's forked schedulers die with it), ``_lifecycle`` (attach, replace the engines,
tear down), ``_slurm`` (batch script, job state), ``_jobwatch`` (a Slurm
pool's job: ended? time left, the warning before its limit; ``_timelimit`` counts down),
``_enginemap`` (which engine is which rank), ``_placed`` (the data placed on the engines),
``_report`` (dead ranks and the status table), ``_wait`` (waiting on work: progress, Ctrl-C,
dead engines, failures), ``_output`` (the ranks' printed lines), ``_traceback`` (rank
tracebacks name the notebook's cell), ``_status`` (the status table's rows), ``_busy``
(which engines have work in flight), ``_engine`` (what runs on the engines when a pool
connects and around each call), ``_globals`` (notebook names a function needs there),
``_health`` (which ranks on other nodes are dead or unreachable, and why), ``_procs`` (local
processes: alive, memory, exit), ``_ipp`` (the one module that reads ipyparallel internals,
and classifies failed tasks). Data placed on the engines lives in :mod:`workbench.data` (the
handles; ``pool.scatter``/``broadcast``/``joblib`` reach it through
:mod:`workbench._provided`) and :mod:`workbench.engine_store` (the engine side). A start
shows what it does through ``_feedback``; ``_logs`` gives each pool's cluster its own log
file, so ipyparallel never logs into the notebook.
"""

from __future__ import annotations

from workbench.pool._allocation import Allocation
from workbench.pool._binding import kernel_pools
from workbench.pool._command import EngineCommand, LaunchSpec
from workbench.pool._current import current, require, set_current
from workbench.pool._engine import checkpoint_requested, checkpoint_requests
from workbench.pool._ipp import Failure, child_metadata, classify_failure, failure_details
from workbench.pool._launch import stop_file
from workbench.pool._pool import Pool
from workbench.pool._procs import alive as process_alive
from workbench.pool._site import SiteProfile, load_site, site_file
from workbench.pool._slurm import SlurmOptions, job_info
from workbench.pool._status import EngineInfo, PoolStatus

__all__ = [
    "Allocation",
    "EngineCommand",
    "EngineInfo",
    "Failure",
    "LaunchSpec",
    "Pool",
    "PoolStatus",
    "SiteProfile",
    "SlurmOptions",
    "checkpoint_requested",
    "checkpoint_requests",
    "child_metadata",
    "classify_failure",
    "current",
    "failure_details",
    "job_info",
    "kernel_pools",
    "load_site",
    "process_alive",
    "require",
    "set_current",
    "site_file",
    "stop_file",
]
