"""Which ranks are gone or cut off, and why: the answers behind ``pool.dead_ranks()`` and the
``unreachable`` state of ``%wb status`` for engines on other nodes.

A rank on this machine is dead when its process is gone. A rank on a compute node cannot be
looked at that way; three things tell about it instead:

- its Slurm job: once the job has ended, every rank is dead;
- ipyparallel's registration: an engine's nanny (a small process beside it) unregisters the
  engine as soon as it exits, and the controller unregisters an engine whose heartbeats stop
  (``_timeouts.HEARTBEAT`` x ``HEARTBEAT_MISSES``, about 12 s for Slurm pools);
- a ping on the engine's control channel (:func:`workbench.pool._ipp.ping`), which a busy
  engine answers too, bounded by ``_timeouts.PING``.

When a node is lost (powered off, or every process on it killed) its engines vanish without
their nannies saying goodbye, while MPI usually aborts the rest of the job, whose engines do
unregister. So once the job has ended, the ranks still registered that do not answer are the
lost node's: :func:`classify` names them, and the others as having exited after them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._util import format_ranks
from workbench.pool import _ipp
from workbench.pool._status import EngineInfo

if TYPE_CHECKING:
    import ipyparallel as ipp

__all__ = ["LOST", "by_node", "classify", "unreachable"]

#: Why a rank whose engine vanished without unregistering is dead.
LOST = (
    "lost: its engine stopped answering and never unregistered; the node went down or its "
    "processes were killed"
)


def unreachable(
    client: ipp.Client, engines: list[EngineInfo], here: str, timeout: float
) -> dict[int, str]:
    """Ranks on other hosts whose engine is registered but does not answer a ping within
    ``timeout`` seconds (their node down or cut off from this machine), with why."""
    registered = set(client.ids)
    remote = [e for e in engines if e.host != here and e.engine_id in registered]
    if not remote:
        return {}
    answered = _ipp.ping(client, [e.engine_id for e in remote], timeout)
    return {
        e.rank: f"no answer within {timeout:g} s: {e.host} unreachable (network down?)"
        for e in remote
        if e.engine_id not in answered
    }


def classify(
    client: ipp.Client, engines: list[EngineInfo], job_end: str | None, timeout: float
) -> dict[int, str]:
    """Why each rank of a Slurm pool is dead, once some are (``job_end``: why its job is
    over, ``slurm job 12 is gone``, or None while it runs); live ranks are left out.

    Ranks whose engine never unregistered and does not answer a ping within ``timeout``
    were lost with their node; ranks whose engine unregistered exited (after them, when
    some were lost). Once the job has ended every rank is dead; when no engine, or every
    one, is silent, nothing tells a lost node apart and ``job_end`` is the reason for all.
    """
    registered = set(client.ids)
    ids = [e.engine_id for e in engines if e.engine_id in registered]
    answered = _ipp.ping(client, ids, timeout) if ids else set()
    registered = set(client.ids)  # (unregistrations came in meanwhile)
    silent = {e.rank for e in engines if e.engine_id in registered and e.engine_id not in answered}
    gone = {e.rank for e in engines if e.engine_id not in registered}
    if job_end is not None:
        if not silent or len(silent) == len(engines):
            return {e.rank: job_end for e in engines}
        return {
            e.rank: f"{LOST}; {job_end}" if e.rank in silent else f"exited after that: {job_end}"
            for e in engines
        }
    after = " after that" if silent else ""
    why = {r: LOST for r in silent}
    why.update(
        {r: f"its engine unregistered{after} (it exited, or missed heartbeats)" for r in gone}
    )
    return why


def by_node(reasons: dict[int, str], hosts: dict[int, str]) -> list[tuple[str, list[int], str]]:
    """``(host, ranks, clause)`` per host of the ranks in ``reasons``, lost nodes first; the
    clause reads ``rank 3 on node2 (lost: ...)``, or ``ranks 0, 1 on node1 (rank 0: ...;
    rank 1: ...)`` when the ranks of a host differ in why."""
    nodes: dict[str, list[int]] = {}
    for r in sorted(reasons):
        nodes.setdefault(hosts.get(r, ""), []).append(r)
    out = []
    for _, host, on_host in sorted(
        (not reasons[rs[0]].startswith("lost"), h, rs) for h, rs in nodes.items()
    ):
        whys = {reasons[r] for r in on_host}
        s = "s" if len(on_host) > 1 else ""
        where = f"rank{s} {format_ranks(on_host)}" + (f" on {host}" if host else "")
        each = "; ".join(f"rank {r}: {reasons[r]}" for r in on_host)
        out.append((host, on_host, f"{where} ({whys.pop() if len(whys) == 1 else each})"))
    return out
