"""Install the ``workbench`` kernelspec: an IPython kernel that starts with the extension loaded.

The source spec is ``kernels/workbench/kernel.json``. As ``ipykernel install`` does, the
installed copy has ``argv[0]`` rewritten to :data:`sys.executable`, so the kernel runs in the
environment workbench is installed in, whatever ``python`` is first on ``PATH``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from workbench.cli._shared import shared_dir
from workbench.errors import InvalidValueError, SetupError

__all__ = [
    "KERNEL_NAME",
    "ensure_kernelspec",
    "install_kernelspec",
    "kernelspec_source",
]

KERNEL_NAME = "workbench"


def kernelspec_source() -> Path:
    """The folder holding the source ``kernel.json`` shipped with workbench."""
    return shared_dir("kernels") / KERNEL_NAME


def _in_virtual_env() -> bool:
    """True inside a venv/virtualenv or a conda environment."""
    return sys.prefix != sys.base_prefix or (Path(sys.prefix) / "conda-meta").is_dir()


def install_kernelspec(
    *,
    name: str = KERNEL_NAME,
    user: bool = False,
    prefix: str | Path | None = None,
) -> Path:
    """Install the workbench kernelspec as ``name`` and return the folder it was written to.

    ``user=True`` installs for the current user, ``prefix=P`` into ``P/share/jupyter/kernels``
    (``sys.prefix`` for the active environment). With neither, the default is the active
    environment inside a venv or conda env, else the user.
    """
    if user and prefix is not None:
        raise InvalidValueError("choose one of user=True or prefix=..., not both")
    if not user and prefix is None:
        if _in_virtual_env():
            prefix = sys.prefix
        else:
            user = True
    source = kernelspec_source()
    with tempfile.TemporaryDirectory(prefix="workbench-kernelspec-") as tmp:
        staged = Path(tmp) / name
        shutil.copytree(source, staged)
        spec_file = staged / "kernel.json"
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        spec["argv"][0] = sys.executable
        spec_file.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        destination = KernelSpecManager().install_kernel_spec(
            str(staged),
            kernel_name=name,
            user=user,
            prefix=None if prefix is None else str(prefix),
        )
    return Path(destination)


def ensure_kernelspec(name: str = KERNEL_NAME) -> Path:
    """Return the folder of kernelspec ``name``, installing it at the default place if missing.

    Raises RuntimeError when an installed spec points at a Python that no longer exists
    (e.g. a deleted virtual environment) with the command that repairs it.
    """
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(name)
    except NoSuchKernel:
        return install_kernelspec(name=name)
    python = spec.argv[0] if spec.argv else ""
    if Path(python).is_absolute() and not Path(python).exists():
        raise SetupError(
            f"kernelspec {name!r} in {spec.resource_dir} starts {python}, which no longer "
            f"exists; reinstall it with: workbench kernel install --name {name} "
            "(add --user if it was a per-user install)"
        )
    return Path(spec.resource_dir)
