"""`gru-edge sample`'s output in every mode: --length 0, streamed --output and --json, held
batches within a budget, destinations that are not regular files, broken models and pipes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_one_line_error
from onnx_models import DEFAULT_VOCAB, write_model
from typer.testing import CliRunner

import gru_edge.runtime.results
from gru_edge.cli import app
from gru_edge.runtime import generator as generator_module

runner = CliRunner()


def _sample(model, *args):
    return runner.invoke(app, ["sample", str(model), *[str(a) for a in args]])


def _ok(model, *args):
    result = _sample(model, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


# --- --length 0 ----------------------------------------------------------------------------------


def test_length_zero_prints_the_prime_and_nothing_else(small_model):
    assert _ok(small_model, "--prime", "The rose", "--length", "0").stdout == "The rose\n"
    assert _ok(small_model, "-l", "0").stdout == "\n"
    two = _ok(small_model, "--prime", "O", "-l", "0", "-n", "2").stdout
    assert two == "----- sample 1/2\nO\n----- sample 2/2\nO\n"
    data = json.loads(_ok(small_model, "--prime", "O", "-l", "0", "--json").stdout)
    assert data["texts"] == [""] and data["prime"] == "O"


# --- JSON, streamed ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3])
def test_streamed_json_is_exactly_what_json_dumps_writes(small_model, gen, n):
    out = _ok(small_model, "--json", "-n", n, "-l", "40", "--seed", "4", "--prime", "“Ah").stdout
    data = json.loads(out)
    assert out == json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    expected = (
        gen.generate_batch(n, "“Ah", 40, seed=4) if n > 1 else [gen.generate("“Ah", 40, seed=4)]
    )
    assert data["texts"] == expected


def test_json_escapes_every_character_the_vocabulary_has(tmp_path):
    vocab = ['"', "\\", "\n", "\t", "\u2028", "🙂"]
    path = write_model(tmp_path / "quotes.onnx", units=8, vocab=vocab, seed=3, scale=0.01)
    for n in (1, 2):
        out = _ok(path, "--json", "-n", n, "-l", "300", "--seed", "1").stdout
        texts = json.loads(out)["texts"]
        assert all(len(t) == 300 and set(t) == set(vocab) for t in texts)


# --- held batches, decoded in pieces, within the budget ------------------------------------------


def test_batches_are_written_in_pieces(small_model, gen, monkeypatch):
    monkeypatch.setattr(gru_edge.runtime.results, "DECODE_CHUNK", 7)
    out = _ok(small_model, "-n", "3", "-l", "50", "--seed", "2", "--prime", "A ").stdout
    texts = gen.generate_batch(3, "A ", 50, seed=2)
    assert out == "".join(f"----- sample {i}/3\nA {t}\n" for i, t in enumerate(texts, 1))
    data = json.loads(_ok(small_model, "-n", "3", "-l", "50", "--seed", "2", "--json").stdout)
    assert data["texts"] == gen.generate_batch(3, None, 50, seed=2)


def test_only_held_batches_meet_the_budget(tmp_path, small_model, monkeypatch):
    monkeypatch.setattr(generator_module, "MAX_HELD_CHARS", 100)
    _ok(small_model, "-n", "2", "-l", "50")
    result = _sample(small_model, "-n", "2", "-l", "51")
    assert_one_line_error(result, "2 samples x 51 characters is more than the 100", "-n 1")
    # One sample streams, in every mode, past the budget.
    assert len(_ok(small_model, "-l", "500").stdout) == 501
    assert len(json.loads(_ok(small_model, "-l", "500", "--json").stdout)["texts"][0]) == 500
    _ok(small_model, "-l", "500", "-o", tmp_path / "long.txt")
    assert len((tmp_path / "long.txt").read_text(encoding="utf-8")) == 501


def test_output_streams_into_the_temporary_file(tmp_path, small_model, monkeypatch):
    from gru_edge.runtime.generator import Generator
    from gru_edge.runtime.results import Generation

    sizes = []
    real = Generator.start

    def pieces(run):
        done = 0
        for piece in run.pieces:
            if done // 10_000 != (done + len(piece)) // 10_000 or done == 0:
                sizes.append(sum(p.stat().st_size for p in tmp_path.glob(".out.txt.*")))
            done += len(piece)
            yield piece

    def watched(self, *args, **kwargs):
        run = real(self, *args, **kwargs)
        return Generation(run.info, pieces(run))

    monkeypatch.setattr(Generator, "start", watched)
    _ok(small_model, "-l", "50000", "-o", tmp_path / "out.txt")
    assert sizes[0] == 0 and sizes[-1] > 30_000  # on disk while generating, not at the end
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8")) == 50_001
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


# --- where --output points -----------------------------------------------------------------------


def test_a_symlinked_output_is_written_through(tmp_path, small_model):
    target = tmp_path / "runs" / "v3.txt"
    target.parent.mkdir()
    target.write_text("old", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "current.txt"
    link.symlink_to(target)
    expected = _ok(small_model, "-l", "30", "--seed", "1").stdout
    _ok(small_model, "-l", "30", "--seed", "1", "-o", link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == expected
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's permissions
    assert sorted(p.name for p in target.parent.iterdir()) == ["v3.txt"]


def test_a_dangling_symlink_creates_its_target(tmp_path, small_model):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "new.txt")
    _ok(small_model, "-l", "10", "-o", link)
    assert link.is_symlink() and len((tmp_path / "new.txt").read_text(encoding="utf-8")) == 11


def _fifo(folder: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(folder / "pipe")
    return folder / "pipe"


def _link_to_fifo(folder: Path) -> Path:
    link = folder / "to-pipe"
    link.symlink_to(_fifo(folder))
    return link


def _link_to_missing_folder(folder: Path) -> Path:
    link = folder / "nowhere"
    link.symlink_to(folder / "no" / "such" / "file.txt")
    return link


def _socket(folder: Path) -> Path:
    import socket

    path = folder / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


# Never a real device here: code that failed to refuse it would replace it with a file (for
# root, /dev/null). check_output names a device like the kinds below (see test_files.py).
@pytest.mark.parametrize(
    "make, needles",
    [
        (_fifo, ["is a FIFO (named pipe)", "regular file"]),
        (_link_to_fifo, ["(a symlink to", "is a FIFO (named pipe)"]),
        (_socket, ["is a socket"]),
        (lambda d: d, ["is a directory"]),
        (_link_to_missing_folder, ["(a symlink to", "folder that does not exist"]),
    ],
    ids=["fifo", "symlink to fifo", "socket", "directory", "symlink to a missing folder"],
)
def test_outputs_that_are_not_regular_files_are_refused(tmp_path, small_model, make, needles):
    destination = make(tmp_path)
    before = {p.name: p.lstat().st_mode for p in tmp_path.iterdir()}
    assert_one_line_error(_sample(small_model, "-l", "5", "-o", destination), *needles)
    assert {p.name: p.lstat().st_mode for p in tmp_path.iterdir()} == before  # nothing replaced


# --- models whose logits are not finite, and vocabularies that are not text ---------------------


def _bias(value: float):
    return lambda weights: weights["dense_b"].fill(value)


@pytest.mark.parametrize("value, what", [(np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "only -inf")])
@pytest.mark.parametrize(
    "args", [[], ["-t", "0"], ["-n", "2"], ["--json"], ["-n", "2", "--json", "-t", "0"], ["-o"]]
)
def test_non_finite_logits_are_one_line_errors(tmp_path, value, what, args):
    path = write_model(tmp_path / "broken.onnx", units=8, edit_weights=_bias(value))
    if args == ["-o"]:
        keep = tmp_path / "keep.txt"
        keep.write_text("precious", encoding="utf-8")
        args = ["-o", keep]
    result = _sample(path, "-l", "20", *args)
    assert_one_line_error(result, f"computed {what} logits at generated character 1")
    if "-o" in args:
        assert keep.read_text(encoding="utf-8") == "precious"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx", "keep.txt"]


@pytest.mark.parametrize(
    "args", [[], ["--json"], ["-n", "2"], ["-o", "out.txt"], ["--json", "-n", "2"]]
)
def test_a_surrogate_in_the_vocabulary_is_a_one_line_error(tmp_path, args, monkeypatch):
    vocab = json.dumps(["\ud800", *DEFAULT_VOCAB[1:]], ensure_ascii=True)
    path = write_model(tmp_path / "surrogate.onnx", units=8, metadata={"vocabulary": vocab})
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(_sample(path, *args), "entry 0 is '\\ud800', a lone surrogate")
    assert not (tmp_path / "out.txt").exists()
    info = runner.invoke(app, ["info", str(path)])
    assert_one_line_error(info, "a lone surrogate")


# --- a reader that leaves ----------------------------------------------------------------------

_READ_THEN_CLOSE = """
import subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
got = proc.stdout.read(100).decode("utf-8", errors="ignore")
proc.stdout.close()
err = proc.stderr.read().decode()
sys.stdout.write(f"{proc.wait()}\\n{len(got)}\\n{err}")
"""


def test_verbose_over_a_closed_pipe_reports_what_was_written(tmp_path, small_model):
    script = Path(sys.executable).with_name("gru-edge")
    command = [str(script), "sample", str(small_model), "-l", "2000000", "-v", "--seed", "1"]
    done = subprocess.run(
        [sys.executable, "-c", _READ_THEN_CLOSE, *command],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    code, read, *err = done.stdout.splitlines()
    assert code == "0" and "Traceback" not in done.stdout, done.stdout
    (report,) = [line for line in err if "characters written" in line]
    written = int(report.split()[0].replace(",", ""))
    # At least what the reader read, at most what the pipe's buffer took after that: not the
    # 2,000,000 characters asked for.
    assert int(read) <= written < 1_000_000, (read, report)
    assert "stopped early: the reader closed the pipe" in report


# --- a signal mid --output -------------------------------------------------------------------


@pytest.mark.parametrize(
    "signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_signal_mid_output_removes_the_temporary_file(tmp_path, small_model, signum, code):
    script = Path(sys.executable).with_name("gru-edge")
    out = tmp_path / "out.txt"
    command = [str(script), "sample", str(small_model), "-l", "100000000", "-o", str(out)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        # wait until the temporary file has text in it: generation is under way
        while not any(p.stat().st_size for p in tmp_path.glob(".out.txt.*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signum)
        stderr = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], stderr  # nothing left, no out.txt
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
