"""`gru-edge bench`: every row measured, ratios to the first row, start-up and memory figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.bench import format_report, run_bench
from gru_edge.cli import app

runner = CliRunner()


def test_bench_with_the_notebook_row(exported_model, trained_run):
    result = runner.invoke(
        app,
        ["bench", str(exported_model), "--run-dir", str(trained_run), "--repeats", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = [row["name"] for row in report["rows"]]
    seq_len = json.loads((trained_run / "config.json").read_text())["config"]["seq_len"]
    assert names[0] == f"notebook loop: Keras predict, {seq_len}-char window per char"
    assert any("batch 256" in name for name in names) and any("window" in name for name in names)
    first = report["rows"][0]["chars_per_s"]
    for row in report["rows"]:
        assert row["chars_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["chars_per_s"] / first)
    assert report["provider"] == "CPUExecutionProvider" and report["threads"] == 1
    assert 0 < report["first_char_s"] < 60
    assert 10 < report["sampler_peak_rss_mb"] < 2000
    assert report["notes"] == []
    # The peers, each against gru-edge's in-graph row of the same batch.
    rows = {row["name"]: row for row in report["rows"]}
    graph = {
        row["batch"]: row["chars_per_s"] for row in report["rows"] if "in-graph" in row["name"]
    }
    for peer in ("LiteRT (ai-edge-litert, unrolled twin)", "numpy float32 GRU loop"):
        for batch, name in ((1, f"{peer}, 1 stream"), (256, f"{peer}, batch 256, aggregate")):
            assert rows[name]["batch"] == batch
            assert rows[name]["vs_ingraph"] == pytest.approx(
                rows[name]["chars_per_s"] / graph[batch]
            )
    processes = {p["name"]: p for p in report["processes"]}
    assert list(processes)[:2] == ["`gru-edge sample`", "plain onnxruntime recipe (README)"]
    assert all(p["first_char_s"] > 0 and p["peak_rss_mb"] > 10 for p in processes.values())
    assert processes["`gru-edge sample`"]["peak_rss_mb"] == report["sampler_peak_rss_mb"]
    assert {(r["setting"], r["load"]) for r in report["defaults"]} >= {
        ("default", "idle"),
        ("default", "loaded"),
        ("1", "loaded"),
    }


def test_bench_without_a_run_dir_says_why_the_keras_row_is_missing(exported_model):
    report = run_bench(exported_model, repeats=1)
    assert not any(row.name.startswith("notebook") for row in report.rows)
    assert report.rows[0].ratio == 1.0
    text = format_report(report)
    assert "| ONNX window mode" in text and "Keras row skipped: pass --run-dir" in text
    assert "LiteRT and numpy rows skipped: pass --run-dir RUN_DIR" in text
    assert "| plain onnxruntime recipe (README) |" in text and "| default | loaded |" in text


def test_bench_bad_repeats(exported_model):
    result = runner.invoke(app, ["bench", str(exported_model), "--repeats", "0"])
    assert_one_line_error(result, "--repeats must be at least 1, got 0")


def test_bench_has_both_engines_and_compares_files_side_by_side(small_model, models_dir):
    from onnx_models import write_model

    old = write_model(models_dir / "bench_old.onnx", units=16, seed=1, generator=False)
    result = runner.invoke(app, ["bench", str(small_model), str(old), "--repeats", "1"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "| in-graph, 1 stream, end to end (sampling + decoding) |" in text
    assert "- in-graph against the host loop, 1 stream end to end: " in text
    assert "in-graph rows skipped: a gru-edge/1 file has no generator" in text
    side = text[text.index("side by side") :]
    assert "| | small.onnx | bench_old.onnx |" in side
    assert f"| file size, bytes | {small_model.stat().st_size:,} | {old.stat().st_size:,} |" in side
    assert "| host loop, batch 64, aggregate |" in side and "in-graph" not in side
    both = json.loads(
        runner.invoke(app, ["bench", str(small_model), str(old), "--repeats", "1", "--json"]).stdout
    )
    assert [Path(r["model"]).name for r in both] == ["small.onnx", "bench_old.onnx"]
