"""What a pool knows of its ranks: which are dead and why, and the status table.

:class:`~workbench.pool.Pool` answers ``dead_ranks()`` and ``status()`` with these; they read
the pool's engines, client, job watch and placed data and change nothing but the job watch's
final verdict (a lost node, then the ranks that exited after it).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from workbench._timeouts import PING
from workbench.errors import ControllerGoneError
from workbench.pool import _health, _ipp, _launch
from workbench.pool._busy import busy_engines
from workbench.pool._procs import alive, rss
from workbench.pool._status import PoolStatus, engine_rows

if TYPE_CHECKING:
    from workbench.pool._pool import Pool

__all__ = ["dead_ranks", "status"]


def dead_ranks(pool: Pool) -> dict[int, str]:
    """Every rank of ``pool`` whose engine is gone, with why we think so.

    On a Slurm pool, once any rank is found dead, its job is asked again and the remaining
    engines pinged (bounded by ``PING``), so that a lost node is told apart from the ranks
    that exited after it (see :mod:`workbench.pool._health`).
    """
    here = socket.gethostname()
    registered = set(pool.client.ids)
    job_ended = pool.job.ended()
    dead: dict[int, str] = {}
    for e in pool.engines:
        if job_ended:
            dead[e.rank] = job_ended
        elif e.host == here and not alive(e.pid):
            dead[e.rank] = f"process {e.pid} on {e.host} exited"
        elif e.engine_id not in registered:
            dead[e.rank] = (
                f"engine {e.engine_id} on {e.host} unregistered (it exited, or missed heartbeats)"
            )
    if not dead or pool.job.id is None:
        return dead
    if pool.job.final is not None:
        return pool.job.final
    job_ended = pool.job.ended(fresh=True)
    found = _health.classify(pool.client, pool.engines, job_ended, PING)
    if job_ended:
        pool.job.final = found  # final: the job is over
    return found or dead


def _backend(pool: Pool) -> str:
    spec = pool.launch
    if spec.kind == "allocation":
        nodes = ",".join(spec.nodes) or "?"
        return f"inside allocation {spec.allocation} (nodes {nodes}), a step of it"
    return f"slurm job {pool.job_id}" if pool.job_id else "local"


def status(pool: Pool) -> PoolStatus:
    """The status table of ``pool``; :class:`ControllerGoneError` when its controller is
    gone (it exited, or did not answer within the pool's ``query_timeout``)."""
    pid = _ipp.controller_pid(pool.cluster) if pool.owner else None
    if pid is not None and not alive(pid):  # we started it: it runs here
        raise ControllerGoneError(f"its controller (pid {pid}) has exited")
    dead = pool.dead_ranks()
    warning = pool.time_warning()
    cut_off = {} if pool.job_id is None else pool.unreachable([
        e.rank for e in pool.engines if e.rank not in dead
    ])  # fmt: skip
    rows = engine_rows(pool.engines, dead, cut_off, busy_engines(pool.client), memory=rss)
    hosts = {e.rank: e.host for e in pool.engines}
    notes = [warning] if warning else []
    left = None if dead else pool.job.time_left.describe()
    notes += [f"time left: {left}"] if left else []
    for what, found in (("unreachable", cut_off), ("dead", dead)):
        notes += [f"{what}: {c}" for *_, c in _health.by_node(found, hosts)]
    return PoolStatus(rows, pool.cluster_file, pool.placed.describe(), _backend(pool),
                      log_file=pool.log_file, engine_output=_launch.output_files(pool.cluster),
                      notes=notes)  # fmt: skip
