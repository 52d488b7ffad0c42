"""The data a pool has placed on its engines, by key: what ``%wb status`` lists and what a
restart marks freed.

:mod:`workbench.data` and :mod:`workbench.linalg` place the data and add their handles here;
the pool only keeps the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["Placed", "PlacedHandle"]


class PlacedHandle(Protocol):
    """What the record needs of a handle to data on the engines."""

    key: str
    freed: bool

    def describe(self) -> str:
        """One line for ``%wb status``."""
        ...


class Placed:
    """Handles of the data on a pool's engines, by key, in the order they were placed."""

    def __init__(self) -> None:
        self._handles: dict[str, PlacedHandle] = {}

    def add(self, key: str, handle: PlacedHandle) -> None:
        """Record ``handle``, the data placed under ``key``."""
        self._handles[key] = handle

    def remove(self, key: str) -> None:
        """Stop listing the data under ``key`` (it was freed); unknown keys are ignored."""
        self._handles.pop(key, None)

    def get(self, key: str) -> PlacedHandle | None:
        """The handle recorded under ``key``, or None."""
        return self._handles.get(key)

    def free_all(self) -> None:
        """The engines that held the data are gone: mark every handle freed, forget them."""
        for handle in self._handles.values():
            handle.freed = True
        self._handles.clear()

    def describe(self) -> list[str]:
        """One line per handle, for ``%wb status``."""
        return [h.describe() for h in self._handles.values()]

    def __iter__(self) -> Iterator[PlacedHandle]:
        return iter(list(self._handles.values()))

    def __len__(self) -> int:
        return len(self._handles)
