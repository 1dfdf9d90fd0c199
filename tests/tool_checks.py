"""Tests of the non-Python clients need tools outside pip: they skip on a developer's machine
that lacks them, and fail under CI (CI=true), which must run them."""

from __future__ import annotations

import os

import pytest


def require(problem: str | None, install: str, what: str) -> None:
    """Skip (or, under CI, fail) ``what`` when ``problem`` says a tool is missing."""
    if problem is None:
        return
    message = f"{problem}: install with {install}"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run {what}: {message}")
    pytest.skip(message)
