"""What the pool panel shows and does, without the web server: find every pool this user can
reach from its cluster file, describe it (where it runs, Slurm job state and time left, a row
per rank), start, stop and restart pools.

Pools are found the way ``%wb attach`` finds them: the cluster files (``cluster-*.json``) in
the ``security`` folder of every IPython profile. A pool whose controller is running is
attached once and kept (a :class:`~workbench.pool.Pool` that did not start it); a cluster file
whose controller is gone is shown as gone, with what to do.
"""

from __future__ import annotations

import glob
import json
import os
import threading
from typing import Any

from workbench import pool as _pool
from workbench._util import engines
from workbench.errors import InvalidValueError, PoolError
from workbench.pool import Pool, SlurmOptions, job_info, kernel_pools, process_alive

__all__ = ["PoolRegistry", "cluster_files", "describe_file"]


def _profile_dirs() -> list[str]:
    from IPython.paths import get_ipython_dir

    return sorted(glob.glob(os.path.join(get_ipython_dir(), "profile_*")))


def cluster_files() -> list[str]:
    """Every cluster file in every IPython profile, newest first."""
    files = [f for d in _profile_dirs()
             for f in glob.glob(os.path.join(d, "security", "cluster-*.json"))]  # fmt: skip
    return sorted(files, key=_mtime, reverse=True)


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def describe_file(cluster_file: str) -> dict[str, Any]:
    """What the cluster file alone tells: ids, profile, requested ranks, backend, Slurm job,
    and whether its controller process still runs (``state``: ``running`` or ``gone``)."""
    with open(cluster_file) as f:
        data = json.load(f)
    cluster = data.get("cluster", {})
    controller = (data.get("controller") or {}).get("state", {})
    sets = (data.get("engines") or {}).get("sets", {})
    job_ids = [s.get("job_id") for s in sets.values() if s.get("job_id")]
    profile_dir = cluster.get("profile_dir") or os.path.dirname(os.path.dirname(cluster_file))
    profile = os.path.basename(profile_dir).removeprefix("profile_")
    cluster_id = str(cluster.get("cluster_id", ""))
    pid = controller.get("pid")
    running = controller.get("state") == "running" and isinstance(pid, int) and process_alive(pid)
    return {
        "id": f"{profile}:{cluster_id}",
        "cluster_file": cluster_file,
        "cluster_id": cluster_id,
        "profile": profile,
        "requested": sum(int(s.get("n") or 0) for s in sets.values()) or cluster.get("n"),
        "backend": "slurm" if job_ids else "local",
        "job_id": str(job_ids[0]) if job_ids else None,
        "state": "running" if running else "gone",
        "registered": 0,
        "ranks": [],
        "error": None
        if running
        else "its controller is not running (stopped, or it died): stop removes what is left",
    }


class PoolRegistry:
    """The pools of this user, with the attached :class:`Pool` of each running one kept
    between calls. Thread-safe: the server calls it from an executor."""

    def __init__(self, attach_timeout: float = 5.0) -> None:
        self.attach_timeout = attach_timeout
        self._pools: dict[str, Pool] = {}
        self._lock = threading.Lock()

    def list(self, runtime_dir: str | None = None) -> list[dict[str, Any]]:
        """A description of every pool found (see :func:`describe_file`), with per-rank rows
        for the running ones, for Slurm pools the job state and time left, and the ids of
        the kernels (of the Jupyter ``runtime_dir``) that use each pool."""
        found = []
        for path in cluster_files():
            try:
                found.append(self.describe(path))
            except (OSError, ValueError) as e:  # being written, or not a cluster file
                why = f"cannot read the cluster file: {e}"
                found.append({"id": path, "cluster_file": path, "state": "unreadable",
                              "ranks": [], "error": why})  # fmt: skip
        with self._lock:
            for path in set(self._pools) - {p["cluster_file"] for p in found}:
                self._pools.pop(path).close()
        users = kernel_pools(runtime_dir) if runtime_dir else {}
        for p in found:
            p["kernels"] = sorted(k for k, f in users.items() if f == p["cluster_file"])
        return found

    def describe(self, cluster_file: str) -> dict[str, Any]:
        """One pool: the file's facts, then what its controller and engines say."""
        info = describe_file(cluster_file)
        if info["job_id"]:
            info.update(job_info(info["job_id"]))
        if info["state"] != "running":
            self._forget(cluster_file)
            return info
        try:
            pool = self._attached(cluster_file)
            status = pool.status()
        except PoolError as e:
            self._forget(cluster_file)
            pending = info.get("job_state") == "PENDING"
            info.update(state="pending" if pending else "starting", error=None if pending
                        else str(e))  # fmt: skip
            return info
        info["ranks"] = list(status.rows)
        info["registered"] = len(status.rows)
        info["hosts"] = sorted({r["host"] for r in status.rows})
        info["log_file"] = status.log_file
        return info

    def _attached(self, cluster_file: str) -> Pool:
        with self._lock:
            pool = self._pools.get(cluster_file)
            if pool is None or pool.lost is not None:
                current = _pool.current()
                pool = Pool.attach(cluster_file, timeout=self.attach_timeout)
                _pool.set_current(current)  # the server has no "current" pool of its own
                pool.query_timeout = self.attach_timeout
                self._pools[cluster_file] = pool
            return pool

    def _forget(self, cluster_file: str) -> None:
        with self._lock:
            pool = self._pools.pop(cluster_file, None)
        if pool is not None:
            pool.close()

    def start(self, ranks: Any, slurm: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a pool of ``ranks`` engines that outlives this server (``slurm``: the
        options of :class:`~workbench.pool.SlurmOptions` for a Slurm pool, else local)."""
        if not isinstance(ranks, int) or isinstance(ranks, bool) or ranks < 1:
            raise InvalidValueError(f"ranks must be a positive whole number, got {ranks!r}")
        current = _pool.current()
        try:
            if slurm is not None:
                opts = {k: v for k, v in slurm.items() if v not in (None, "")}
                unknown = set(opts) - {*SlurmOptions.__dataclass_fields__, "controller_ip"}
                if unknown:
                    raise InvalidValueError(f"unknown Slurm options {sorted(unknown)}")
                controller_ip = opts.pop("controller_ip", None)
                pool = Pool.slurm(ranks, detach=True, progress=False,
                                  controller_ip=controller_ip, **opts)  # fmt: skip
            else:
                pool = Pool.local(ranks, detach=True, progress=False)
        finally:
            _pool.set_current(current)
        path = pool.cluster_file
        pool.close()
        return {"cluster_file": path, "message": f"started {engines(ranks)}"}

    def stop(self, cluster_file: str) -> dict[str, Any]:
        """Stop the pool of ``cluster_file``; for a pool already gone, remove what is left."""
        info = describe_file(cluster_file)
        self._forget(cluster_file)
        if info["state"] != "running":
            os.remove(cluster_file)
            return {"message": "the pool was already gone; removed its cluster file"}
        try:
            pool = self._attached(cluster_file)
        except PoolError:  # a controller without engines: stop what is left
            self._forget(cluster_file)
            _pool.stop_file(cluster_file)
            return {"message": "stopped the pool's controller (it had no engines left)"}
        with self._lock:
            self._pools.pop(cluster_file, None)
        pool.stop()
        return {"message": f"stopped the pool of {engines(pool.size)}"}

    def restart(self, cluster_file: str) -> dict[str, Any]:
        """Fresh engines on the same controller."""
        pool = self._attached(cluster_file)
        pool.restart()
        return {"message": f"restarted {engines(pool.size)}"}

    def close(self) -> None:
        """Disconnect from every pool (they keep running)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
