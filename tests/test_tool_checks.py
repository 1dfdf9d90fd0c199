"""The non-Python clients' tests skip on a machine without their tools, and fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tool_checks import INSTALL, require, summary


def test_nothing_missing_runs_the_test(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require(None, "apt-get install -y chromium", "the browser test") is None


def test_a_missing_tool_skips_here_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="node is not on PATH: install with X"):
        require("node is not on PATH", "X", "the Node client's test")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Node client's test"):
        require("node is not on PATH", "X", "the Node client's test")


def test_the_summary_names_each_file_why_and_the_command():
    skipped = "missing tools: node is not on PATH: install with bash .ci/install-js"
    lines = summary(
        [
            ("tests/test_node_client.py::test_greedy", skipped),
            ("tests/test_node_client.py::test_sampled[0]", skipped),
            ("tests/test_web_browser.py::test_x", skipped.replace("node is", "chromium is")),
            ("tests/test_other.py::test_y", "needs a GPU"),  # another skip: not listed
        ]
    )
    assert lines == [
        "3 Node.js/browser tests skipped for want of tools outside pip:",
        "  tests/test_node_client.py: 2 (node is not on PATH)",
        "  tests/test_web_browser.py: 1 (chromium is not on PATH)",
        "Add them with `bash .ci/install-js`, then run pytest again (`bash .ci/run` runs "
        "everything, as CI does).",
    ]
    assert summary([("tests/test_other.py::test_y", "needs a GPU")]) == []


def test_pytest_ends_with_the_summary(tmp_path):
    """A run where a test skips for want of a tool ends with the summary's lines."""
    (tmp_path / "test_needs_node.py").write_text(
        "from tool_checks import require\n\n"
        "def test_a():\n    require('node is not on PATH', 'X', 'the test')\n\n"
        "def test_b():\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tool_checks", "-q", "-p", "no:cacheprovider"]
        + ["test_needs_node.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tail = done.stdout.rstrip().splitlines()[-6:]
    assert "  test_needs_node.py: 1 (node is not on PATH)" in tail, done.stdout
    assert any(line.startswith(f"Add them with `{INSTALL}`") for line in tail), done.stdout
