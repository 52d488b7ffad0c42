"""The globals a notebook-defined function needs on the engines.

ipyparallel sends a function defined in the notebook by value and runs it with the engine's
namespace as its globals. That keeps engine-side names (``comm``, ``rank``, what a
``%%distributed`` cell defined) visible, but a module imported at the top of the notebook
(``import time``) is missing there: a NameError on every rank. Before a call, :func:`needed`
lists the globals such functions use that the notebook got from an import (a module, or a
function or class of an importable module), the notebook's own helper functions and
classes, and plain constants (numbers, strings, short lists and dicts of them); on the
engine, :func:`bind` defines those that are missing. Data is never shipped this way:
scatter or broadcast it.
"""

from __future__ import annotations

import importlib
import sys
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType
from typing import Any, NamedTuple

__all__ = ["bind", "needed"]

_PLAIN = (int, float, complex, str, bytes, bool, type(None))
_DEPTH = 3  # containers looked into for functions (an objective inside a spec dict)
_ITEMS = 100  # larger containers are data, not where functions hide


class _Import(NamedTuple):
    """A name the engine imports: ``module`` or ``module.attribute``."""

    module: str
    attribute: str | None = None


def needed(*objs: Any) -> dict[str, Any]:
    """What the notebook functions in ``objs`` use from the notebook's globals.

    Maps a name to an import to make or to the value, canned the way ipyparallel sends a
    call's functions (by value, run with the engine namespace as globals).
    """
    from ipyparallel.serialize import can

    found: dict[str, Any] = {}
    seen: set[int] = set()
    for obj in objs:
        _visit(obj, found, seen, _DEPTH)
    return {name: can(value) for name, value in found.items()}


def _visit(obj: Any, found: dict[str, Any], seen: set[int], depth: int) -> None:
    small = depth and len(obj) <= _ITEMS if isinstance(obj, (list, tuple, set, dict)) else False
    if isinstance(obj, (list, tuple, set)) and small:
        for x in obj:
            _visit(x, found, seen, depth - 1)
    elif isinstance(obj, dict) and small:
        for x in obj.values():
            _visit(x, found, seen, depth - 1)
    elif isinstance(obj, FunctionType) and obj.__module__ == "__main__" and id(obj) not in seen:
        seen.add(id(obj))
        ns = obj.__globals__
        for name in _names(obj.__code__):
            if name in found or name not in ns:
                continue
            value = ns[name]
            spec = _spec(value)
            if spec is not None:
                found[name] = spec
                if spec is value:  # a notebook helper: what it uses is needed too
                    _visit(value, found, seen, depth)


def _names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
    return names


def _spec(value: Any) -> Any:
    """An :class:`_Import`, the value itself (sent by value), or None (not sent)."""
    if isinstance(value, ModuleType):
        return _Import(value.__name__)
    if isinstance(value, (FunctionType, BuiltinFunctionType, type)):
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if module == "__main__":
            return value
        if module and "<" not in qualname and _lookup(module, qualname) is value:
            return _Import(module, qualname)
        return None
    if isinstance(value, _PLAIN) or _small_plain(value):
        return value
    return None


def _small_plain(value: Any) -> bool:
    """A short list, tuple, set or dict of plain values (``FEATURES = ["a", "b"]``)."""
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    elif not isinstance(value, (list, tuple, set, frozenset)):
        return False
    return len(value) <= 128 and all(isinstance(v, _PLAIN) for v in value)


def _lookup(module: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


_BOUND: dict[str, Any] = {}  # engine side: what bind defined, so a newer value replaces it
_MISSING = object()


def bind(names: dict[str, Any]) -> None:
    """Engine side: define ``names`` where the engine namespace lacks them or still holds
    what an earlier call defined; names the engine defined itself are left alone."""
    from ipyparallel.serialize import uncan
    from IPython import get_ipython

    shell = get_ipython()
    ns = shell.user_ns if shell is not None else sys.modules["__main__"].__dict__
    for name, spec in names.items():
        current = ns.get(name, _MISSING)
        if current is not _MISSING and current is not _BOUND.get(name, _MISSING):
            continue
        if isinstance(spec, _Import):
            try:
                value = importlib.import_module(spec.module)
                if spec.attribute:
                    value = _lookup(spec.module, spec.attribute)
            except (ImportError, AttributeError):  # a name that only looked like a global use
                continue
        else:
            value = uncan(spec, ns)
        ns[name] = _BOUND[name] = value
