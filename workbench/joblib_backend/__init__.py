"""joblib (and so scikit-learn's ``n_jobs``) on the engines of the pool.

>>> with pool.joblib():                          # or wb.joblib(), for the current pool
...     GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)     # unmodified scikit-learn code
>>> %wb joblib on                                # every later cell, until %wb joblib off

Inside the block, every ``joblib.Parallel`` call runs its workers as the pool's engines:
``n_jobs=-1`` (and ``n_jobs=None``) means every engine, ``n_jobs=k`` at most ``k`` engines,
``n_jobs=1`` stays sequential in the notebook. That covers scikit-learn's ``GridSearchCV``,
``RandomizedSearchCV``, ``cross_val_score``/``cross_validate``, ``RandomForestClassifier``
fitting, ``permutation_importance`` and any library that parallelises through joblib.
Results are those of ``n_jobs=1``: the tasks, their seeds and their order are joblib's.

* **Data is sent once.** Arrays (numpy, pandas) of at least ``min_bytes`` (64 KiB by
  default) in a task's arguments reach each engine once per ``Parallel`` call, with the
  first task it runs that needs them; later tasks pass a reference. They are read-only on
  the engines (as joblib's memory-mapped arrays are) and dropped when the call ends.
* **Load balancing.** Each engine runs one batch of tasks at a time; joblib's automatic
  batching groups short tasks. The next batch goes to the first engine that frees up.
* **Progress.** Tasks done per rank, live (a widget in a notebook, a line now and then
  elsewhere); ``progress=False`` turns it off.
* **Errors.** A task's exception is raised in the notebook as itself (``except
  ValueError`` keeps working), its ``__cause__`` a :class:`~workbench.errors.RankError`
  with the rank's traceback. Ctrl-C interrupts the engines' tasks; a dead engine raises
  :class:`~workbench.errors.EngineDiedError`.
* **Nested parallelism.** Inside a task, joblib runs sequentially (the engine is one worker
  already): ``GridSearchCV(RandomForestClassifier(n_jobs=-1), n_jobs=-1)`` parallelises
  the search over the engines, each forest on one engine.

Modules: ``_backend`` (:class:`PoolBackend`, the joblib backend: scheduling, results,
errors, progress), ``_tasks`` (what travels with a task and runs on the engine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from workbench.errors import MissingDependencyError, StateError
from workbench.joblib_backend._tasks import MIN_BYTES

if TYPE_CHECKING:
    from workbench.joblib_backend._backend import PoolBackend
    from workbench.pool import Pool

__all__ = ["MIN_BYTES", "PoolBackend", "backend", "disable", "enable", "enabled", "use"]

_enabled: list[tuple[Any, Any]] = []  # (parallel_config entered by enable(), its backend)


def _joblib() -> Any:
    try:
        import joblib
    except ImportError:
        raise MissingDependencyError(
            "running joblib on the engines needs joblib: pip install joblib "
            "(scikit-learn installs it)"
        ) from None
    return joblib


def backend(pool: Pool, *, min_bytes: int = MIN_BYTES, progress: bool | None = None) -> Any:
    """A :class:`PoolBackend` on ``pool`` (see :func:`use` for the options)."""
    _joblib()
    from workbench.joblib_backend._backend import PoolBackend

    pool.ensure_alive()
    return PoolBackend(pool, min_bytes=min_bytes, progress=progress)


@contextlib.contextmanager
def use(
    pool: Pool,
    *,
    n_jobs: int = -1,
    min_bytes: int = MIN_BYTES,
    progress: bool | None = None,
) -> Iterator[PoolBackend]:
    """Inside the ``with`` block, joblib's workers (scikit-learn's ``n_jobs``) are the
    engines of ``pool``; yields the :class:`PoolBackend` (its ``history`` lists each call).

    Parameters
    ----------
    pool
        The engines to run on (``wb.joblib()`` and ``pool.joblib()`` pass it).
    n_jobs
        What ``n_jobs=None`` means inside the block (joblib's ``parallel_config``): -1,
        every engine. An explicit ``n_jobs`` in the code wins.
    min_bytes
        Arrays (numpy, pandas) in the tasks' arguments of at least this many bytes are
        sent to each engine once per call and referenced afterwards.
    progress
        Tasks done per rank while a call runs: None (a widget in a notebook, a line now
        and then elsewhere), True (the widget), False (nothing).
    """
    joblib = _joblib()
    be = backend(pool, min_bytes=min_bytes, progress=progress)
    with joblib.parallel_config(backend=be, n_jobs=n_jobs):
        yield be


def enable(
    pool: Pool, *, n_jobs: int = -1, min_bytes: int = MIN_BYTES, progress: bool | None = None
) -> PoolBackend:
    """Make joblib run on ``pool`` from now on (what ``%wb joblib on`` does), in this
    thread, until :func:`disable`; options as for :func:`use`. Enabling again replaces
    the previous pool."""
    joblib = _joblib()
    disable()
    be = backend(pool, min_bytes=min_bytes, progress=progress)
    config = joblib.parallel_config(backend=be, n_jobs=n_jobs)
    config.__enter__()
    _enabled.append((config, be))
    return be


def disable() -> bool:
    """Undo :func:`enable` (``%wb joblib off``): joblib goes back to its own default
    backend. True if it was enabled."""
    if not _enabled:
        return False
    config, _ = _enabled.pop()
    try:
        config.__exit__(None, None, None)
    except Exception as e:  # another parallel_config was entered after enable() and is open
        raise StateError(
            f"could not turn off joblib on the engines ({e}); leave the `with "
            "joblib.parallel_config(...)` blocks opened since `%wb joblib on` first"
        ) from None
    return True


def enabled() -> PoolBackend | None:
    """The backend :func:`enable` installed, or None."""
    return _enabled[-1][1] if _enabled else None


def __getattr__(name: str) -> Any:
    if name == "PoolBackend":  # imports joblib: only when asked for
        from workbench.joblib_backend._backend import PoolBackend

        return PoolBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
