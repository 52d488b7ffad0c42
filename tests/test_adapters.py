"""Other libraries' internals, each behind one adapter: the real path and the public fallback.

* ipykernel's subshell internals (``workbench/widgets/_ipykernel.py``): live controls in a
  real kernel started with jupyter_client, and "no subshell" when the internals are gone;
* CPython's ``os.environ._data`` (``workbench/comm/_environ.py``): the same settings, and
  run-time changes seen, on the fast path and on ``os.environ.get``;
* numba's ``cgutils`` (``workbench/comm/_numba_compat.py``): the flag kernels compile and
  work with numba's helper and with the llvmlite fallback.

Every wait is bounded.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from workbench.comm import _config, _environ, _numba_compat
from workbench.widgets import _ipykernel
from workbench.widgets.live_controls import LiveControls

ROOT = Path(__file__).resolve().parents[1]


# -- os.environ ------------------------------------------------------------------------------


def test_environ_fast_path_is_taken_on_cpython() -> None:
    if platform.python_implementation() == "CPython":
        assert _environ.has_raw_environ()
    assert not _environ.has_raw_environ({"A": "1"})  # a plain dict


@pytest.mark.parametrize("raw", [True, False], ids=["environ._data", "os.environ.get"])
def test_settings_see_run_time_changes_on_both_paths(
    raw: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _config.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_config, "_read_env", _environ.env_reader(_config.DEFAULTS, raw=raw))
    monkeypatch.setattr(_config, "_cache", None)
    default = _config.settings()
    assert default.fusion_bytes == 64 << 20 and default.algorithm == "auto"
    monkeypatch.setenv(_config.ENV_FUSION, "1MiB")
    monkeypatch.setenv(_config.ENV_ALGO, "ring")
    changed = _config.settings()
    assert (changed.fusion_bytes, changed.algorithm) == (1 << 20, "ring")
    monkeypatch.delenv(_config.ENV_FUSION)
    assert _config.settings().fusion_bytes == 64 << 20
    # the other path reads the same environment into the same settings
    monkeypatch.setattr(_config, "_read_env", _environ.env_reader(_config.DEFAULTS, raw=not raw))
    monkeypatch.setattr(_config, "_cache", None)
    assert _config.settings() == _config.settings(algorithm=None)
    assert _config.settings().algorithm == "ring"


def test_env_reader_on_a_mapping_without_internals() -> None:
    env = {"WB_A": "1"}
    read = _environ.env_reader({"WB_A": "a", "WB_B": "b"}, environ=env)
    assert read() == ("1", "b")
    env["WB_B"] = "2"
    assert read() == ("1", "2")


# -- numba internals -------------------------------------------------------------------------


def _declared_twice(declare: Callable[[Any, Any, str], Any]) -> None:
    from llvmlite import ir

    module = ir.Module()
    fnty = ir.FunctionType(ir.VoidType(), [])
    first = declare(module, fnty, "llvm.x86.sse2.pause")
    assert declare(module, fnty, "llvm.x86.sse2.pause") is first
    assert str(module).count("declare void @") == 1


def test_declare_function_numba_and_fallback() -> None:
    try:
        from numba.core.cgutils import get_or_insert_function
    except ImportError:  # a numba without it: the fallback is the helper
        assert _numba_compat.declare_function is _numba_compat.declare_function_public
    else:
        assert _numba_compat.declare_function is get_or_insert_function
    _declared_twice(_numba_compat.declare_function)
    _declared_twice(_numba_compat.declare_function_public)


def test_flag_kernels_compile_and_work_with_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba import njit

    calls = []

    def recording(module: Any, fnty: Any, name: str) -> Any:
        calls.append(name)
        return _numba_compat.declare_function_public(module, fnty, name)

    monkeypatch.setattr(_numba_compat, "declare_function", recording)
    acquire, release, relax = (
        _numba_compat.load_acquire,
        _numba_compat.store_release,
        _numba_compat.cpu_relax,
    )

    @njit(cache=False)
    def publish_then_wait(ctl, value, spins):
        release(ctl.ctypes.data, value)
        for k in range(spins):
            if acquire(ctl.ctypes.data) >= value:
                return k
            relax()
        return -1

    ctl = np.zeros(4, dtype=np.int64)
    assert publish_then_wait(ctl, 7, 5) == 0 and ctl[0] == 7
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert calls == ["llvm.x86.sse2.pause"]  # compiled through the fallback


def test_flag_kernels_of_the_allreduce() -> None:
    from workbench.comm import _flags

    ctl = np.zeros((3, _flags.CTL_WORDS), dtype=np.int64)
    for rank in range(2):
        _flags.publish(ctl, rank, _flags.ARRIVE, 5)
    assert _flags.wait_all(ctl, _flags.ARRIVE, 5, 10) == 1  # rank 2 has not arrived
    _flags.publish(ctl, 2, _flags.ARRIVE, 5)
    assert _flags.wait_all(ctl, _flags.ARRIVE, 5, 10) == 0


# -- ipykernel subshells: the fallback -------------------------------------------------------


def _kernel(**attrs: Any) -> SimpleNamespace:
    return SimpleNamespace(kernel=SimpleNamespace(**attrs))


class _Loop:
    """An ``io_loop`` that runs callbacks at once, on the caller's thread."""

    def add_callback(self, fn: Callable[[], None]) -> None:
        fn()


