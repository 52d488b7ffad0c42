"""The code base stays ruff clean (lint and format), type-checked (mypy), within its import
contracts and in files of at most 500 lines, as pyproject.toml configures it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    beside = Path(sys.executable).parent / "ruff"
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if not found:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    return [found]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
    done = subprocess.run(
        [*_ruff(), *args, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts():
    """pyproject's import-linter contracts: no circles, pool/comm/widgets stay below features."""
    beside = Path(sys.executable).parent / "lint-imports"
    if not beside.exists():
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    done = subprocess.run(
        [str(beside), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_types():
    """mypy on the package (pyproject's [tool.mypy]): clean."""
    beside = Path(sys.executable).parent / "mypy"
    if not beside.exists():
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    done = subprocess.run([str(beside)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


MAX_LINES = 500


def test_no_file_over_500_lines():
    """A module that grows past this is asking to be split along a seam (STYLE.md)."""
    files = [*ROOT.glob("workbench/**/*.py"), *ROOT.glob("tests/**/*.py"),
             *ROOT.glob("benchmarks/*.py")]  # fmt: skip
    long = {str(f.relative_to(ROOT)): n for f in files
            if (n := len(f.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_unexpected_skip_fails_ci(tmp_path):
    """The skip guard turns a skip with an unexpected reason into a failed run when CI is set,
    and leaves it a skip elsewhere."""
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\ndef test_a():\n    pytest.skip('torch is not installed')\n"
    )
    tests = str(Path(__file__).resolve().parent)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "skip_guard", "-p", "no:cacheprovider",
           str(tmp_path / "test_x.py")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = tests
    plain = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    ci = subprocess.run(cmd, cwd=tmp_path, env={**env, "CI": "true"}, capture_output=True,
                        text=True, timeout=120)  # fmt: skip
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert "skipped in CI for an unexpected reason" in ci.stdout
    assert "torch is not installed" in ci.stdout
