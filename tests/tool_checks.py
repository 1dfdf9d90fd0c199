"""Tests of the non-Python clients need tools outside pip: they skip on a developer's machine
that lacks them, and fail under CI (CI=true), which must run them. So that a skip is never
silent, pytest's last lines name every test file that skipped for want of them, and the one
command that adds them (this module's pytest_unconfigure, imported by conftest.py)."""

from __future__ import annotations

import os
from collections import Counter

import pytest

INSTALL = "bash .ci/install-js"  # node, npm packages, Chromium: everything these tests need
_MISSING = "missing tools: "  # starts the reason of every skip made here


def require(problem: str | None, install: str, what: str) -> None:
    """Skip (or, under CI, fail) ``what`` when ``problem`` says a tool is missing."""
    if problem is None:
        return
    message = f"{problem}: install with {install}"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run {what}: {message}")
    pytest.skip(_MISSING + message)


def summary(skips: list[tuple[str, str]]) -> list[str]:
    """The closing lines for (test id, skip reason) pairs: the files whose tests skipped for
    want of a tool, how many and why, and the command that adds them; none if none skipped."""
    files: Counter[str] = Counter()
    why: dict[str, str] = {}
    for nodeid, reason in skips:
        if _MISSING not in reason:
            continue
        name = nodeid.split("::", 1)[0]
        files[name] += 1
        why.setdefault(name, reason.split(_MISSING, 1)[1].split(": install with", 1)[0])
    if not files:
        return []
    return [
        f"{sum(files.values())} Node.js/browser tests skipped for want of tools outside pip:",
        *(f"  {name}: {count} ({why[name]})" for name, count in sorted(files.items())),
        f"Add them with `{INSTALL}`, then run pytest again (`bash .ci/run` runs everything, "
        "as CI does).",
    ]


def pytest_unconfigure(config) -> None:  # type: ignore[no-untyped-def]
    """pytest's last hook: the summary's lines come after pytest's own closing line."""
    terminalreporter = config.pluginmanager.get_plugin("terminalreporter")
    if terminalreporter is None:
        return
    skips = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        skips.append((report.nodeid, reason))
    lines = summary(skips)
    if lines:
        terminalreporter.write_sep("=", "tests that need tools outside pip", yellow=True)
        for line in lines:
            terminalreporter.write_line(line)
