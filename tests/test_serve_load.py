"""`gru-edge bench --serve`: the service's load test, run here with small sizes (the full run,
1/8/64 clients of 2,000 characters, is docs/benchmarks.md's "gru-edge serve" table)."""

from __future__ import annotations

import json

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app

pytest.importorskip("uvicorn")
runner = CliRunner()


def test_bench_serve_drives_clients_and_reports(small_model):
    args = ["bench", str(small_model), "--serve", "--clients", "1,4", "--chars", "300"]
    result = runner.invoke(app, [*args, "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [row["clients"] for row in report["rows"]] == [1, 4]
    for row in report["rows"]:
        assert row["errors"] == 0 and row["requests"] >= 1 and row["chars_per_s"] > 0
        assert 0 < row["first_char_p50_ms"] <= row["first_char_p99_ms"]
    assert report["server_peak_rss_mb"] > 10
    text = runner.invoke(app, [*args, "--clients", "2", "--seconds", "0.5"])
    assert "| 2 |" in text.stdout and "server peak RSS" in text.stdout


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--clients", "1,x"], "--clients takes numbers like 1,8,64"),
        (["--clients", "0"], "--clients takes whole numbers >= 1"),
        (["--chars", "0"], "--chars must be >= 1"),
    ],
)
def test_bench_serve_bad_options(small_model, extra, needle):
    result = runner.invoke(app, ["bench", str(small_model), "--serve", *extra])
    assert_one_line_error(result, needle)


def test_bench_serve_a_bad_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["bench", str(bad), "--serve", "--seconds", "0.5"])
    assert_one_line_error(result, "gru-edge serve did not start", "bad.onnx")
