"""`gru-edge serve` as a process: a bad start is a one-line error before anything listens; a
stop signal ends open streams cleanly (an error event, then [DONE]) and exits 0."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cli_checks import assert_one_line_error
from onnx_models import write_model
from typer.testing import CliRunner

from gru_edge.cli import app

pytest.importorskip("uvicorn")
runner = CliRunner()
GRU_EDGE = str(Path(sys.executable).with_name("gru-edge"))  # the installed command


def test_a_bad_model_file_is_a_one_line_error_at_start(tmp_path, small_model):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    result = runner.invoke(app, ["serve", str(small_model), str(broken), "--port", "0"])
    assert_one_line_error(result, "broken.onnx")
    missing = runner.invoke(app, ["serve", str(tmp_path / "none.onnx")])
    assert_one_line_error(missing, "none.onnx")


def test_two_files_of_one_name_and_a_taken_port(tmp_path, small_model):
    twin = tmp_path / "twin"
    twin.mkdir()
    copy = write_model(twin / "small.onnx", units=16, seq_len=40, seed=1)
    result = runner.invoke(app, ["serve", str(small_model), str(copy)])
    assert_one_line_error(result, "two model files are named 'small'", "rename one")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", str(small_model), "--port", str(port)])
        assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--max-tokens", "0"], "--max-tokens must be a whole number >= 1"),
        (["--max-queue", "-1"], "--max-queue must be a whole number >= 1"),
        (["--api-key", " "], "--api-key must not be empty"),
        (["--grace", "-1"], "--grace must be a number of seconds >= 0"),
        (["--port", "70000"], "--port must be from 0 to 65535"),
    ],
)
def test_bad_options_are_one_line_errors(small_model, args, needle):
    assert_one_line_error(runner.invoke(app, ["serve", str(small_model), *args]), needle)


def test_without_the_extra_it_names_the_install(small_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    result = runner.invoke(app, ["serve", str(small_model)])
    assert_one_line_error(result, "pip install 'gru-edge[serve]'")


def _start(model, *args: str) -> tuple[subprocess.Popen, str, list[str]]:
    process = subprocess.Popen(
        [GRU_EDGE, "serve", str(model), "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    while True:
        line = process.stderr.readline()
        assert line, f"the server ended: {lines}"
        lines.append(line.rstrip("\n"))
        found = re.search(r"at (http://\S+)/v1 ", line)
        if found:
            return process, found.group(1).replace("0.0.0.0", "127.0.0.1"), lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_open_streams_cleanly_and_exits_0(small_model, sig):
    process, base, lines = _start(small_model, "--grace", "0.5", "--max-tokens", "10000000")
    try:
        assert not any(line.startswith("Warning") for line in lines)
        body = {"model": "small", "max_tokens": 10_000_000, "stream": True}
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=30) as response:
            events = response.iter_lines()
            assert next(events).startswith("data: {")
            process.send_signal(sig)
            started = time.monotonic()
            rest = [line for line in events if line]
        assert rest[-1] == "data: [DONE]"
        error = json.loads(rest[-2].removeprefix("data: "))["error"]
        assert error["message"] == "the server is shutting down"
        assert process.wait(timeout=20) == 0 and time.monotonic() - started < 10
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_a_non_loopback_host_is_announced(small_model):
    process, base, lines = _start(small_model, "--host", "0.0.0.0")
    try:
        assert any(
            line.startswith("Warning: serving on 0.0.0.0") and "--api-key" in line for line in lines
        )
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
