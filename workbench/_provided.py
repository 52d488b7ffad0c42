"""Pool methods whose work lives in the packages built on the pool.

``pool.scatter`` and ``pool.broadcast`` (:mod:`workbench.data`) and ``pool.joblib``
(:mod:`workbench.joblib_backend`) are where a user looks for them, on the pool, but their
code uses the pool, so the pool must not import it. ``workbench/__init__``, which runs before
any module of the package, provides them here (each importing its module on first call), and
the pool looks them up here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["provide", "provided"]

_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def provide(name: str, function: Callable[..., Any]) -> None:
    """Make ``function`` the implementation of the pool method ``name``."""
    _FUNCTIONS[name] = function


def provided(name: str) -> Callable[..., Any]:
    """The implementation of the pool method ``name``."""
    try:
        return _FUNCTIONS[name]
    except KeyError:
        raise RuntimeError(
            f"pool.{name} is not provided: workbench/__init__ provides it (is this module "
            "imported without its package?)"
        ) from None
