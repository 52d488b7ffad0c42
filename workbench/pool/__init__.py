"""Where code runs: a pool of MPI engines driven through ipyparallel, addressed by rank.

>>> import workbench as wb
>>> pool = wb.Pool.local(4)            # or wb.Pool.slurm(64, nodes=2, ...), wb.Pool.attach(file)
>>> pool.run(fn, *args)                # fn on every rank -> results ordered by rank
>>> wb.pool.current()                  # the pool the magics use
>>> wb.pool.require(pool=None)         # the given or current pool, or NoPoolError

Modules: ``_pool`` (the :class:`Pool`), ``_launch`` (local ``mpiexec`` and Slurm clusters),
``_slurm`` (batch script, job state), ``_wait`` (waiting on work: output, progress, Ctrl-C,
dead engines), ``_status`` (the status table), ``_engine`` (what runs on the engines when a
pool connects and around each call), ``_globals`` (notebook names a function needs there),
``_ipp`` (the one module that reads ipyparallel internals). Data placed on the engines lives
in :mod:`workbench.data` (the handles) and :mod:`workbench.engine_store` (the engine side).
"""

from __future__ import annotations

from workbench.pool._pool import Pool, current, require, set_current
from workbench.pool._slurm import SlurmOptions
from workbench.pool._status import EngineInfo, PoolStatus

__all__ = [
    "EngineInfo",
    "Pool",
    "PoolStatus",
    "SlurmOptions",
    "current",
    "require",
    "set_current",
]
