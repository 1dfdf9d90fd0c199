"""The non-Python clients' tests skip on a machine without their tools, and fail under CI."""

from __future__ import annotations

import pytest
from tool_checks import require


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
