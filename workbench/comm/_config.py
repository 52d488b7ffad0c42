"""Tuning knobs of the allreduce: keyword arguments first, then environment variables.

=========================== ============================================ ==========
variable                    meaning                                      default
=========================== ============================================ ==========
WORKBENCH_ALLREDUCE_ALGO    auto, ring, rhd, shm, hierarchical, mpi, cma auto
WORKBENCH_FUSION_BYTES      fusion buffer size for lists of tensors      64MiB
WORKBENCH_SEGMENT_BYTES     pipeline segment of the ring algorithm       1MiB
WORKBENCH_ALLREDUCE_CHECK   on/off: check shapes/dtypes/op across ranks  on
WORKBENCH_STALL_SECONDS     warn when ranks have not joined after this   60
WORKBENCH_TUNE_FILE         the table ``auto`` reads (written by         user cache
                            ``python -m workbench.comm.tune``)
=========================== ============================================ ==========

Byte sizes accept a plain integer or a suffix (``64MiB``, ``512k``, ``1G``). The user cache
is ``$XDG_CACHE_HOME/workbench/allreduce-tune.json`` (``~/.cache/...`` when unset).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench._util import bad_setting, parse_bool, parse_bytes, parse_seconds
from workbench.comm._environ import env_reader

__all__ = [
    "ALGORITHM_NAMES",
    "ENV_ALGO",
    "ENV_CHECK",
    "ENV_FUSION",
    "ENV_SEGMENT",
    "ENV_STALL",
    "ENV_TUNE_FILE",
    "Settings",
    "settings",
    "tune_file",
]

ENV_ALGO = "WORKBENCH_ALLREDUCE_ALGO"
ENV_FUSION = "WORKBENCH_FUSION_BYTES"
ENV_SEGMENT = "WORKBENCH_SEGMENT_BYTES"
ENV_CHECK = "WORKBENCH_ALLREDUCE_CHECK"
ENV_STALL = "WORKBENCH_STALL_SECONDS"
ENV_TUNE_FILE = "WORKBENCH_TUNE_FILE"

ALGORITHM_NAMES = ("auto", "ring", "rhd", "shm", "hierarchical", "mpi", "cma")
DEFAULTS = {
    ENV_ALGO: "auto",
    ENV_FUSION: "64MiB",
    ENV_SEGMENT: "1MiB",
    ENV_CHECK: "on",
    ENV_STALL: "60",
}


def parse_algorithm(name: str, value: str) -> str:
    """One of :data:`ALGORITHM_NAMES`."""
    v = str(value).strip().lower()
    if v not in ALGORITHM_NAMES:
        raise bad_setting(name, value, ", ".join(ALGORITHM_NAMES))
    return v


@dataclass(frozen=True)
class Settings:
    """Resolved tuning of one call (environment overridden by arguments)."""

    algorithm: str
    fusion_bytes: int
    segment_bytes: int
    check: bool
    stall_seconds: float


_cache: tuple[tuple[object, ...], Settings] | None = None


#: The raw values of the variables of DEFAULTS, to notice a change (see :mod:`._environ`).
read_env = _read_env = env_reader(DEFAULTS)


def _from_env() -> Settings:
    global _cache
    raw = _read_env()
    cached = _cache
    if cached is not None and cached[0] == raw:
        return cached[1]
    algo, fusion, segment, check, stall = (os.environ.get(k, d) for k, d in DEFAULTS.items())
    s = Settings(
        algorithm=parse_algorithm(ENV_ALGO, algo),
        fusion_bytes=parse_bytes(ENV_FUSION, fusion),
        segment_bytes=parse_bytes(ENV_SEGMENT, segment),
        check=parse_bool(ENV_CHECK, check),
        stall_seconds=parse_seconds(ENV_STALL, stall),
    )
    _cache = (raw, s)
    return s


def settings(
    *,
    algorithm: str | None = None,
    fusion_bytes: int | str | None = None,
    check: bool | str | None = None,
) -> Settings:
    """Settings for one call: each argument that is not None wins over its variable.

    ``algorithm`` overrides ``WORKBENCH_ALLREDUCE_ALGO``, ``fusion_bytes``
    ``WORKBENCH_FUSION_BYTES`` and ``check`` ``WORKBENCH_ALLREDUCE_CHECK``.
    """
    s = _from_env()
    if algorithm is None and fusion_bytes is None and check is None:
        return s
    return Settings(
        algorithm=s.algorithm if algorithm is None else parse_algorithm("algorithm", algorithm),
        fusion_bytes=(
            s.fusion_bytes if fusion_bytes is None else parse_bytes("fusion_bytes", fusion_bytes)
        ),
        segment_bytes=s.segment_bytes,
        check=s.check if check is None else parse_bool("check", check),
        stall_seconds=s.stall_seconds,
    )


def tune_file() -> Path:
    """Where ``auto``'s measured table lives: ``WORKBENCH_TUNE_FILE``, else
    ``$XDG_CACHE_HOME/workbench/allreduce-tune.json`` (``~/.cache`` when unset)."""
    explicit = os.environ.get(ENV_TUNE_FILE, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "workbench" / "allreduce-tune.json"
