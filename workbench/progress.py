"""The one progress channel: ``progress()`` on the engines, ``ProgressTracker`` in the notebook.

Engine code calls :func:`progress`; the update travels on ipyparallel's data publication
(an iopub message tied to the running request), so nothing polls files and nothing
extra listens on the network. The notebook side reads the latest payload of each rank
from the running ``AsyncResult`` and hands it to a view (:mod:`workbench.widgets`).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from workbench.errors import InvalidTypeError, InvalidValueError

__all__ = ["KEY", "ProgressTracker", "RankProgress", "check_report", "flush", "progress"]

KEY = "workbench.progress"
"""Data-publication key that carries progress payloads."""

_MIN_INTERVAL = 0.1  # seconds between two publications from one engine (total unknown)
_BOUNDARIES = 100  # with a total: publish when a step crosses one of these many boundaries
_QUIET = 1.0  # with a total: publish the latest anyway after this long without a boundary
_HISTORY = 512  # points each publication carries, for live plots
_KEEP = 20_000  # points the notebook keeps per rank


class _Reporter:
    """Per-process state of the engine side: throttling and a short metric history."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request: object = None
        self.t0 = time.time()
        self.seq = 0
        self.last_sent = 0.0
        self.sent_seq = 0
        self.sent_step = 0.0
        self.payload: dict[str, Any] | None = None
        self.history: deque[tuple[int, float, dict[str, float]]] = deque(maxlen=_HISTORY)
        self.timer: threading.Timer | None = None

    def reset(self, request: object) -> None:
        self.request = request
        self.t0 = time.time()
        self.seq = 0
        self.sent_seq = 0
        self.sent_step = 0.0
        self.last_sent = 0.0
        self.history.clear()


_reporter = _Reporter()


def _publisher() -> tuple[Any, object] | None:
    """The engine's data publisher and current request id, or None outside an engine."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or type(kernel).__module__.split(".")[0] != "ipyparallel":
        return None
    pub = shell.data_pub
    return pub, pub.parent_header.get("msg_id")


def check_report(step: Any, total: Any, metrics: dict[str, Any]) -> None:
    """Raise a clear error unless ``step``, ``total`` and ``metrics`` make a valid report."""
    if not isinstance(step, Real) or isinstance(step, bool) or not math.isfinite(step):
        raise InvalidTypeError(f"progress(step=...) must be a finite number, got {step!r}")
    if total is not None and (not isinstance(total, Real) or isinstance(total, bool) or total <= 0):
        raise InvalidValueError(
            f"progress(total=...) must be a positive number or None, got {total!r}"
        )
    for name, value in metrics.items():
        if not isinstance(value, (Real, str)):
            raise InvalidTypeError(
                f"progress metric {name}={value!r} must be a number or a string "
                f"(got {type(value).__name__}); convert it, e.g. float(x)"
            )


def progress(step: float, total: float | None = None, **metrics: float | str) -> None:
    """Report ``step`` of ``total`` and the latest ``metrics`` from engine code.

    Shown live in the notebook (one bar per rank). Cheap to call often, and the last value
    is always delivered. With a ``total``, ranks publish when their step crosses one of 100
    boundaries of it (or after a quiet second), so ranks in lock-step show the same step;
    without one, at most one publication per 0.1 s per engine.
    Outside an engine (plain ``mpiexec`` or a script) it prints a line at most once a second.
    """
    check_report(step, total, metrics)
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, Real)}
    target = _publisher()
    r = _reporter
    with r.lock:
        request = target[1] if target else "local"
        if request != r.request:
            r.reset(request)
        r.seq += 1
        now = time.time()
        if numeric:
            r.history.append((r.seq, float(step), numeric))
        r.payload = {
            "step": float(step),
            "total": None if total is None else float(total),
            "metrics": dict(metrics),
            "t0": r.t0,
            "t": now,
            "seq": r.seq,
        }
        if target is None:
            due = now - r.last_sent >= 1.0
        elif total is not None:  # same boundaries on every rank: lock-step ranks agree
            stride = float(total) / _BOUNDARIES
            due = not r.sent_seq or step >= total or step // stride > r.sent_step // stride
        else:
            due = now - r.last_sent >= _MIN_INTERVAL
        if due:
            _send(target)
        elif target and r.timer is None:
            _arm(target, _MIN_INTERVAL if total is None else _QUIET)


def _arm(target: tuple[Any, object], delay: float) -> None:
    """Start the timer that sends a pending report ``delay`` s after the last publication
    (caller holds the lock)."""
    _reporter.timer = threading.Timer(delay, _flush, args=(target, delay))
    _reporter.timer.daemon = True
    _reporter.timer.start()


def _flush(target: tuple[Any, object], delay: float) -> None:
    """The throttle timer's job: send what is still pending for ``target``'s request, unless
    something was published meanwhile (then look again ``delay`` s after that)."""
    r = _reporter
    with r.lock:
        r.timer = None
        wait = r.last_sent + delay - time.time()
        if wait > 0.01 and r.request == target[1] and r.seq > r.sent_seq:
            _arm(target, wait)
        else:
            _send_pending(target)


def flush() -> None:
    """Publish the latest progress now if a throttled report is still pending.

    The pool calls it when a task ends (``pool.run``, ``%%distributed``), so the final
    metrics always reach the notebook before the result does.
    """
    target = _publisher()
    with _reporter.lock:
        if _reporter.timer is not None:
            _reporter.timer.cancel()
            _reporter.timer = None
        if target is not None:
            _send_pending(target)


def _send_pending(target: tuple[Any, object]) -> None:
    """Send the payload if it belongs to ``target``'s request and was not sent (lock held)."""
    r = _reporter
    if r.request == target[1] and r.seq > r.sent_seq:
        _send(target)


