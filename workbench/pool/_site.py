"""A site profile: the Slurm and engine settings a site's admins (or a user) write once.

A TOML file, ``$WORKBENCH_SITE`` or else ``~/.config/workbench/site.toml`` (``$XDG_CONFIG_HOME``
is honoured), with a ``[slurm]`` table::

    [slurm]
    partition = "regular"
    account = "m1234"
    time = "1:00:00"
    launcher = "srun"                     # or "mpiexec"
    setup = ["module load cray-mpich", "conda activate ml"]
    container = "podman-hpc run --rm -v $HOME:$HOME docker.io/me/img:1"
    python = "/opt/conda/bin/python"      # the engines' interpreter, if not the kernel's
    controller_interface = "hsn0"         # where the nodes reach the notebook's machine
    extra = "--qos=debug --constraint=cpu"

An argument given to ``Pool.slurm``/``Pool.here``/``%wb start`` wins over the profile, which
wins over workbench's default. ``workbench site show`` prints what applies and where each
value comes from. Unknown keys and wrong types are errors that name the file and the key.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from workbench.errors import InvalidValueError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SiteProfile", "load_site", "site_file"]

_STR = ("partition", "account", "time", "launcher", "container", "python", "extra",
        "controller_interface", "controller_ip")  # fmt: skip


_DEFAULTS = {
    "launcher": "mpiexec for a new job, srun inside an allocation",
    "setup": "none",
    "container": "none",
    "python": f"the notebook's ({sys.executable})",
    "controller_interface": "chosen: the route to the nodes, hsn*/ib*, the host's name",
    "time": "the partition's default",
    "partition": "Slurm's default partition",
}


def site_file() -> str:
    """The profile's path: ``$WORKBENCH_SITE``, else ``~/.config/workbench/site.toml``."""
    given = os.environ.get("WORKBENCH_SITE")
    if given:
        return os.path.expanduser(given)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "workbench", "site.toml")


@dataclass(frozen=True)
class SiteProfile:
    """The settings of a site profile (each None when the profile does not set it) and the
    file they came from (None: no profile)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    launcher: str | None = None
    setup: tuple[str, ...] = ()
    container: str | None = None
    python: str | None = None
    extra: str | None = None
    controller_interface: str | None = None
    controller_ip: str | None = None
    path: str | None = field(default=None, compare=False)

    def pick(self, name: str, given: Any, default: Any = None) -> Any:
        """``given`` when not None (an argument wins), else the profile's ``name``, else
        ``default``."""
        if given is not None:
            return given
        mine = getattr(self, name)
        return default if mine in (None, ()) else mine

    def describe(self) -> str:
        """What ``workbench site show`` prints: every setting and where it comes from."""
        origin = self.path or "no site profile"
        lines = [f"site profile: {origin}"]
        if self.path is None:
            lines.append(f"  (none found: write {site_file()} or set WORKBENCH_SITE)")
        for f in fields(self):
            if f.name == "path":
                continue
            value = getattr(self, f.name)
            if value in (None, ()):
                lines.append(f"  {f.name:<21} {_DEFAULTS.get(f.name, '-')}  (default)")
                continue
            shown = "; ".join(value) if isinstance(value, tuple) else value
            lines.append(f"  {f.name:<21} {shown}  (site profile)")
        return "\n".join(lines)


def load_site(path: str | None = None) -> SiteProfile:
    """The site profile of ``path`` (default :func:`site_file`); an empty profile when there
    is no such file. :class:`InvalidValueError` naming the file and key for a bad one."""
    path = path or site_file()
    if not os.path.exists(path):
        if os.environ.get("WORKBENCH_SITE"):
            raise InvalidValueError(f"WORKBENCH_SITE names {path}, which does not exist")
        return SiteProfile()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InvalidValueError(f"site profile {path} cannot be read: {e}") from None
    table = data.get("slurm", {})
    unknown = sorted(set(data) - {"slurm"}) + sorted(
        set(table) - {*_STR, "setup"} if isinstance(table, dict) else set()
    )
    if unknown or not isinstance(table, dict):
        allowed = ", ".join(sorted({*_STR, "setup"}))
        raise InvalidValueError(
            f"site profile {path}: unknown settings {unknown or ['slurm']}; it has one table "
            f"[slurm] with: {allowed}"
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "setup":
            lines = [value] if isinstance(value, str) else value
            if not isinstance(lines, list) or not all(isinstance(v, str) for v in lines):
                raise InvalidValueError(
                    f"site profile {path}: setup must be a string or a list of strings, "
                    f"got {value!r}"
                )
            values["setup"] = tuple(lines)
        elif not isinstance(value, str) or not value:
            raise InvalidValueError(
                f"site profile {path}: {key} must be a non-empty string, got {value!r}"
            )
        else:
            values[key] = value
    return SiteProfile(**values, path=path)
