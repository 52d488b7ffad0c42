"""Trial schedulers: FIFO (none), ASHA and median stopping behind one small interface."""

from workbench.sweep.schedulers._asha import ASHA
from workbench.sweep.schedulers._base import CONTINUE, STOP, Scheduler, get_scheduler
from workbench.sweep.schedulers._fifo import FIFO
from workbench.sweep.schedulers._median import MedianStopping

__all__ = ["ASHA", "CONTINUE", "FIFO", "STOP", "MedianStopping", "Scheduler", "get_scheduler"]