def _send(target: tuple[Any, object] | None) -> None:
    """Publish the current payload (caller holds the lock)."""
    r = _reporter
    r.last_sent = r.payload["t"] if r.payload else time.time()
    r.sent_seq = r.seq
    r.sent_step = r.payload["step"] if r.payload else 0.0
    if target is None:
        p = r.payload or {}
        of = f"/{p['total']:g}" if p.get("total") else ""
        text = " ".join(f"{k}={_fmt(v)}" for k, v in p.get("metrics", {}).items())
        print(f"[progress] step {p.get('step', 0):g}{of} {text}".rstrip(), file=sys.stderr)
        return
    payload = dict(r.payload or {}, history=list(r.history))
    target[0].publish_data({KEY: payload})


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class RankProgress:
    """What the notebook knows of one rank's progress."""

    rank: int
    step: float = 0.0
    total: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    updated: float | None = None
    seq: int = 0
    history: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    state: str = "running"  # running | done | failed | interrupted

    @property
    def fraction(self) -> float | None:
        """Completed fraction in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))

    def describe(self) -> str:
        """One short line: step, total and metrics."""
        of = f"/{self.total:g}" if self.total else ""
        text = " ".join(f"{k}={_fmt(v)}" for k, v in self.metrics.items())
        return f"{self.step:g}{of} {text}".rstrip()


class ProgressTracker:
    """Merge progress payloads per rank; feed a view only when something changed."""

    def __init__(self, ranks: list[int]) -> None:
        self.ranks = {r: RankProgress(r) for r in ranks}
        self.t0 = time.monotonic()
        self.seen = False

    def update(self, payloads: dict[int, dict[str, Any]]) -> bool:
        """Apply the latest payload of each rank; True if anything changed."""
        changed = False
        for rank, p in payloads.items():
            state = self.ranks.get(rank)
            if state is None or not p or p.get("seq", 0) == state.seq:
                continue
            if p.get("t0") != state.started:  # a new run on that rank
                state.history.clear()
                state.seq = 0
            state.history.extend((s, m) for q, s, m in p.get("history", []) if q > state.seq)
            del state.history[:-_KEEP]
            state.step, state.total = p["step"], p.get("total")
            state.metrics, state.started, state.updated = p["metrics"], p["t0"], p["t"]
            state.seq = p["seq"]
            changed = self.seen = True
        return changed

    @property
    def elapsed(self) -> float:
        """Seconds since the tracker was created (the work started)."""
        return time.monotonic() - self.t0

    def finish(self, states: dict[int, str]) -> None:
        """Record each rank's final state (done, failed, interrupted)."""
        for rank, s in states.items():
            if rank in self.ranks:
                self.ranks[rank].state = s
