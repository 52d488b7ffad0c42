"""Trial schedulers: should a running trial go on after this report?

FIFO (none), :class:`ASHA` and :class:`MedianStopping`, one module each behind the small
:class:`Scheduler` interface (Optuna's ``pruners/`` layout); :func:`get_scheduler` turns what
a user passed to ``sweep(scheduler=...)`` into one. A scheduler returns ``CONTINUE`` or
``STOP`` from :meth:`Scheduler.on_report`.
"""

from __future__ import annotations

from workbench.errors import InvalidValueError
from workbench.sweep._state import CONTINUE, STOP
from workbench.sweep.schedulers._asha import ASHA
from workbench.sweep.schedulers._base import Scheduler
from workbench.sweep.schedulers._fifo import FIFO
from workbench.sweep.schedulers._median import MedianStopping

__all__ = ["ASHA", "CONTINUE", "FIFO", "STOP", "MedianStopping", "Scheduler", "get_scheduler"]

_NAMED: dict[str | None, type[Scheduler]] = {
    None: FIFO,
    "fifo": FIFO,
    "none": FIFO,
    "asha": ASHA,
    "median": MedianStopping,
}


def get_scheduler(scheduler: str | Scheduler | None) -> Scheduler:
    """A :class:`Scheduler` from ``scheduler``: None/"fifo"/"none", "asha", "median" (each
    with its default settings) or a Scheduler instance (returned as it is)."""
    if isinstance(scheduler, Scheduler):
        return scheduler
    if isinstance(scheduler, (str, type(None))) and scheduler in _NAMED:
        return _NAMED[scheduler]()
    raise InvalidValueError(
        f"unknown scheduler {scheduler!r}: use None/'fifo', 'asha', 'median', or an instance "
        "such as workbench.sweep.ASHA(max_resource=...)"
    )