def test_no_subshell_when_the_internals_are_gone() -> None:
    assert _ipykernel.subshell_host() is None  # no kernel in the test process
    assert _ipykernel.subshell_host(object()) is None
    manager = SimpleNamespace(_create_subshell=lambda: "sid")
    thread = SimpleNamespace(io_loop=_Loop(), manager=manager)
    assert _ipykernel.subshell_host(_kernel(shell_channel_thread=thread)) is None  # no flag
    no_loop = SimpleNamespace(manager=manager)
    shell = _kernel(_supports_kernel_subshells=True, shell_channel_thread=no_loop)
    assert _ipykernel.subshell_host(shell) is None
    no_create = SimpleNamespace(io_loop=_Loop(), manager=SimpleNamespace())
    shell = _kernel(_supports_kernel_subshells=True, shell_channel_thread=no_create)
    assert _ipykernel.subshell_host(shell) is None
    shell = _kernel(_supports_kernel_subshells=True, shell_channel_thread=thread)
    assert isinstance(_ipykernel.subshell_host(shell), _ipykernel.SubshellHost)


def test_live_controls_without_subshells_route_nothing() -> None:
    controls = LiveControls()
    assert not controls.live
    widget = SimpleNamespace(comm=SimpleNamespace())
    controls.route(widget)
    assert not hasattr(widget.comm, "_reply_subshell_for")
    controls.close()


def test_failed_subshell_calls_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("moved")

    thread = SimpleNamespace(
        io_loop=_Loop(), manager=SimpleNamespace(_create_subshell=broken, _delete_subshell=broken)
    )
    host = _ipykernel.SubshellHost(thread)
    with caplog.at_level(logging.DEBUG, logger="workbench.widgets._ipykernel"):
        assert host.create() is None
        assert host.delete("sid") is False
    assert len(caplog.records) == 2 and all(r.exc_info for r in caplog.records)


def test_pin_comm_on_ipykernels_comm_and_on_anything_else() -> None:
    from ipykernel.comm import Comm

    comm = Comm(target_name="workbench-test", primary=False)  # no kernel: nothing is sent
    routed = hasattr(Comm, "_reply_subshell_for")  # ipykernel 7: the kernel asks the comm
    assert _ipykernel.pin_comm(comm, "sid") is routed
    if not routed:
        return
    assert comm._reply_subshell_for({}, None) == "sid"
    _ipykernel.unpin_comm(comm)
    assert comm._reply_subshell_for({}, "main") == "main"  # ipykernel's own answer again
    other = SimpleNamespace()
    assert not _ipykernel.pin_comm(other, "sid") and vars(other) == {}
    _ipykernel.unpin_comm(other)


