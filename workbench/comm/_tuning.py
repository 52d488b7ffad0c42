"""The measured table behind ``auto``: file format, reading (cached), and the per-size plan.

``python -m workbench.comm.tune`` writes the table (see :func:`workbench.comm._config.tune_file`
for where); ``auto`` turns the entry of its communicator's layout into a :class:`Plan`, a
sorted list of size buckets, so that a call costs one ``bisect``. The file::

    {"version": 1, "updated": "2026-11-27T10:00:00+00:00", "machine": {...}, "mpi": "MPICH ...",
     "layouts": {"p=4 nodes=1x4": {"ranks": 4, "nodes": 1, "ranks_per_node": 4,
                                   "measured": "2026-11-27T10:00:00+00:00",
                                   "sizes": [{"bytes": 4096, "best": "mpi", "native_us": 8.1,
                                              "us": {"mpi": 30.2, "ring": 51.0, ...}}, ...]}}}

A message uses the row whose ``bytes`` is nearest on a log scale. In each row the pick is the
fastest algorithm (``best`` first when given) that is allowed there and was not measured
slower than ``mpi`` (``native_us`` when ``mpi`` was not measured); failing that, ``mpi``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from workbench.comm._config import ENV_TUNE_FILE
from workbench.comm._topology import topology

__all__ = [
    "MEASURABLE",
    "STAGED",
    "VERSION",
    "WINDOW_ALGORITHMS",
    "Layout",
    "Plan",
    "builtin_plan",
    "choose",
    "load_plans",
    "merge_layout",
    "node_layout",
    "plan_from_entry",
    "write_table",
]

VERSION = 1
#: The algorithms the tuner measures and a table may name.
MEASURABLE = ("mpi", "ring", "rhd", "shm", "hierarchical", "cma")
#: Algorithms that need shared windows: never on a team's communicator.
WINDOW_ALGORITHMS = frozenset({"shm", "hierarchical", "cma"})
#: What a row may also name: the node window of small calls (:mod:`workbench.comm._staging`;
#: not an algorithm: a message it takes never reaches one), measured on one node.
STAGED = "window"


@dataclass(frozen=True)
class Layout:
    """How a communicator sits on the machine; ``per_node`` is 0 when nodes differ."""

    ranks: int
    nodes: int
    per_node: int

    @property
    def key(self) -> str:
        """The table key, e.g. ``p=8 nodes=2x4``."""
        return f"p={self.ranks} nodes={self.nodes}x{self.per_node or 'mixed'}"

    def allowed(self) -> frozenset[str]:
        """Algorithms that run on this layout (``shm`` and ``cma`` need one node)."""
        return frozenset(MEASURABLE) - ({"shm", "cma"} if self.nodes > 1 else set())


def node_layout(comm: Any) -> Layout:
    """The :class:`Layout` of ``comm``, identical on every rank (collective)."""
    topo = topology(comm)
    counts = set(comm.allgather(topo.node.Get_size()))
    per_node = counts.pop() if len(counts) == 1 else 0
    return Layout(comm.Get_size(), topo.n_nodes, per_node)


@dataclass(frozen=True)
class Plan:
    """Algorithm names per size bucket: bucket ``i`` holds sizes from ``edges[i]`` on.
    ``team`` is the same without window-based algorithms; ``source`` says where it came from.
    ``staged`` says per bucket whether the node window may take a message (empty: wherever
    it fits, as where the table did not measure it)."""

    edges: tuple[int, ...]
    algorithms: tuple[str, ...]
    team: tuple[str, ...]
    source: str
    staged: tuple[bool, ...] = ()

    def pick(self, nbytes: int, team: bool = False) -> str:
        """The algorithm name for a message of ``nbytes`` (on a team's communicator)."""
        i = bisect_right(self.edges, nbytes) - 1
        return (self.team if team else self.algorithms)[i]

    def stages(self, nbytes: int) -> bool:
        """Whether the node window may take a message of ``nbytes`` (where it fits)."""
        return not self.staged or self.staged[bisect_right(self.edges, nbytes) - 1]


def builtin_plan(layout: Layout, small: int, large: int, *, cma: int = 0) -> Plan:
    """Today's fixed thresholds: ``mpi`` below ``small``; on one node ``mpi`` (2 ranks) or
    ``shm`` up to ``large`` and ``ring`` beyond; ``hierarchical`` across nodes; teams
    ``mpi`` then ``ring`` from ``large``. With ``cma`` (bytes, where the kernel allows
    cross-memory attach) two ranks of one node use ``cma`` from that size on."""
    edges = (0, small, max(small, large))
    if layout.nodes > 1:
        algos = ("mpi", "hierarchical", "hierarchical")
    else:
        algos = ("mpi", "mpi" if layout.ranks == 2 else "shm", "ring")
    plan = Plan(edges, algos, ("mpi", "mpi", "ring"), "built-in thresholds")
    if cma and layout.nodes == 1 and layout.ranks == 2:
        plan = Plan((0, small, max(small, cma)), ("mpi", "mpi", "cma"), plan.team,
                    "built-in thresholds, cross-memory attach")  # fmt: skip
    return plan


def choose(
    us: Mapping[str, float],
    reference: float | None,
    allowed: frozenset[str],
    best: str | None = None,
) -> str:
    """The fastest of ``us`` (``best`` first) that is allowed and not slower than
    ``reference`` (the ``mpi`` time); ``mpi`` when none is."""
    order = sorted(us, key=us.__getitem__)
    for name in ([best] if best else []) + order:
        if name == "mpi":
            return name
        measured = us.get(name)
        slower = reference is not None and measured is not None and measured > reference
        if name in allowed and not slower:
            return name
    return "mpi"


def _number(row: Mapping[str, Any], key: str) -> float | None:
    v = row.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{key}={v!r} is not a positive number")
    return float(v)


def plan_from_entry(entry: Mapping[str, Any], source: str) -> tuple[Layout, Plan]:
    """The layout and plan of one table entry; ``ValueError`` naming what is malformed."""
    layout = Layout(int(entry["ranks"]), int(entry["nodes"]), int(entry["ranks_per_node"]))
    rows = sorted(entry["sizes"], key=lambda r: int(r["bytes"]))
    if not rows:
        raise ValueError(f"{layout.key}: no sizes")
    sizes: list[int] = []
    algos: list[str] = []
    team: list[str] = []
    staged: list[bool] = []
    allowed = layout.allowed()
    for row in rows:
        nbytes = int(row["bytes"])
        us = {str(k): _number(row["us"], k) for k in row.get("us", {})}
        best = row.get("best")
        named = ({best} if best else set()) | set(us)
        if not named <= {*MEASURABLE, STAGED} or nbytes <= 0 or (sizes and nbytes == sizes[-1]):
            raise ValueError(f"{layout.key}: bad row {dict(row)}")
        if best is None and not us:
            raise ValueError(f"{layout.key}: row of {nbytes} bytes names no algorithm")
        times = {k: v for k, v in us.items() if v is not None}
        ref = times.get("mpi", _number(row, "native_us"))
        sizes.append(nbytes)
        # the window, where the row measured it, only where it won (nowhere across nodes)
        measured = STAGED in named and layout.nodes == 1
        staged.append(not measured or choose(times, ref, allowed | {STAGED}, best) == STAGED)
        times.pop(STAGED, None)
        best = None if best == STAGED else best
        algos.append(choose(times, ref, allowed, best))
        team.append(choose(times, ref, allowed - WINDOW_ALGORITHMS, best))
    edges = (0, *(math.isqrt(a * b) for a, b in pairwise(sizes)))
    return layout, Plan(edges, tuple(algos), tuple(team), source, tuple(staged))


#: What reading a bad file can raise (JSON errors are ValueErrors).
_UNUSABLE = (OSError, ValueError, TypeError, KeyError, AttributeError)
_lock = threading.Lock()
_read: dict[Path, tuple[tuple[int, int], dict[str, Plan]]] = {}


def load_plans(path: Path) -> dict[str, Plan]:
    """The plans of the table at ``path`` by layout key; empty when there is no file.

    Read once per version of the file (cached by modification time and size). A corrupt
    or unreadable file gives one ``RuntimeWarning`` and is treated as absent.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        _warn(path, exc)
        return {}
    stamp = (st.st_mtime_ns, st.st_size)
    with _lock:
        hit = _read.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            plans = _parse(path)
        except _UNUSABLE as exc:
            _warn(path, exc)
            plans = {}
        _read[path] = (stamp, plans)
    return plans


def _parse(path: Path) -> dict[str, Plan]:
    table = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(table, dict) or table.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} tuning table")
    plans = {}
    for key, entry in table["layouts"].items():
        layout, plan = plan_from_entry(entry, f"measured table {path}")
        if layout.key != key:
            raise ValueError(f"layout {key!r} describes {layout.key!r}")
        plans[key] = plan
    return plans


def _warn(path: Path, exc: BaseException) -> None:
    warnings.warn(
        f"ignoring the allreduce tuning file {path} ({type(exc).__name__}: {exc}); 'auto' "
        "uses its built-in thresholds. Re-run `python -m workbench.comm.tune` to rewrite it "
        f"(or delete it, or point {ENV_TUNE_FILE} at another file)",
        RuntimeWarning,
        stacklevel=3,
    )


def merge_layout(path: Path, entry: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """The table at ``path`` (a new one if absent or unusable) with ``entry`` put under its
    layout and ``facts`` (machine, MPI, date) updated."""
    try:
        _parse(path)  # keep the other layouts only from a valid table
        layouts = json.loads(path.read_text(encoding="utf-8"))["layouts"]
    except _UNUSABLE:
        layouts = {}
    layout, _ = plan_from_entry(entry, str(path))
    layouts[layout.key] = entry
    return {"version": VERSION, **facts, "layouts": dict(sorted(layouts.items()))}


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Write ``table`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
