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

    This client's own work counts as long as its reply has not arrived. Other
    clients' work comes from the controller's queue. The queue alone is not enough:
    under load the controller can keep a finished request listed for good (its monitor
    saw the reply first). So a request of another client counts only while the
    controller's record of it has no completion and nothing submitted after it has
    completed on that engine (an engine runs its requests in order).
    """
    busy = _ipp.engines_with_outstanding_requests(c)
    known = set(c.ids)  # (the controller may still list engines that unregistered)
    listed = [
        e for e, q in c.queue_status().items() if isinstance(q, dict) and q["queue"] and e in known
    ]
    if not listed:
        return busy
    mine = set(c.history)
    try:
        queues = c.queue_status(targets=listed, verbose=True)
    except (KeyError, IndexError):  # an engine unregistered meanwhile: ask next time
        return busy
    foreign = {m: e for e in listed for m in queues[e]["queue"] if m not in mine}
    if not foreign:
        return busy
    done = {e: queues[e]["completed"] for e in set(foreign.values())}
    last = {e: ids[-1] for e, ids in done.items() if ids}
    try:
        records = c.db_query({"msg_id": {"$in": [*foreign, *last.values()]}},
                             ["msg_id", "submitted", "completed"])  # fmt: skip
    except Exception:  # a controller without a task database: trust its queue
        log.debug("no task records from the controller; trusting its queue", exc_info=True)
        return busy | set(foreign.values())
    by_id = {r["msg_id"]: r for r in records}
    for msg_id, eid in foreign.items():
        if _in_flight(by_id.get(msg_id), by_id.get(last.get(eid))):
            busy.add(eid)
    return busy


def _in_flight(record: dict[str, Any] | None, last_done: dict[str, Any] | None) -> bool:
    """Whether a queued request (its controller record) may still be queued or running,
    given the record of the last request its engine completed."""
    if record is None or record.get("completed"):
        return False  # finished, or so old the controller dropped its record
    sent, later = record.get("submitted"), (last_done or {}).get("submitted")
    return not (sent and later and later > sent)