# -- ipykernel subshells: a real kernel ------------------------------------------------------


class _Kernel:
    """A real IPython kernel (jupyter_client) running cells and control requests."""

    def __init__(self) -> None:
        from jupyter_client.manager import start_new_kernel

        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.km, self.kc = start_new_kernel(
            kernel_name="python3", startup_timeout=60, env={**os.environ, "PYTHONPATH": path}
        )

    def supports_subshells(self) -> bool:
        """Whether the kernel says (kernel_info, JEP 91) that it runs subshells."""
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + 10
        while (left := deadline - time.monotonic()) > 0:
            reply = self.kc.get_shell_msg(timeout=left)
            if reply["parent_header"].get("msg_id") == msg_id:
                return "kernel subshells" in reply["content"].get("supported_features", [])
        raise AssertionError("no kernel_info_reply within 10 s")

    def start(self, code: str) -> str:
        return self.kc.execute(code)

    def output(self, msg_id: str, timeout: float = 30.0) -> str:
        """What the cell ``msg_id`` printed (or its traceback), once it ended."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"cell did not end within {timeout} s; output so far: {out}"
            msg = self.kc.get_iopub_msg(timeout=left)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)

    def run(self, code: str) -> str:
        return self.output(self.start(code))

    def click(self, comm_id: str) -> None:
        """What the front end sends when a Button is clicked."""
        data = {"method": "custom", "content": {"event": "click"}}
        self.kc.shell_channel.send(
            self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        )

    def subshells(self) -> list[str]:
        """The kernel's subshells, asked on the control channel (JEP 91)."""
        msg = self.kc.session.msg("list_subshell_request", {})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + 10
        while (left := deadline - time.monotonic()) > 0:
            reply = self.kc.control_channel.get_msg(timeout=left)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return list(reply["content"]["subshell_id"])
        raise AssertionError("no list_subshell_reply within 10 s")

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel() -> Iterator[_Kernel]:
    pytest.importorskip("ipywidgets")
    k = _Kernel()
    try:
        yield k
    finally:
        k.stop()


_BUTTON = """
import threading, ipywidgets as w
from workbench.widgets.live_controls import LiveControls
clicked = threading.Event()
button = w.Button()
button.on_click(lambda _b: clicked.set())
controls = LiveControls({shell})
controls.route(button)
print(controls.live, button.comm.comm_id, controls.subshell_id)
"""
_WAIT = "print(clicked.wait({timeout}), threading.current_thread() is threading.main_thread())"


def test_real_kernel_routes_clicks_to_a_subshell_while_a_cell_runs(kernel: _Kernel) -> None:
    if not kernel.supports_subshells():
        pytest.skip("this ipykernel runs no subshells (ipykernel 7 does)")
    live, comm_id, sid = kernel.run(_BUTTON.format(shell="")).split()
    assert live == "True" and sid in kernel.subshells()
    waiting = kernel.start(_WAIT.format(timeout=20))
    time.sleep(0.3)  # the cell is blocked in wait()
    kernel.click(comm_id)
    assert kernel.output(waiting).split() == ["True", "True"]  # handled while it ran
    assert kernel.run("controls.close(); print(controls.live)").strip() == "False"
    assert sid not in kernel.subshells()
    route = kernel.run("print(button.comm._reply_subshell_for({}, 'x'))").strip()
    assert route == "None"  # ipykernel's own answer again: the main shell, which sent last


def test_real_kernel_without_the_internals_handles_clicks_between_cells(kernel: _Kernel) -> None:
    live, comm_id, sid = kernel.run(_BUTTON.format(shell="shell=object()")).split()
    assert (live, sid) == ("False", "None")
    waiting = kernel.start(_WAIT.format(timeout=1.5))
    time.sleep(0.3)
    kernel.click(comm_id)
    assert kernel.output(waiting).split() == ["False", "True"]  # not while the cell ran ...
    assert kernel.run("print(clicked.wait(10))").strip() == "True"  # ... but right after it
