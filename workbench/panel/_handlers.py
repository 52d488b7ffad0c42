"""REST endpoints of the pool panel, under ``/workbench/api/pools`` on the Jupyter server.

Authenticated like every Jupyter API (the server's token or login; nothing else is served,
and only on the server's own origin). Pool calls block (they talk to controllers, run
``squeue``, start processes), so each runs in a worker thread, bounded by a timeout, and the
server's event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from workbench import _timeouts
from workbench.errors import InvalidValueError, WorkbenchError
from workbench.panel._pools import PoolRegistry, cluster_files, describe_file

__all__ = ["handlers"]

_LIST_TIMEOUT = 20.0  # seconds for one listing (each pool's queries are bounded on their own)


class _PoolsBase(APIHandler):
    """Shared by the endpoints: the registry, its executor, and bounded calls into it."""

    def initialize(
        self, registry: PoolRegistry, executor: ThreadPoolExecutor, runtime_dir: str
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.runtime_dir = runtime_dir

    async def call(self, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the executor; a clear HTTP error when it fails or runs too long."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.executor, fn, *args), timeout)
        except TimeoutError:
            raise web.HTTPError(504, reason=f"no answer within {timeout:g} s") from None
        except InvalidValueError as e:
            raise web.HTTPError(400, reason=_one_line(e)) from None
        except (WorkbenchError, OSError) as e:
            raise web.HTTPError(409, reason=_one_line(e)) from None

    def known_file(self, pool_id: str) -> str:
        """The cluster file of the pool ``pool_id`` (``profile:cluster_id``), or 404."""
        for path in cluster_files():
            try:
                if describe_file(path)["id"] == pool_id:
                    return path
            except (OSError, ValueError):
                continue
        raise web.HTTPError(404, reason=f"no pool {pool_id} (it may have been removed)")

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, reason="the request body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, reason="the request body must be a JSON object")
        return data


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:500]


class PoolsHandler(_PoolsBase):
    """``GET``: every pool this user can reach; ``POST {"ranks": N, "slurm": {...}}``: start
    one (local, or a Slurm job with the given sbatch options) that outlives the server."""

    @web.authenticated
    async def get(self) -> None:
        pools = await self.call(_LIST_TIMEOUT, self.registry.list, self.runtime_dir)
        self.finish(json.dumps({"pools": pools}))

    @web.authenticated
    async def post(self) -> None:
        data = self.body()
        slurm = data.get("slurm")
        if slurm is not None and not isinstance(slurm, dict):
            raise web.HTTPError(400, reason="slurm must be an object of sbatch options")
        limit = _timeouts.SLURM_START if slurm is not None else _timeouts.ENGINE_START
        out = await self.call(limit + 30, self.registry.start, data.get("ranks"), slurm)
        self.set_status(201)
        self.finish(json.dumps(out))


class PoolHandler(_PoolsBase):
    """``DELETE``: stop the pool (or clean up a gone one); ``POST {"action": "restart"}``."""

    @web.authenticated
    async def delete(self, pool_id: str) -> None:
        path = self.known_file(pool_id)
        out = await self.call(_timeouts.ENGINES_EXIT + 30, self.registry.stop, path)
        self.finish(json.dumps(out))

    @web.authenticated
    async def post(self, pool_id: str) -> None:
        action = self.body().get("action")
        if action != "restart":
            raise web.HTTPError(400, reason=f"unknown action {action!r}; use restart")
        path = self.known_file(pool_id)
        out = await self.call(_timeouts.ENGINE_START + 30, self.registry.restart, path)
        self.finish(json.dumps(out))


def handlers(base_url: str, runtime_dir: str) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL routes, sharing one registry and a small thread pool; ``runtime_dir`` holds
    the kernels' notes of which pool each uses."""
    from jupyter_server.utils import url_path_join

    shared = {"registry": PoolRegistry(), "executor": ThreadPoolExecutor(4, "workbench-panel"),
              "runtime_dir": runtime_dir}  # fmt: skip
    root = url_path_join(base_url, "workbench", "api", "pools")
    return [(root, PoolsHandler, shared), (root + r"/(?P<pool_id>[^/]+)", PoolHandler, shared)]
