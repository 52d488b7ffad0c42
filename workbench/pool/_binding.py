"""Which notebook kernel uses which pool, for the JupyterLab panel's status bar.

When a pool becomes current in a Jupyter kernel (``%wb start``, ``%wb attach``, ...), the
kernel writes ``workbench-kernel-<kernel id>.json`` (``{"cluster_file": ...}``) next to its
own connection file, in the Jupyter runtime folder; :func:`kernel_pools` reads them back on
the server side. Nothing is written outside a kernel.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import sys

__all__ = ["kernel_pools", "record"]

log = logging.getLogger(__name__)

_PREFIX = "workbench-kernel-"


def _connection_file() -> str | None:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None or "ipykernel" not in sys.modules:
        return None
    try:
        from ipykernel.connect import get_connection_file

        return get_connection_file()
    except (RuntimeError, ImportError, AttributeError):
        return None


def record(cluster_file: str | None) -> None:
    """Note that this kernel now uses the pool of ``cluster_file`` (None: no pool)."""
    conn = _connection_file()
    if conn is None:
        return
    kernel_id = os.path.basename(conn).removeprefix("kernel-").removesuffix(".json")
    path = os.path.join(os.path.dirname(conn), f"{_PREFIX}{kernel_id}.json")
    try:
        if cluster_file is None:
            os.remove(path)
        else:
            with open(path, "w") as f:
                json.dump({"cluster_file": cluster_file}, f)
    except OSError:  # the panel's status bar then shows no pool for this kernel: nothing lost
        log.debug("noting the pool of kernel %s failed", kernel_id, exc_info=True)


def kernel_pools(runtime_dir: str) -> dict[str, str]:
    """``{kernel id: cluster file}`` for the running kernels of ``runtime_dir``."""
    found = {}
    for path in glob.glob(os.path.join(runtime_dir, f"{_PREFIX}*.json")):
        kernel_id = os.path.basename(path).removeprefix(_PREFIX).removesuffix(".json")
        if not os.path.exists(os.path.join(runtime_dir, f"kernel-{kernel_id}.json")):
            with contextlib.suppress(OSError):
                os.remove(path)  # that kernel is gone
            continue
        try:
            with open(path) as f:
                found[kernel_id] = str(json.load(f)["cluster_file"])
        except (OSError, ValueError, KeyError):
            continue
    return found
