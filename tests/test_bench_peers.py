"""`gru-edge bench`'s peers and process figures: LiteRT and the numpy loop write what gru-edge
writes, whole processes are timed and sized on their own, a peer that cannot run says why."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gru_edge.bench_peers import (
    measure_process,
    peer_rates,
    peer_section,
    prepare_peers,
    run_process,
    worker_command,
)
from gru_edge.bench_threads import busy_cores, format_threads, measure_threads, settings
from gru_edge.runtime.generator import Generator


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_process_is_timed_to_its_first_byte():
    first, peak, code = run_process(
        _python("import sys, time; time.sleep(0.4); sys.stdout.write('a'); sys.stdout.flush()")
    )
    assert code == 0 and 0.4 <= first < 10


def test_peak_rss_is_the_process_own_not_the_parents():
    ballast = bytearray(300 << 20)  # this process is large; the child must not inherit that
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, small, _ = run_process(_python("print('a')"))
    _, large, _ = run_process(
        _python("x = bytearray(200 << 20); x[::4096] = b'y' * len(x[::4096]); print('a')")
    )
    assert small < 100 and large > 200


def test_a_failing_process_gets_a_note_not_figures():
    figures = measure_process("broken", _python("import sys; sys.exit(3)"), repeats=2)
    assert figures.first_char_s is None and figures.peak_rss_mb is None
    assert figures.note == "exited with status 3"


def test_without_a_run_dir_only_the_recipe_runs(small_model, tmp_path):
    vocab = list(Generator.load(small_model, device="cpu").vocab)
    rows, processes, notes = peer_section(
        small_model, None, vocab, tmp_path, threads=1, repeats=1, log=lambda _m: None
    )
    assert rows == [] and notes == ["LiteRT and numpy rows skipped: pass --run-dir RUN_DIR"]
    [recipe] = processes
    assert recipe.name.startswith("plain onnxruntime recipe") and recipe.first_char_s > 0
    assert 10 < recipe.peak_rss_mb < 500


@pytest.mark.train
def test_the_peers_write_the_same_text_as_gru_edge(trained_run, exported_model, tmp_path):
    generator = Generator.load(exported_model, device="cpu")
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(list(generator.vocab)), encoding="utf-8")
    files = prepare_peers(trained_run, vocab)
    ours = generator.generate(length=300, seed=1)
    for kind, model in (("numpy", files.npz), ("litert", files.tflite), ("onnx", exported_model)):
        command = worker_command(kind, model, vocab, 1, "first", 300)
        text = subprocess.run(command, capture_output=True, check=True).stdout.decode()
        assert text == ours, kind
    rates = peer_rates("litert", files.tflite, vocab, 1, 1, [1, 4])
    assert set(rates) == {1, 4} and min(rates.values()) > 0


@pytest.mark.train
def test_missing_litert_is_one_note_and_the_numpy_rows_still_run(
    trained_run, exported_model, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    vocab = list(Generator.load(exported_model, device="cpu").vocab)
    rows, processes, notes = peer_section(
        exported_model, trained_run, vocab, tmp_path, threads=1, repeats=1, log=lambda _m: None
    )
    assert notes == [
        "LiteRT rows skipped: ai-edge-litert is not installed; pip install 'gru-edge[bench]'"
    ]
    recipe = "in-graph, README recipe loop, interleaved with the peers"
    assert [(name, batch) for name, batch, _ in rows] == [
        (f"{recipe}, 1 stream", 1),
        (f"{recipe}, batch 64, aggregate", 64),
        (f"{recipe}, batch 256, aggregate", 256),
        ("numpy float32 GRU loop, 1 stream", 1),
        ("numpy float32 GRU loop, batch 64, aggregate", 64),
        ("numpy float32 GRU loop, batch 256, aggregate", 256),
        ("numpy: a step's float32 matrix products alone, 1 stream", 1),
        ("numpy: a step's float32 matrix products alone, batch 64, aggregate", 64),
        ("numpy: a step's float32 matrix products alone, batch 256, aggregate", 256),
    ]
    assert [p.name for p in processes][1:] == ["numpy float32 GRU loop"]
    rates = {name: rate for name, _, rate in rows}
    for batch in ("1 stream", "batch 64, aggregate", "batch 256, aggregate"):
        # the products alone are a part of the numpy loop's work: always the faster
        products = rates[f"numpy: a step's float32 matrix products alone, {batch}"]
        assert products > rates[f"numpy float32 GRU loop, {batch}"]


def test_thread_rows_cover_the_default_and_both_loads(small_model):
    rows = measure_threads(small_model, repeats=1)
    labels = [label for label, _ in settings()]
    assert labels[0] == "default" and "1" in labels
    assert [(r.setting, r.load) for r in rows] == [
        (label, load) for load in ("idle", "loaded") for label in labels
    ]
    for load in ("idle", "loaded"):
        mine = [r for r in rows if r.load == load]
        assert max(r.stream_vs_best for r in mine) == 1.0
        assert max(r.batch_vs_best for r in mine) == 1.0
    assert "| default | idle |" in "\n".join(format_threads(rows))


def test_busy_cores_are_stopped_afterwards():
    with busy_cores(2) as hogs:
        assert len(hogs) == 2 and all(hog.poll() is None for hog in hogs)
    assert all(hog.returncode is not None for hog in hogs)


@pytest.mark.train
def test_a_failing_litert_conversion_is_one_note(trained_run, tmp_path, monkeypatch):
    import gru_edge.bench_peers as peers

    def broken(_model):
        raise RuntimeError("op GRU not supported\nmore detail")

    monkeypatch.setattr(peers, "litert_twin", broken)
    vocab = tmp_path / "vocab.json"
    vocab.write_text("[]", encoding="utf-8")
    files = prepare_peers(trained_run, vocab)
    assert files.tflite is None and files.npz.exists()
    assert files.litert_note == (
        "LiteRT rows skipped: the TFLite converter failed: op GRU not supported"
    )
