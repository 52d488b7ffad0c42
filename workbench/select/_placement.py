"""Data for the wrapper methods: ``(X, y)`` broadcast to every rank once, reused by handle.

Sequential selection, RFE and permutation importance refit on subsets of all rows, so
every rank holds the whole ``(X, y)``. ``place`` sends it once; pass the returned
:class:`PlacedData` as ``X`` to any number of selections, then ``free()`` it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import engine_store
from workbench.errors import DataFreedError, InvalidValueError
from workbench.pool import require
from workbench.select._validation import check_finite, check_X, check_y

if TYPE_CHECKING:
    from workbench.data import Broadcast
    from workbench.pool import Pool

__all__ = ["PlacedData", "engine_data", "place", "placed"]


@dataclass
class PlacedData:
    """``(X, y)`` held by every rank of ``pool``; the notebook keeps a reference too."""

    X: np.ndarray
    y: np.ndarray
    handle: Broadcast
    pool: Pool

    @property
    def key(self) -> str:
        """Store key of ``(X, y)`` on the engines."""
        return self.handle.key

    def free(self) -> None:
        """Release the engines' copies."""
        self.handle.free()

    def __repr__(self) -> str:
        n, d = self.X.shape
        state = "freed" if self.handle.freed else f"on {self.pool.size} ranks"
        return f"<PlacedData {n} x {d} {state}>"


def place(X: Any, y: Any, *, pool: Pool | None = None) -> PlacedData:
    """Validate ``X``, ``y`` and broadcast them to every rank of ``pool`` (default: the
    current pool) once; reuse the handle."""
    pool = require(pool)
    Xa = check_X(X, min_features=2)
    check_finite(Xa, allow_nan=True)
    ya = check_y(y, Xa.shape[0])
    return PlacedData(Xa, ya, pool.broadcast((Xa, ya)), pool)


@contextlib.contextmanager
def placed(X: Any, y: Any, pool: Pool | None, *, allow_nan: bool = False) -> Iterator[PlacedData]:
    """The data of one selection: ``X`` if it is a :class:`PlacedData` (``y`` None), or
    ``(X, y)`` placed on ``pool`` now and freed after; NaN rejected unless ``allow_nan``."""
    if isinstance(X, PlacedData):
        if y is not None and y is not X.y:
            raise InvalidValueError("X is placed data that carries its own y: call with y=None")
        if X.handle.freed:
            raise DataFreedError("this PlacedData was freed: place the data again")
        if pool is not None and pool is not X.pool:
            raise InvalidValueError("X was placed on another pool than the pool= passed")
        if not allow_nan:
            check_finite(X.X)
        yield X
        return
    pool = require(pool)
    Xa = check_X(X, min_features=2)
    check_finite(Xa, allow_nan=allow_nan)
    ya = check_y(y, Xa.shape[0])
    data = PlacedData(Xa, ya, pool.broadcast((Xa, ya)), pool)
    try:
        yield data
    finally:
        data.free()


def engine_data(key: str) -> tuple[np.ndarray, np.ndarray]:
    """On an engine: the ``(X, y)`` placed under ``key``."""
    return engine_store.get(key)
