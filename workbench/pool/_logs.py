"""Where the log of a pool's ipyparallel cluster goes: a file per pool, never the notebook.

Left to itself, an ``ipp.Cluster`` made in IPython logs to ``sys.stdout``, and its background
threads keep doing so for the pool's whole life: when the pool is stopped from elsewhere
("engine set stopped", "Controller stopped", "mpiexec error output") the lines land in the
output of whichever cell started it. Each pool's cluster gets its own logger instead (passed
to ``ipp.Cluster(log=...)``; the cluster hands it on to its launchers), which writes with
timestamps to ``<profile_dir>/log/workbench-<cluster_id>.log``, next to the output files
ipyparallel keeps for the controller and engines, and is not propagated.
"""

from __future__ import annotations

import logging
import os
import secrets
import time

__all__ = ["cluster_logger", "log_path", "log_to", "new_cluster_id"]

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def new_cluster_id() -> str:
    """A fresh cluster id in ipyparallel's own form (``<unix time>-<4 characters>``)."""
    return f"{int(time.time())}-{secrets.token_hex(2)}"


def log_path(profile_dir: str, cluster_id: str) -> str:
    """The log file of the cluster ``cluster_id`` whose files are in ``profile_dir``."""
    return os.path.join(profile_dir, "log", f"workbench-{cluster_id}.log")


class _AppendHandler(logging.Handler):
    """Appends each record to a file, opening it only for that record: a cluster logs a few
    lines in its life, so no file stays open, and several processes attached to the same
    pool can share its file."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        except Exception:
            self.handleError(record)


def cluster_logger(cluster_id: str) -> logging.Logger:
    """The logger of cluster ``cluster_id``: writes nowhere (not even to Python's last-resort
    stderr handler) until :func:`log_to` gives it its file."""
    log = logging.getLogger(f"workbench.pool.cluster.{cluster_id}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers = [logging.NullHandler()]
    return log


def log_to(log: logging.Logger, path: str) -> str:
    """Send ``log``'s records of INFO and above to the file ``path`` (only); returns ``path``."""
    log.handlers = [_AppendHandler(path)]
    return path
