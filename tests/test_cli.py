"""The ``workbench`` command, parameter injection and the kernelspec — real kernels, no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workbench.cli.kernelspec import ensure_kernelspec, install_kernelspec
from workbench.cli.notebook import (
    INJECTED_TAG,
    NotebookExecutionError,
    execute_notebook,
    inject_parameters,
    parse_parameters,
)

CLI_TIMEOUT = 180  # seconds; a cold `import nbformat` plus a kernel start can take a while


# -- helpers ----------------------------------------------------------------------------------


def _notebook(
    *sources: str, parameters: str | None = None, title: str = "Tiny"
) -> nbformat.NotebookNode:
    cells = [new_markdown_cell(f"# {title}")]
    if parameters is not None:
        cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells += [new_code_cell(src) for src in sources]
    return new_notebook(cells=cells)


def _write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, str(path))
    return path


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment whose Jupyter/IPython state lives in a temp dir, with the real kernelspec."""
    root = tmp_path_factory.mktemp("jupyter")
    install_kernelspec(prefix=root / "prefix")
    env = dict(os.environ)
    env.update(
        JUPYTER_PATH=str(root / "prefix" / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_DATA_DIR=str(root / "data"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        IPYTHONDIR=str(root / "ipython"),
    )
    return env


def workbench(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m workbench.cli ARGS`` as a subprocess, bounded by CLI_TIMEOUT."""
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


# -- parameter parsing and injection ----------------------------------------------------------


def test_parameters_are_literals_else_strings() -> None:
    params = parse_parameters(
        ["n=3", "lr=0.5", "flag=True", "nothing=None", "sizes=[1, 2]", "opts={'a': 1}",
         "name=run1", "quoted='x y'", "expr=a=b", " spaced = 7 "]
    )  # fmt: skip
    assert params == {
        "n": 3,
        "lr": 0.5,
        "flag": True,
        "nothing": None,
        "sizes": [1, 2],
        "opts": {"a": 1},
        "name": "run1",
        "quoted": "x y",
        "expr": "a=b",
        "spaced": 7,
    }


def test_parameter_values_are_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    params = parse_parameters(
        [
            "x=__import__('os').system('false')",
            f"y=open({str(marker)!r}, 'w')",
            "z=1 + 2",
        ]
    )
    assert params == {
        "x": "__import__('os').system('false')",
        "y": f"open({str(marker)!r}, 'w')",
        "z": "1 + 2",
    }
    assert not marker.exists()
    cell = inject_parameters(_notebook(), params).cells[0]
    # the injected source assigns string literals: running it calls nothing
    assert "x = \"__import__('os').system('false')\"" in cell.source


@pytest.mark.parametrize("item", ["1a=2", "a-b=2", "class=2", "=2", "x y=2", "novalue", "a.b=1"])
def test_invalid_parameters_are_rejected(item: str) -> None:
    with pytest.raises(ValueError, match=r"key=value|identifier"):
        parse_parameters([item])


def test_injected_cell_goes_right_after_parameters_cell() -> None:
    nb = _notebook("print(n)", parameters="n = 1")
    out = inject_parameters(nb, {"n": 3, "name": "a"})
    assert [c.metadata.get("tags", []) for c in out.cells] == [
        [],
        ["parameters"],
        [INJECTED_TAG],
        [],
    ]
    assert out.cells[2].source == "# Parameters\nn = 3\nname = 'a'"
    assert len(nb.cells) == 3, "the input notebook must not be modified"
    nbformat.validate(out)


def test_injected_cell_goes_on_top_without_parameters_cell() -> None:
    out = inject_parameters(_notebook("print(n)"), {"n": 3})
    assert out.cells[0].metadata.tags == [INJECTED_TAG]
    assert out.cells[0].source.endswith("n = 3")


def test_injection_replaces_a_previous_injection() -> None:
    once = inject_parameters(_notebook("print(n)", parameters="n = 1"), {"n": 3})
    twice = inject_parameters(once, {"n": 4})
    injected = [c for c in twice.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(twice.cells) == len(once.cells)
    assert [c.source.splitlines()[-1] for c in injected] == ["n = 4"]


def test_injection_without_parameters_changes_nothing() -> None:
    nb = _notebook("print(1)", parameters="n = 1")
    assert inject_parameters(nb, {}).cells == nb.cells


def test_injection_keeps_old_notebooks_valid() -> None:
    nb = _notebook("print(n)", parameters="n = 1")
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    out = inject_parameters(nb, {"n": 2})
    nbformat.validate(out)
    assert "id" not in out.cells[2]


def test_injection_rejects_bad_names_and_non_literals() -> None:
    with pytest.raises(ValueError, match="identifier"):
        inject_parameters(_notebook(), {"not valid": 1})
    with pytest.raises(TypeError, match="not a Python literal"):
        inject_parameters(_notebook(), {"x": object()})


# -- kernelspec -------------------------------------------------------------------------------


def test_kernel_install_into_prefix(tmp_path: Path) -> None:
    result = workbench("kernel", "install", "--prefix", str(tmp_path / "p"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    spec_file = tmp_path / "p" / "share" / "jupyter" / "kernels" / "workbench" / "kernel.json"
    assert str(spec_file.parent) in result.stdout
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][0] == sys.executable
    assert "--ext=workbench" in spec["argv"]
    assert "{connection_file}" in spec["argv"]
    assert spec["display_name"] == "Workbench (MPI)"
    assert spec["language"] == "python"


def test_ensure_kernelspec_finds_installed_and_flags_stale(
    jupyter_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", jupyter_env["JUPYTER_PATH"])
    found = ensure_kernelspec()
    assert found == Path(jupyter_env["JUPYTER_PATH"]) / "kernels" / "workbench"

    stale = install_kernelspec(name="workbench-stale", prefix=tmp_path)
    spec = json.loads((stale / "kernel.json").read_text())
    spec["argv"][0] = str(tmp_path / "gone" / "python")
    (stale / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    with pytest.raises(RuntimeError, match=r"no longer exists.*workbench kernel install"):
        ensure_kernelspec("workbench-stale")


# -- workbench run ----------------------------------------------------------------------------


def test_run_injects_parameters_with_workbench_kernel(
    jupyter_env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "nbs"
    src.mkdir()
    _write(
        _notebook(
            "print('n is', n, type(n).__name__)",
            "print('label is', repr(label))",
            "print('loaded:', 'workbench' in get_ipython().extension_manager.loaded)",
            "import os; print('cwd:', os.getcwd())",
            parameters="n = 1\nlabel = 'default'",
        ),
        src / "tiny.ipynb",
    )
    result = workbench(
        "run", "nbs/tiny.ipynb", "-p", "n=3", "-p", "label=__import__('os')", "--timeout", "60",
        cwd=tmp_path, env=jupyter_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out_path = tmp_path / "tiny.out.ipynb"  # default: <stem>.out.ipynb in the current folder
    assert str(out_path) in result.stdout
    out = nbformat.read(str(out_path), as_version=4)
    assert INJECTED_TAG in out.cells[2].metadata.tags
    assert _stdout(out.cells[3]) == "n is 3 int\n"
    assert _stdout(out.cells[4]) == "label is \"__import__('os')\"\n"
    assert _stdout(out.cells[5]) == "loaded: True\n", "kernel did not load --ext=workbench"
    assert _stdout(out.cells[6]) == f"cwd: {src}\n", "kernel should run in the notebook's folder"


def test_run_failing_cell_writes_output_and_exits_1(
    jupyter_env: dict[str, str], tmp_path: Path
) -> None:
    _write(_notebook("print('before')", "1 / 0", "print('never')"), tmp_path / "bad.ipynb")
    out_path = tmp_path / "results" / "bad-run.ipynb"
    out_path.parent.mkdir()
    result = workbench(
        "run", "bad.ipynb", "-o", str(out_path), "--timeout", "60", cwd=tmp_path, env=jupyter_env
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr[result.stderr.index("workbench run:") :]
    assert "bad.ipynb failed in cell 3 of 4" in message
    assert "first line '1 / 0'" in message
    assert "ZeroDivisionError: division by zero" in message
    assert str(out_path) in message
    out = nbformat.read(str(out_path), as_version=4)
    assert _stdout(out.cells[1]) == "before\n"
    assert out.cells[2].outputs[-1].ename == "ZeroDivisionError"
    assert out.cells[3].outputs == []


@pytest.mark.slow
def test_cell_timeout_is_reported_and_output_kept(
    jupyter_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("JUPYTER_PATH", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(key, jupyter_env[key])
    nb_path = _write(
        _notebook("print('started')", "import time; time.sleep(120)"), tmp_path / "slow.ipynb"
    )
    out_path = tmp_path / "slow.out.ipynb"
    with pytest.raises(
        NotebookExecutionError, match=r"cell 3 of 3(.|\n)*per-cell timeout of 3 s"
    ) as info:
        execute_notebook(nb_path, output=out_path, timeout=3)
    assert info.value.cell_index == 2
    assert _stdout(nbformat.read(str(out_path), as_version=4).cells[1]) == "started\n"


def test_ctrl_c_interrupts_the_cell_and_keeps_output(
    jupyter_env: dict[str, str], tmp_path: Path
) -> None:
    if os.name != "posix":
        pytest.skip("SIGINT delivery to a child process is POSIX-only")
    nb_path = _write(
        _notebook("open('started', 'w').close()\nimport time\ntime.sleep(120)"),
        tmp_path / "long.ipynb",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", str(nb_path)],
        cwd=tmp_path, env=jupyter_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + CLI_TIMEOUT
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the cell never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr
    assert "Traceback" not in stderr
    out = nbformat.read(str(tmp_path / "long.out.ipynb"), as_version=4)
    assert out.cells[1].outputs[-1].ename == "KeyboardInterrupt"


def test_profile_snippet_loads_the_extension(jupyter_env: dict[str, str], tmp_path: Path) -> None:
    from workbench.cli._shared import shared_dir

    env = dict(jupyter_env, IPYTHONDIR=str(tmp_path / "ipython"))
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    shutil.copy(shared_dir("extensions") / "ipython_kernel_config.py", profile)
    _write(_notebook("print(sorted(get_ipython().extension_manager.loaded))"), tmp_path / "e.ipynb")
    # python3 is ipykernel's own spec, which has no --ext: only the profile loads workbench
    result = workbench("run", "e.ipynb", "--kernel", "python3", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    out = nbformat.read(str(tmp_path / "e.out.ipynb"), as_version=4)
    assert "'workbench'" in _stdout(out.cells[1])


# -- user mistakes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "missing.ipynb"], "notebook 'missing.ipynb' not found"),
        (["run", "missing.ipynb", "-p", "2x=1"], "'2x' is not a valid Python identifier"),
        (["run", "missing.ipynb", "-p", "x"], "not of the form key=value"),
        (["run", "missing.ipynb", "--timeout", "-1"], "positive number of seconds"),
        (["templates", "copy", "no-such-template"], "no template named 'no-such-template'"),
        (["kernel", "install", "--user", "--prefix", "x"], "not allowed with argument"),
        (["kernel"], "install"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    result = workbench(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_run_help_states_the_default_cell_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main
    from workbench.cli.notebook import DEFAULT_CELL_TIMEOUT

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"(default: {DEFAULT_CELL_TIMEOUT})" in " ".join(capsys.readouterr().out.split())


# -- templates --------------------------------------------------------------------------------


def test_templates_list(tmp_path: Path) -> None:
    from workbench.cli._shared import shared_dir

    result = workbench("templates", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path in shared_dir("notebooks").glob("*.ipynb"):
        assert path.stem in result.stdout


@pytest.mark.slow
def test_templates_copy_refuses_to_overwrite(tmp_path: Path) -> None:
    from workbench.cli._shared import shared_dir

    templates = sorted(shared_dir("notebooks").glob("*.ipynb"))
    assert templates, "notebooks/ ships no templates"
    name = templates[0].stem
    first = workbench("templates", "copy", name, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    copied = nbformat.read(str(tmp_path / f"{name}.ipynb"), as_version=4)
    assert all(c.outputs == [] for c in copied.cells if c.cell_type == "code")
    again = workbench("templates", "copy", f"{name}.ipynb", ".", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists; pass --force" in again.stderr
    forced = workbench("templates", "copy", name, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr


# -- workbench lab ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _running_lab(
    env: dict[str, str], cwd: Path, log: Path, *args: str
) -> Iterator[Callable[[str], Any]]:
    """Start ``workbench lab ARGS`` in ``cwd`` (as root with --allow-root), wait (bounded)
    until its REST API answers, yield ``get(path)`` returning the JSON of ``/api/<path>``,
    and stop it."""
    port = _free_port()
    root = ["--allow-root"] if os.name == "posix" and os.geteuid() == 0 else []
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "lab", "--no-browser", "--port", str(port),
             "--IdentityProvider.token=wb-test", *args, *root],
            env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def get(path: str) -> Any:
        url = f"http://127.0.0.1:{port}/api/{path}?token=wb-test"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + CLI_TIMEOUT
        while True:
            assert proc.poll() is None, f"workbench lab exited early:\n{log.read_text()}"
            try:
                get("status")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"no answer from JupyterLab:\n{log.read_text()}"
                time.sleep(0.5)
        yield get
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_lab_serves_with_workbench_kernel(jupyter_env: dict[str, str], tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    _write(_notebook(), served / "marker.ipynb")
    with _running_lab(jupyter_env, tmp_path, tmp_path / "lab.log", "--dir", str(served)) as get:
        assert "workbench" in get("kernelspecs")["kernelspecs"]
        assert [item["name"] for item in get("contents")["content"]] == ["marker.ipynb"]


@pytest.mark.slow
def test_lab_opens_the_current_folder(jupyter_env: dict[str, str], tmp_path: Path) -> None:
    """Without --dir, JupyterLab serves the folder it was started in (not the package's
    templates), so new notebooks and sweep stores land in the user's working folder."""
    work = tmp_path / "work"
    work.mkdir()
    _write(_notebook(), work / "mine.ipynb")
    log = tmp_path / "lab.log"
    with _running_lab(jupyter_env, work, log) as get:
        names = [item["name"] for item in get("contents")["content"]]
        assert names == ["mine.ipynb"]
        assert f"JupyterLab on {work.resolve()}" in log.read_text()


@pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0), reason="only applies when run as root"
)
def test_lab_as_root_says_to_pass_allow_root(jupyter_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "lab", "--no-browser"],
        env=jupyter_env, cwd=tmp_path, capture_output=True, text=True, timeout=CLI_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--allow-root" in done.stderr and "passed on to JupyterLab" in done.stderr
