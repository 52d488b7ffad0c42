"""The one module that reads CPython's private state behind ``os.environ``.

The allreduce reads its settings (:mod:`workbench.comm._config`) from the environment at every
call, so that ``os.environ[...] = ...`` at run time takes effect at the next call. A call has
a budget of a few microseconds; :func:`env_reader` makes that read about 20 times cheaper than
``os.environ.get`` where CPython's internals allow, and falls back to ``os.environ.get``
where they do not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["env_reader", "has_raw_environ"]


def _raw(environ: Any) -> tuple[dict[Any, Any], Callable[[str], Any]] | None:
    """``(environ._data, environ.encodekey)`` of CPython's ``os._Environ``, or None."""
    data = getattr(environ, "_data", None)
    encodekey = getattr(environ, "encodekey", None)
    if isinstance(data, dict) and callable(encodekey):
        return data, encodekey
    return None


def has_raw_environ(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether :func:`env_reader` takes the fast path on ``environ``."""
    return _raw(environ) is not None


def env_reader(
    defaults: Mapping[str, str],
    *,
    environ: Mapping[str, str] = os.environ,
    raw: bool = True,
) -> Callable[[], tuple[object, ...]]:
    """A function giving the current value of each variable of ``defaults`` (its default
    when unset), in order: cheap enough for every call, for noticing a change only (values
    may be the encoded bytes; read the variables themselves to use them).

    Reads ``environ._data``, the dict of encoded keys and values that CPython's
    ``os._Environ`` updates on every assignment and deletion (no encoding per variable),
    with keys encoded once here by ``environ.encodekey``. Falls back to ``environ.get`` when
    those are gone, or when ``raw`` is False. The choice is made here, once.
    """
    found = _raw(environ) if raw else None
    if found is not None:
        data, encodekey = found
        get = data.get
        keys = tuple(encodekey(k) for k in defaults)
        values = tuple(defaults.values())

        def read_raw() -> tuple[object, ...]:
            return tuple(map(get, keys, values))  # (cheaper than a comprehension)

        return read_raw
    public = environ.get
    items = tuple(defaults.items())

    def read_public() -> tuple[object, ...]:
        return tuple([public(k, d) for k, d in items])

    return read_public
