"""Trial schedulers: should a running trial go on after this report?

FIFO (none), :class:`ASHA`, :class:`MedianStopping` and :class:`PBT` (population-based
training, on trial checkpoints), one module each behind the small :class:`Scheduler` base
(Optuna's ``pruners/`` layout); :func:`get_scheduler` turns what a user passed to
``sweep(scheduler=...)`` into one: None or a name of the registry (``"fifo"``, ``"asha"``,
``"median"``, ``"pbt"``), or a Scheduler. A scheduler returns ``CONTINUE`` or ``STOP`` from
:meth:`Scheduler.on_report` (PBT also ``EXPLOIT``, then names the trial to copy with
:meth:`Scheduler.target` and the new configuration with :meth:`Scheduler.explore`).
"""

from __future__ import annotations

from collections.abc import Callable

from workbench.errors import InvalidValueError
from workbench.sweep._state import CONTINUE, EXPLOIT, STOP
from workbench.sweep.schedulers._asha import ASHA
from workbench.sweep.schedulers._base import Scheduler
from workbench.sweep.schedulers._fifo import FIFO
from workbench.sweep.schedulers._median import MedianStopping
from workbench.sweep.schedulers._pbt import PBT

__all__ = [
    "ASHA",
    "CONTINUE",
    "EXPLOIT",
    "FIFO",
    "PBT",
    "STOP",
    "MedianStopping",
    "Scheduler",
    "get_scheduler",
]

_NAMED: dict[str | None, Callable[[], Scheduler]] = {
    None: FIFO,
    "fifo": FIFO,
    "none": FIFO,
    "asha": ASHA,
    "median": MedianStopping,
    "pbt": PBT,
}


def get_scheduler(scheduler: str | Scheduler | None) -> Scheduler:
    """A :class:`Scheduler` from ``scheduler``: None/"fifo"/"none", "asha", "median", "pbt" (each
    with its default settings) or a Scheduler instance (returned as it is)."""
    if isinstance(scheduler, Scheduler):
        return scheduler
    if isinstance(scheduler, (str, type(None))) and scheduler in _NAMED:
        return _NAMED[scheduler]()
    raise InvalidValueError(
        f"unknown scheduler {scheduler!r}: use None/'fifo', 'asha', 'median', 'pbt', or an "
        "instance such as workbench.sweep.ASHA(max_resource=...)"
    )
