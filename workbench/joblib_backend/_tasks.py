"""What travels with a joblib task, and what runs on the engine.

Large arrays (numpy arrays and pandas objects of at least ``min_bytes``) found in a task's
arguments are replaced by a :class:`Ref` to a copy kept in the engine store. An engine gets
each such array once per ``Parallel`` call, with the first task it runs that needs it; the
later tasks carry only the reference. Kept arrays are read-only, as joblib's own
memory-mapped arrays are, and are dropped when the call ends.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

from workbench import _spans, engine_store

__all__ = ["MIN_BYTES", "Ref", "drop_call", "nbytes", "resolve", "run_items"]

MIN_BYTES = 1 << 16
"""Default ``min_bytes``: arrays this large reach an engine once per call, then a reference."""


@dataclass(frozen=True)
class Ref:
    """An array kept in the engine store under ``key`` during one ``Parallel`` call."""

    key: str


def nbytes(value: Any) -> int:
    """The size of ``value`` if it is a numpy array or a pandas Series/DataFrame, else 0."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return 0 if value.dtype.hasobject else int(value.nbytes)
    if type(value).__module__.startswith("pandas."):
        if type(value).__name__ == "Series":
            return int(value.nbytes)
        if type(value).__name__ == "DataFrame":
            return int(value.memory_usage(index=True, deep=False).sum())
    return 0


def resolve(value: Any, depth: int = 0) -> Any:
    """Engine side: ``value`` with every :class:`Ref` (at the top, or one level down in a
    list, tuple or dict) replaced by the kept array."""
    if isinstance(value, Ref):
        return engine_store.get(value.key)
    if depth == 0 and type(value) in (list, tuple):
        return type(value)(resolve(v, 1) for v in value)
    if depth == 0 and type(value) is dict:
        return {k: resolve(v, 1) for k, v in value.items()}
    return value


def run_items(blob: bytes, new: dict[str, Any]) -> tuple[Any, ...]:
    """Engine side: keep the arrays ``new`` (key -> array), then run the joblib tasks in
    ``blob`` (cloudpickled ``[(func, args, kwargs), ...]``) one after the other, nested
    joblib calls sequential (this engine is one of the workers already).

    Returns ``("ok", [results])``, or ``("error", exception or None, name, message,
    traceback)`` when a task raised (the exception itself when it pickles)."""
    import numpy as np
    from joblib import parallel_config

    for key, value in new.items():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # shared by the tasks of this engine
        engine_store.put(key, value)
    try:
        items = pickle.loads(blob)
        with parallel_config(backend="sequential"):
            out = [_run(f, a, k) for f, a, k in items]
    except Exception as e:
        tb = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(e))
            exc: BaseException | None = e
        except Exception:
            exc = None
        return ("error", exc, type(e).__name__, str(e), tb)
    return ("ok", out)


def _run(f: Any, args: Any, kwargs: Any) -> Any:
    """One joblib task (a span on the timeline when it is recorded)."""
    if not _spans.on:
        return f(*resolve(tuple(args)), **resolve(dict(kwargs)))
    t0 = _spans.now()
    try:
        return f(*resolve(tuple(args)), **resolve(dict(kwargs)))
    finally:
        name = getattr(f, "__name__", type(f).__name__)
        _spans.add("joblib task", "joblib", t0, 0, {"function": name})


def drop_call(prefix: str) -> int:
    """Engine side: forget every array kept for the call whose keys start with ``prefix``;
    returns how many there were."""
    keys = [k for k in engine_store.info() if k.startswith(prefix)]
    for k in keys:
        engine_store.drop(k)
    return len(keys)
