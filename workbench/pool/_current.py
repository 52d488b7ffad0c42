"""Which pool the magics and the libraries use when none is given: the last one started or
attached in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import NoPoolError
from workbench.pool import _binding

if TYPE_CHECKING:
    from workbench.pool._pool import Pool

__all__ = ["current", "release", "require", "set_current"]

_current: Pool | None = None


def current() -> Pool | None:
    """The pool the magics use (the last one started or attached in this process); a pool
    found gone (stopped from elsewhere) stays current until it is stopped here, so that
    what uses it says so."""
    if _current is None or (_current.stopped and _current.lost is None):
        return None
    return _current


def require(pool: Pool | None = None) -> Pool:
    """``pool`` if given (checked alive), else the current pool; :class:`NoPoolError` if none."""
    found = pool if pool is not None else current()
    if found is None:
        raise NoPoolError(
            "no pool of engines is running: start one with `%wb start -n 4` or "
            "`wb.Pool.local(4)`, attach with `%wb attach`, or pass pool=..."
        )
    found.ensure_alive()
    return found


def set_current(pool: Pool | None) -> None:
    """Make ``pool`` the one the magics use (in a Jupyter kernel, also noted for the pool
    panel's status bar)."""
    global _current
    changed = pool is not _current
    _current = pool
    if changed:
        _binding.record(None if pool is None else pool.cluster_file)


def release(pool: Pool) -> None:
    """``pool`` was stopped: if it is the current one, there is no current pool any more."""
    if current() is None and _current is pool:
        set_current(None)
