"""Locate the data folders shipped next to the package (notebooks/, kernels/, extensions/).

In a source checkout (editable install) they live at the repository root; in a wheel they
are force-included under ``workbench/_shared/``. The repository copy wins when both exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from workbench.errors import MissingFileError

__all__ = ["SharedFolder", "shared_dir"]

SharedFolder = Literal["notebooks", "kernels", "extensions"]

_PACKAGE = Path(__file__).resolve().parent.parent  # the workbench package folder


def shared_dir(name: SharedFolder) -> Path:
    """Return the folder ``name``; raise FileNotFoundError naming both places looked in."""
    repo_root = _PACKAGE.parent
    candidates = [_PACKAGE / "_shared" / name]
    if (repo_root / "pyproject.toml").is_file():  # a checkout, not site-packages
        candidates.insert(0, repo_root / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise MissingFileError(
        f"workbench data folder {name!r} not found (looked in {looked}); "
        "reinstall workbench (pip install --force-reinstall workbench)"
    )
