"""The durable record of sweeps: SQLite from the standard library, WAL mode, one writer.

Only the notebook-side runner writes (engines never touch the file), so there is no lock
contention; readers (another notebook, ``result`` objects) may read while it runs. Every
state change of a trial is a row in ``events``; every report is a row in ``reports``.

The final value of every objective of a multi-objective sweep is a row in ``trial_values``
(``trials.value`` keeps the first one). That table is new: ``CREATE TABLE IF NOT EXISTS``
adds it to a store written before it existed, whose trials simply have no such rows, so
old stores open unchanged (no migration). ``lineage`` (the exploits of population-based
training: which trial copied which one's checkpoint, at which step, old and new
configuration) is new in the same way.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from workbench import _timeouts
from workbench.errors import InvalidTypeError, InvalidValueError
from workbench.trials import Trial, TrialState

__all__ = ["SweepStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY, settings TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    sweep TEXT NOT NULL, id INTEGER NOT NULL, state TEXT NOT NULL, config TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, ranks TEXT,
    step REAL, value REAL, best REAL, error TEXT, started REAL, finished REAL,
    PRIMARY KEY (sweep, id));
CREATE TABLE IF NOT EXISTS reports (
    sweep TEXT NOT NULL, id INTEGER NOT NULL, attempt INTEGER NOT NULL, step REAL NOT NULL,
    metrics TEXT NOT NULL, t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS reports_by_trial ON reports (sweep, id, attempt);
CREATE TABLE IF NOT EXISTS events (
    sweep TEXT NOT NULL, id INTEGER NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL,
    detail TEXT, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trial_values (
    sweep TEXT NOT NULL, id INTEGER NOT NULL, metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (sweep, id, metric));
CREATE TABLE IF NOT EXISTS lineage (
    sweep TEXT NOT NULL, id INTEGER NOT NULL, attempt INTEGER NOT NULL, step REAL NOT NULL,
    donor INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL, t REAL NOT NULL);
"""

_FIELDS = ("attempt", "failures", "ranks", "step", "value", "best", "error", "started", "finished")


