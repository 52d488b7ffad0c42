"""Run a module as ``__main__`` whose forked children die with it.

ipyparallel's controller forks its schedulers (``multiprocessing``). When the controller is
killed, as ipyparallel's own stop does after 5 s without an exit (seen under load), they
lived on, orphaned to PID 1, holding the pool's ports. Started through this module, every
child the process forks asks the kernel for ``SIGKILL`` when its parent dies (Linux
``prctl(PR_SET_PDEATHSIG)``); elsewhere the module only runs the other one.

Run as ``python -m workbench.pool._with_children MODULE ARGS...`` (the command line still
names ``MODULE``, so ``ps`` and ``pgrep -f ipyparallel.controller`` find it as before);
:func:`workbench.pool._launch.new_cluster` starts the controller so.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """In a child just forked: be killed when ``parent`` exits (at once if it already has)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # (no such call here: the child outlives its parent as before)
    if os.getppid() != parent:  # the parent died between the fork and the prctl
        os._exit(1)


def main(argv: list[str]) -> None:
    """Run module ``argv[0]`` as ``__main__`` with arguments ``argv[1:]``."""
    if not argv:
        sys.exit("usage: python -m workbench.pool._with_children MODULE [ARGS...]")
    if sys.platform.startswith("linux"):
        parent = os.getpid()
        os.register_at_fork(after_in_child=lambda: _die_with(parent))
    sys.argv = list(argv)  # (runpy puts the module's path in argv[0])
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
