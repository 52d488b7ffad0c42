"""The engine side of placed data: named objects that outlive a cell (placed once, used often).

``pool.scatter`` / ``pool.broadcast`` (:mod:`workbench.data`), the linalg offload, feature
selection and sweeps keep their engine-side objects here under a key. These functions run on
the engines; they are importable so they pickle by reference. User code usually reads its
part with :func:`workbench.data.local` instead.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import MissingDataError

__all__ = ["drop", "get", "info", "put"]

_objects: dict[str, Any] = {}


def put(key: str, value: Any) -> int:
    """Keep ``value`` under ``key``; return its size in bytes when it has one."""
    _objects[key] = value
    return int(getattr(value, "nbytes", 0))


def get(key: str) -> Any:
    """The object stored under ``key`` on this engine."""
    try:
        return _objects[key]
    except KeyError:
        raise MissingDataError(
            f"no data {key!r} on this engine (it was freed, or the engines were restarted: "
            "place it again)"
        ) from None


def drop(key: str) -> bool:
    """Forget ``key``; True if it was there."""
    return _objects.pop(key, None) is not None


def info() -> dict[str, int]:
    """Key -> bytes of everything stored here."""
    return {k: int(getattr(v, "nbytes", 0)) for k, v in _objects.items()}