class SweepStore:
    """One SQLite file (or ``":memory:"``) holding any number of named sweeps.

    Parameters
    ----------
    path
        The SQLite file (created if missing), or ``":memory:"``.
    timeout
        Seconds to wait for another writer of the file to finish
        (default ``workbench._timeouts.STORE_LOCK``).

    Trials come back as :class:`~workbench.trials.Trial` records whose ``state`` is a
    :class:`TrialState`; states are written as their plain values.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = _timeouts.STORE_LOCK
    ) -> None:
        self.path = os.fspath(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout)
        except sqlite3.OperationalError as e:
            raise InvalidValueError(
                f"cannot open sweep storage {self.path!r} ({e}); pass storage= a writable path"
            ) from None
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection (the file stays)."""
        self.db.close()

    # -- sweeps ------------------------------------------------------------------------------
    def settings(self, name: str) -> dict[str, Any] | None:
        """What sweep ``name`` was created with, or None if there is no such sweep."""
        row = self.db.execute("SELECT settings FROM sweeps WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def create(self, name: str, settings: dict[str, Any]) -> None:
        """Record a new sweep ``name`` created with ``settings`` (a JSON-able dict)."""
        with self.db:
            self.db.execute(
                "INSERT INTO sweeps VALUES (?, ?, ?)", (name, json.dumps(settings), time.time())
            )

    def names(self) -> list[str]:
        """Every sweep in the file, oldest first."""
        return [r[0] for r in self.db.execute("SELECT name FROM sweeps ORDER BY created")]

    # -- trials ------------------------------------------------------------------------------
    def add_trial(self, name: str, trial_id: int, config: dict[str, Any]) -> None:
        """Trial ``trial_id`` of sweep ``name``, new and pending, with configuration ``config``."""
        pending = TrialState.PENDING.value
        now = time.time()
        with self.db:
            self.db.execute(
                "INSERT INTO trials (sweep, id, state, config) VALUES (?, ?, ?, ?)",
                (name, trial_id, pending, json.dumps(config)),
            )
            self.db.execute(
                "INSERT INTO events VALUES (?, ?, 0, ?, NULL, ?)", (name, trial_id, pending, now)
            )

    def update(
        self,
        name: str,
        trial_id: int,
        state: TrialState | str,
        detail: str | None = None,
        **fields: Any,
    ) -> None:
        """Move trial ``trial_id`` of sweep ``name`` to ``state`` and set ``fields`` (columns
        of the ``trials`` table: attempt, failures, ranks, step, value, best, error, started,
        finished; and ``values``, a dict metric -> final value of a multi-objective trial,
        kept in ``trial_values``) in one transaction, with an event carrying ``detail``."""
        state = TrialState(state).value  # checked; the plain value is what the file holds
        values = fields.pop("values", None)
        bad = set(fields) - set(_FIELDS)
        if bad:
            raise InvalidTypeError(f"unknown trial fields {sorted(bad)}")
        if "ranks" in fields:
            fields["ranks"] = json.dumps(fields["ranks"])
        sets = "".join(f", {k} = ?" for k in fields)
        with self.db:
            self.db.execute(
                f"UPDATE trials SET state = ?{sets} WHERE sweep = ? AND id = ?",
                (state, *fields.values(), name, trial_id),
            )
            if values is not None:
                self.db.execute(
                    "DELETE FROM trial_values WHERE sweep = ? AND id = ?", (name, trial_id)
                )
                self.db.executemany(
                    "INSERT INTO trial_values VALUES (?, ?, ?, ?)",
                    [(name, trial_id, m, v) for m, v in values.items()],
                )
            self.db.execute(
                "INSERT INTO events SELECT sweep, id, attempt, state, ?, ? FROM trials "
                "WHERE sweep = ? AND id = ?",
                (detail, time.time(), name, trial_id),
            )

    def add_reports(self, name: str, trial_id: int, attempt: int, rows: list[Any]) -> None:
        """Record reports ``rows = [(step, metrics, t), ...]`` of attempt ``attempt`` of trial
        ``trial_id`` of sweep ``name``."""
        with self.db:
            self.db.executemany(
                "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?)",
                [(name, trial_id, attempt, s, json.dumps(m), t) for s, m, t in rows],
            )

    def reports_of(self, name: str, trial_id: int, attempt: int) -> list[tuple[Any, ...]]:
        """Reports ``[(step, metrics, t), ...]`` of attempt ``attempt`` of trial ``trial_id``."""
        cur = self.db.execute(
            "SELECT step, metrics, t FROM reports WHERE sweep = ? AND id = ? AND attempt = ? "
            "ORDER BY rowid",
            (name, trial_id, attempt),
        )
        return [(s, json.loads(m), t) for s, m, t in cur]

    def carry_reports(self, name: str, trial_id: int, old: int, new: int, rows: list[Any]) -> None:
        """A trial resumed from a checkpoint: its attempt ``new`` starts with the reports
        ``rows`` ``[(step, metrics, t), ...]`` (those up to the checkpoint); the reports of
        attempt ``old`` (after the checkpoint, made again by the new attempt) go, so the
        trial has each step once. One transaction."""
        with self.db:
            self.db.execute(
                "DELETE FROM reports WHERE sweep = ? AND id = ? AND attempt = ?",
                (name, trial_id, old),
            )
            self.db.executemany(
                "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?)",
                [(name, trial_id, new, s, json.dumps(m), t) for s, m, t in rows],
            )

    def exploit(
        self,
        name: str,
        trial_id: int,
        *,
        step: float,
        donor: int,
        config: dict[str, Any],
        detail: str,
    ) -> int:
        """Trial ``trial_id`` copied trial ``donor``'s checkpoint of ``step`` and goes on with
        ``config``: record the lineage, set the configuration, make it pending again (with
        an event carrying ``detail``), in one transaction. Returns the trial's attempt."""
        ((attempt, old),) = self.db.execute(
            "SELECT attempt, config FROM trials WHERE sweep = ? AND id = ?", (name, trial_id)
        )
        now = time.time()
        with self.db:
            self.db.execute(
                "INSERT INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, trial_id, attempt, step, donor, old, json.dumps(config), now),
            )
            self.db.execute(
                "UPDATE trials SET config = ?, state = ? WHERE sweep = ? AND id = ?",
                (json.dumps(config), TrialState.PENDING.value, name, trial_id),
            )
            self.db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (name, trial_id, attempt, TrialState.PENDING.value, detail, now),
            )
        return int(attempt)

    def lineage(self, name: str) -> list[dict[str, Any]]:
        """Every exploit of sweep ``name``, in order: ``{"id", "attempt", "step", "from",
        "old", "new", "t"}`` (trial ``id`` copied trial ``from``'s checkpoint of ``step``,
        its configuration went from ``old`` to ``new``)."""
        cur = self.db.execute(
            "SELECT id, attempt, step, donor, old, new, t FROM lineage WHERE sweep = ? "
            "ORDER BY rowid",
            (name,),
        )
        return [
            {"id": i, "attempt": a, "step": s, "from": d, "old": json.loads(o),
             "new": json.loads(n), "t": t}
            for i, a, s, d, o, n, t in cur
        ]  # fmt: skip

    def trials(self, name: str) -> list[Trial]:
        """Every trial of sweep ``name`` as a :class:`~workbench.trials.Trial`, by id:
        ``values`` holds the final value of each objective of a multi-objective trial
        (None for other trials), ``lineage`` its exploits (rows of :meth:`lineage`; None
        when it has none)."""
        lineage: dict[int, list[dict[str, Any]]] = {}
        for exploit in self.lineage(name):
            lineage.setdefault(exploit["id"], []).append(exploit)
        values: dict[int, dict[str, float]] = {}
        cur = self.db.execute(
            "SELECT id, metric, value FROM trial_values WHERE sweep = ? ORDER BY rowid", (name,)
        )
        for trial_id, metric, value in cur:
            values.setdefault(trial_id, {})[metric] = value
        cur = self.db.execute(
            f"SELECT id, state, config, {', '.join(_FIELDS)} FROM trials "
            "WHERE sweep = ? ORDER BY id",
            (name,),
        )
        cols = [c[0] for c in cur.description]
        trials = []
        for fields in cur:
            row = dict(zip(cols, fields, strict=True))
            row["config"] = json.loads(row["config"])
            row["ranks"] = json.loads(row["ranks"]) if row["ranks"] else None
            i = row["id"]
            trials.append(Trial(**row, values=values.get(i), lineage=lineage.get(i)))
        return trials

    def reports(self, name: str, trial_id: int | None = None) -> list[dict[str, Any]]:
        """Reports of the current attempt of every trial of sweep ``name`` (or of trial
        ``trial_id`` only), in order."""
        sql = (
            "SELECT r.id, r.attempt, r.step, r.metrics, r.t FROM reports r JOIN trials t "
            "ON r.sweep = t.sweep AND r.id = t.id AND r.attempt = t.attempt WHERE r.sweep = ?"
        )
        args: tuple[Any, ...] = (name,)
        if trial_id is not None:
            sql, args = sql + " AND r.id = ?", (name, trial_id)
        cur = self.db.execute(sql + " ORDER BY r.rowid", args)
        return [
            {"id": i, "attempt": a, "step": s, "metrics": json.loads(m), "t": t}
            for i, a, s, m, t in cur
        ]

    def events(self, name: str) -> list[tuple[int, int, TrialState]]:
        """Every state change of sweep ``name``: ``(trial id, attempt, state)`` in order."""
        cur = self.db.execute(
            "SELECT id, attempt, state FROM events WHERE sweep = ? ORDER BY rowid", (name,)
        )
        return [(i, a, TrialState(s)) for i, a, s in cur]
