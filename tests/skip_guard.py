"""In CI, a skipped test is a failure unless its reason is expected there.

Optional parts (torch, Slurm, Chromium) skip on a developer's machine with a reason that says
how to enable them; CI installs all of them, so a skip there means an install step is missing.
Set ``CI`` (any non-empty value) to turn the check on; it adds a summary and exit code 1.
"""

from __future__ import annotations

import os
import re

import pytest

#: Skip reasons that are fine in CI (patterns, searched in the reason).
EXPECTED_IN_CI: tuple[str, ...] = (r"POSIX-only", r"apptainer is not installed \(Debian 12")

_skipped: list[tuple[str, str]] = []


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        if not any(re.search(p, reason) for p in EXPECTED_IN_CI):
            _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if os.environ.get("CI") and _skipped:
        terminalreporter.section("tests skipped in CI for an unexpected reason")
        for nodeid, reason in _skipped:
            terminalreporter.write_line(f"{nodeid}: {reason}")
        terminalreporter.write_line(
            "CI installs every optional part: a skip here means .ci/run misses an install step "
            "(or add the reason to tests/skip_guard.py EXPECTED_IN_CI if it is really expected)."
        )
