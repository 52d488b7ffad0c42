"""Which engines have work in flight, for ``pool.status()`` and the panel's busy ranks."""

from __future__ import annotations

import logging
from typing import Any

import ipyparallel as ipp

from workbench.pool import _ipp

log = logging.getLogger(__name__)

__all__ = ["busy_engines"]


def busy_engines(c: ipp.Client) -> set[int]:
    """Engine ids with work in flight.

    The controller's queue says what waits or runs on each engine, but it is not enough
    alone: under load it can keep a finished request listed for good (its monitor saw the
    reply first). So a queued request counts only while the controller's record of it has
    no completion and nothing submitted after it has completed on that engine (an engine
    runs its requests in order). This client's own requests count while their reply has
    not arrived, unless the controller's record shows them completed, or a later request
    completed on their engine: a reply lost after an interrupt (seen under load: a rank
    shown busy for good, while it ran later work) does not keep the rank busy.
    """
    own = _ipp.outstanding_by_engine(c)
    known = set(c.ids)  # (the controller may still list engines that unregistered)
    listed = [
        e for e, q in c.queue_status().items() if isinstance(q, dict) and q["queue"] and e in known
    ]
    engines = sorted(set(listed) | set(own))
    if not engines:
        return set()
    try:
        queues = c.queue_status(targets=engines, verbose=True)
    except (KeyError, IndexError):  # an engine unregistered meanwhile: ask next time
        return set(own)
    waiting = {m: e for e in engines for m in queues[e]["queue"]}
    waiting.update({m: e for e, ids in own.items() for m in ids})
    done = {e: queues[e]["completed"] for e in engines}
    last = {e: ids[-1] for e, ids in done.items() if ids}
    try:
        records = c.db_query({"msg_id": {"$in": [*waiting, *last.values()]}},
                             ["msg_id", "submitted", "completed"])  # fmt: skip
    except Exception:  # a controller without a task database: trust its queue
        log.debug("no task records from the controller; trusting its queue", exc_info=True)
        return set(own) | set(waiting.values())
    by_id = {r["msg_id"]: r for r in records}
    busy = set()
    for msg_id, eid in waiting.items():
        record = by_id.get(msg_id)
        if record is None and eid in own and msg_id in own[eid]:
            busy.add(eid)  # just sent: not in the controller's records yet
        elif _in_flight(record, by_id.get(last.get(eid))):
            busy.add(eid)
    return busy


def _in_flight(record: dict[str, Any] | None, last_done: dict[str, Any] | None) -> bool:
    """Whether a queued request (its controller record) may still be queued or running,
    given the record of the last request its engine completed."""
    if record is None or record.get("completed"):
        return False  # finished, or so old the controller dropped its record
    sent, later = record.get("submitted"), (last_done or {}).get("submitted")
    return not (sent and later and later > sent)
