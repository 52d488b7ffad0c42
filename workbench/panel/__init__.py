"""The JupyterLab pool panel's server side: REST endpoints under ``/workbench/api/pools``
that list every pool this user can reach (from the cluster files, like ``%wb attach``),
describe each (where it runs, Slurm job state and time left, a row per rank), and start,
stop and restart pools. The panel itself is the prebuilt lab extension in
``workbench/labextension`` (source in ``extensions/labextension``).

Enabled in a Jupyter server by ``jupyter_server_config.d/workbench.json`` (installed with
the package); by hand: ``jupyter lab --ServerApp.jpserver_extensions="{'workbench.panel': True}"``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.panel"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from workbench.panel._handlers import handlers

    web_app = serverapp.web_app
    web_app.add_handlers(".*$", handlers(web_app.settings["base_url"], serverapp.runtime_dir))
    serverapp.log.info("workbench: pool panel API at /workbench/api/pools")


load_jupyter_server_extension = _load_jupyter_server_extension
