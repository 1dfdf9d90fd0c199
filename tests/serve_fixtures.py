"""A running `gru-edge serve` for the service's tests: the app on uvicorn in a thread, on a free
port of 127.0.0.1 (gru_edge.serve.server.serving_in_thread), with small limits so the limits
can be hit."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from gru_edge.serve.requests import ServeLimits
from gru_edge.serve.server import ServeConfig

pytest.importorskip("starlette")
LIMITS = ServeLimits(max_body=4096, max_tokens=200_000, max_n=4, max_prime=100)


def config(*models: Path, **limits) -> ServeConfig:
    merged = {**LIMITS.__dict__, **limits}
    return ServeConfig(tuple(models), port=0, limits=ServeLimits(**merged), grace=1.0)


def wait_for(predicate, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def rows(base: str, model: str) -> int:
    return httpx.get(f"{base}/health").json()["models"][model]["rows"]
