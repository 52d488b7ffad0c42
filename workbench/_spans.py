"""The per-process span recorder behind the timeline (:mod:`workbench.timeline`).

Code that wants to appear on the timeline records spans here: the allreduce (with its
phases), training steps, sweep trials, joblib tasks, a ``%%distributed`` cell. Recording is
off unless a timeline is being recorded; then a span costs two clock reads and one list
append (well under a microsecond), and off it costs one attribute read::

    t0 = _spans.now() if _spans.on else 0
    ...
    if t0:
        _spans.add("allreduce", "comm", t0, args={"bytes": n})

or ``with _spans.span("forward", "train"):`` where a context manager reads better.

Times are ``CLOCK_MONOTONIC`` nanoseconds (:func:`time.monotonic_ns`, also what the numba
kernels stamp with: :func:`workbench.comm._numba_compat.clock_ns`). This module imports
nothing from workbench, so every layer may record into it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENV",
    "MAX_SPANS",
    "Record",
    "add",
    "mark",
    "now",
    "on",
    "span",
    "start",
    "stop",
    "take",
]

#: The environment variable that records a whole process and names the file its merged
#: trace goes to (read when workbench is imported; see :mod:`workbench.timeline`).
ENV = "WORKBENCH_TIMELINE"
#: Spans kept per process; later ones are counted as dropped (about 150 bytes each).
MAX_SPANS = 2_000_000

#: The clock of every span: ``CLOCK_MONOTONIC`` in nanoseconds.
now = time.monotonic_ns
#: Whether spans are being recorded (read it before paying for a clock read).
on = False

# (start ns, end ns, name, category, thread ident, args or None)
Span = tuple[int, int, str, str, int, "dict[str, Any] | None"]
_spans: list[Span] = []
_threads: dict[int, str] = {}
_dropped = 0
_began = 0


def add(name: str, cat: str, t0: int, t1: int = 0, args: dict[str, Any] | None = None) -> None:
    """Record the span ``name`` of category ``cat`` from ``t0`` to ``t1`` (default: now) on
    the calling thread. Call it only while :data:`on` (callers check first)."""
    global _dropped
    end = t1 or now()
    if len(_spans) >= MAX_SPANS:
        _dropped += 1
        return
    tid = threading.get_ident()
    if tid not in _threads:
        _threads[tid] = threading.current_thread().name
    _spans.append((t0, end, name, cat, tid, args))


class _Span:
    __slots__ = ("args", "cat", "name", "t0")

    def __init__(self, name: str, cat: str, args: dict[str, Any] | None) -> None:
        self.name, self.cat, self.args = name, cat, args

    def __enter__(self) -> _Span:
        self.t0 = now()
        return self

    def __exit__(self, *exc: object) -> None:
        if on:
            add(self.name, self.cat, self.t0, 0, self.args)


class _Off:
    __slots__ = ()

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


def span(name: str, cat: str = "user", args: dict[str, Any] | None = None) -> _Span | _Off:
    """``with span(name, cat):`` records the block as one span while recording is on."""
    return _Span(name, cat, args) if on else _OFF


def start() -> None:
    """Start recording in this process, with an empty buffer."""
    global on, _dropped, _began
    _spans.clear()
    _threads.clear()
    _dropped = 0
    _began = now()
    on = True


def stop() -> None:
    """Stop recording (what was recorded stays until :func:`take` or :func:`start`)."""
    global on
    on = False


@dataclass(frozen=True)
class Record:
    """What one process recorded, as plain data that pickles and travels to rank 0 or the
    notebook. ``monotonic_ns`` and ``wall_ns`` are read together, to align processes on
    different hosts."""

    rank: int | None
    host: str
    pid: int
    spans: list[Span]
    threads: dict[int, str]  # thread ident -> name
    dropped: int  # spans not kept (over MAX_SPANS)
    began: int  # ns: recording started (or the last take)
    ended: int  # ns: this take
    monotonic_ns: int
    wall_ns: int


def mark() -> tuple[int, int]:
    """Where the buffer is now: ``(spans so far, now)``, for :func:`take` ``since=``."""
    return len(_spans), now()


def take(
    rank: int | None = None, *, since: tuple[int, int] | None = None, keep: bool = False
) -> Record:
    """What was recorded since :func:`start` (or the last take, or the :func:`mark`
    ``since``), removed from the buffer unless ``keep``; recording goes on if it was on."""
    global _dropped, _began
    first, began = since if since is not None else (0, _began)
    spans = _spans[first:]
    if not keep:  # (spans a team's thread added meanwhile stay for the next take)
        del _spans[first : first + len(spans)]
    ended = now()
    rec = Record(
        rank=rank,
        host=os.uname().nodename,
        pid=os.getpid(),
        spans=spans,
        threads=dict(_threads),
        dropped=_dropped,
        began=began,
        ended=ended,
        monotonic_ns=now(),
        wall_ns=time.time_ns(),
    )
    if not keep:
        _dropped = 0
        _began = ended
    return rec
