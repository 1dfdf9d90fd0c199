"""`gru-edge sample` and `gru-edge info` through CliRunner, without TensorFlow, and installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from onnx_models import make_model, write_model
from typer.testing import CliRunner

import gru_edge
from gru_edge.cli import app

runner = CliRunner()


def _ok(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return result


def test_sample_prints_the_prime_then_the_text(small_model, gen):
    result = _ok("sample", small_model, "--prime", "The rose", "--length", "50", "--seed", "3")
    expected = gen.generate("The rose", 50, seed=3)
    assert result.stdout == "The rose" + expected + "\n"
    assert result.stderr == ""


def test_sample_without_a_prime_prints_only_generated_text(small_model, gen):
    result = _ok("sample", small_model, "-l", "30", "--seed", "4", "-t", "0.5")
    assert result.stdout == gen.generate(None, 30, seed=4, temperature=0.5) + "\n"


def test_diversity_is_an_alias_of_temperature(small_model):
    a = _ok("sample", small_model, "--seed", "1", "--length", "40", "--diversity", "0.2")
    b = _ok("sample", small_model, "--seed", "1", "--length", "40", "--temperature", "0.2")
    assert a.stdout == b.stdout


def test_sample_options_reach_the_generator(small_model, gen):
    args = ["--top-k", "5", "--top-p", "0.9", "--mode", "window", "--threads", "1"]
    result = _ok("sample", small_model, "--prime", "A", "-l", "30", "--seed", "2", *args)
    expected = gen.generate("A", 30, seed=2, top_k=5, top_p=0.9, mode="window")
    assert result.stdout == "A" + expected + "\n"


def test_verbose_reports_seed_and_provider_on_stderr(small_model):
    result = _ok("sample", small_model, "--length", "20", "--verbose")
    assert "seed " in result.stderr and "CPUExecutionProvider" in result.stderr
    seed = result.stderr.split("seed ")[1].split()[0]
    again = _ok("sample", small_model, "--length", "20", "--seed", seed)
    assert again.stdout == result.stdout


def test_prime_file_and_skipped_characters_warn_on_stderr(tmp_path, small_model, gen):
    prime = tmp_path / "prime.txt"
    prime.write_text("\ufeffThe€ rose\r\n", encoding="utf-8")
    result = _ok(
        "sample",
        small_model,
        "--prime-file",
        prime,
        "--unknown",
        "skip",
        "-l",
        "20",
        "--seed",
        "5",
    )
    assert result.stdout == "The rose\n" + gen.generate("The rose\n", 20, seed=5) + "\n"
    assert result.stderr.startswith("Warning: skipped prime characters") and "'€'" in result.stderr


def test_num_samples_prints_each_sample_under_a_header(small_model, gen):
    result = _ok("sample", small_model, "--prime", "O ", "-n", "3", "-l", "25", "--seed", "8")
    texts = gen.generate_batch(3, "O ", 25, seed=8)
    expected = "".join(f"----- sample {i}/3\nO {t}\n" for i, t in enumerate(texts, 1))
    assert result.stdout == expected


@pytest.mark.parametrize("n", [1, 4])
def test_json_output(small_model, gen, n):
    result = _ok(
        "sample", small_model, "--json", "-n", n, "-l", "15", "--seed", "9", "--prime", "I"
    )
    data = json.loads(result.stdout)
    assert data["seed"] == 9 and data["provider"] == "CPUExecutionProvider"
    assert data["prime"] == "I" and data["skipped"] == []
    assert data["settings"]["length"] == 15 and data["settings"]["num_samples"] == n
    if n == 1:
        assert data["texts"] == [gen.generate("I", 15, seed=9)]
    else:
        assert data["texts"] == gen.generate_batch(n, "I", 15, seed=9)


def test_output_writes_the_file_atomically(tmp_path, small_model):
    out = tmp_path / "sample.txt"
    printed = _ok("sample", small_model, "--prime", "We ", "-l", "40", "--seed", "1").stdout
    result = _ok("sample", small_model, "--prime", "We ", "-l", "40", "--seed", "1", "-o", out)
    assert result.stdout == "" and out.read_text(encoding="utf-8") == printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.txt"]  # no temp files left
    _ok("sample", small_model, "-l", "10", "--json", "--output", out)
    assert json.loads(out.read_text(encoding="utf-8"))["texts"][0]


def test_a_failed_sample_leaves_an_existing_output_untouched(tmp_path, small_model):
    out = tmp_path / "keep.txt"
    out.write_text("precious", encoding="utf-8")
    result = runner.invoke(app, ["sample", str(small_model), "--prime", "€", "-o", str(out)])
    assert_one_line_error(result, "'€'")
    assert out.read_text(encoding="utf-8") == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--length", "-1"], ["--length must be a whole number >= 0, got -1"]),
        (["--num-samples", "0"], ["--num-samples must be at least 1"]),
        (["--threads", "0"], ["--threads must be 1 to 256, got 0"]),
        (["--threads", "99999"], ["--threads must be 1 to 256, got 99999"]),
        (["-n", "2", "--length", "1000000000000"], ["2 samples x 1,000,000,000,000 characters"]),
        (["-n", "1000000"], ["--num-samples 1,000,000 is more than one batch", "at most"]),
        (["--temperature", "-1"], ["temperature must be a finite number >= 0"]),
        (["--temperature", "inf"], ["temperature must be a finite number >= 0"]),
        (["--temperature", "nan"], ["temperature must be a finite number >= 0"]),
        (["--temperature", "1e31"], ["at most 1e+30"]),
        (["--top-k", "0"], ["top-k must be at least 1"]),
        (["--top-k", "-2"], ["top-k must be at least 1, got -2"]),
        (["--top-p", "0"], ["top-p must be in (0, 1]"]),
        (["--top-p", "1.5"], ["top-p must be in (0, 1]"]),
        (["--seed", "-3"], ["seed must be a whole number >= 0"]),
        (["--seed", str(1 << 63)], ["below 2**63"]),
        (["--engine", "gpu"], ["--engine must be 'auto', 'graph' or 'host', got 'gpu'"]),
        (["--engine", "graph", "--mode", "window"], ["--mode window runs on the host loop"]),
        (["--mode", "loop"], ["mode must be 'stateful' or 'window'"]),
        (["--unknown", "drop"], ["unknown must be 'error' or 'skip'"]),
        (["--device", "tpu"], ["device must be one of auto, cpu, cuda"]),
        (["--prime", "x", "--prime-file", "p.txt"], ["--prime or --prime-file, not both"]),
        (["--prime-file", "missing.txt"], ["prime file not found: missing.txt"]),
        (["--prime", "日本"], ["'日', '本'", "--unknown skip"]),
        (["--output", "no/such/dir/out.txt"], ["folder that does not exist"]),
        (["--output", "."], ["is a directory"]),
    ],
)
def test_sample_errors_are_one_line(small_model, args, needles):
    assert_one_line_error(runner.invoke(app, ["sample", str(small_model), *args]), *needles)


def test_sample_refuses_bad_model_files(tmp_path, no_seq_len_model):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not onnx")
    cases = [
        ([str(tmp_path / "nope.onnx")], ["model file not found"]),
        ([str(bad)], ["is not an ONNX model"]),
        ([str(tmp_path)], ["is a directory"]),
        ([str(no_seq_len_model), "--mode", "window"], ["needs the model's seq_len"]),
    ]
    broken = write_model(tmp_path / "novocab.onnx", units=8, metadata={"vocabulary": None})
    cases.append(([str(broken)], ["has no 'vocabulary' metadata"]))
    for args, needles in cases:
        assert_one_line_error(runner.invoke(app, ["sample", *args]), *needles)
        if "--mode" not in args and args != [str(tmp_path)]:  # info DIR reads a run's facts
            assert_one_line_error(runner.invoke(app, ["info", *args]), *needles)
    info_dir = runner.invoke(app, ["info", str(tmp_path)])
    assert_one_line_error(info_dir, "is not a gru-edge run directory", "(or a .onnx file)")


def test_cuda_without_the_gpu_build_is_a_one_line_error(small_model):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime offers CUDA")
    result = runner.invoke(app, ["sample", str(small_model), "--device", "cuda"])
    assert_one_line_error(result, "pip install 'gru-edge[gpu]'")


def test_info_shows_metadata_vocabulary_signature_and_providers(small_model):
    out = _ok("info", small_model).stdout
    lines = out.splitlines()
    keys = [line.split()[0] for line in lines]
    order = [keys.index(k) for k in ("format", "units", "seq_len", "created")]
    assert order == sorted(order)
    for needle in (
        "ids int64 [batch, time]",
        "state float32 [batch, 16]",
        "logits float32 [batch, 70]",
        "state_out float32 [batch, 16]",
        "opset 18",
        "CPUExecutionProvider",
        "70 characters",
        f"({small_model.stat().st_size:,} bytes)",
    ):
        assert needle in out, needle
    # Control characters escaped, everything else as itself, a space visible in quotes.
    assert "'\\n'" in out and "'\\t'" in out and "' '" in out and "'🙂'" in out and "'é'" in out
    assert "\t" not in out


def test_info_escapes_control_characters_from_the_file(tmp_path):
    model = make_model(units=8, metadata={"note": "red\x1b[31m\nnext\x9b2J"})
    model.producer_name = "tool\x1b]0;title\x07"
    out = _ok("info", write_model(tmp_path / "ansi.onnx", model)).stdout
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert "red\\x1b[31m\\nnext\\x9b2J" in out and "made by tool\\x1b]0;title\\x07" in out


def test_info_json(small_model):
    data = json.loads(_ok("info", small_model, "--json").stdout)
    assert data["metadata"]["units"] == "16" and "vocabulary" not in data["metadata"]
    assert len(data["vocabulary"]) == 70 and "\n" in data["vocabulary"]
    assert data["inputs"][0] == {"name": "ids", "dtype": "int64", "shape": ["batch", "time"]}
    assert data["opset"] == 18 and data["file_size"] == small_model.stat().st_size
    assert data["providers"]["session"] == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in data["providers"]["available"]


# --- subprocesses: no TensorFlow, and the installed console script ----------------------------

_BLOCK_TF = """
import importlib.abc, sys
BLOCKED = {"tensorflow", "keras", "tf_keras", "tf2onnx", "onnx"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the runtime must not import it")
sys.meta_path.insert(0, Block())
from gru_edge.cli import app
sys.argv[0] = "gru-edge"
app()
"""


def _run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    # From a folder of its own: the repository's runtime/, trainer/ and exporter/ must never
    # stand in for the installed gru_edge package.
    return subprocess.run(
        args, capture_output=True, text=True, encoding="utf-8", timeout=timeout, cwd=cwd
    )


@pytest.mark.parametrize(
    "args, expect",
    [
        (["sample", "{model}", "--prime", "The ", "--length", "40", "--seed", "1"], "The "),
        (["sample", "{model}", "-n", "2", "--length", "20", "--json"], '"texts"'),
        (["info", "{model}"], "ids int64 [batch, time]"),
    ],
)
def test_sample_and_info_run_where_tensorflow_and_onnx_cannot_be_imported(
    tmp_path, small_model, args, expect
):
    args = [a.replace("{model}", str(small_model)) for a in args]
    proc = _run([sys.executable, "-c", _BLOCK_TF, *args], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout and "Traceback" not in proc.stderr


def test_the_blocker_really_blocks(tmp_path):
    blocked = _BLOCK_TF.replace("from gru_edge.cli", "import onnx #")
    proc = _run([sys.executable, "-c", blocked], tmp_path)
    assert proc.returncode != 0 and "onnx is blocked" in proc.stderr


def test_the_installed_console_script(tmp_path, small_model):
    script = Path(sys.executable).with_name("gru-edge")
    assert script.exists(), "install the package (pip install -e '.[dev]') to get the script"
    args = [str(script), "sample", str(small_model), "--length", "25", "--seed", "2"]
    proc = _run(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == 26 and proc.stdout.endswith("\n")
    proc = _run([str(script), "info", str(small_model)], tmp_path)
    assert proc.returncode == 0 and "gru-edge/2" in proc.stdout
    proc = _run([str(script), "--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"gru-edge {gru_edge.__version__}\n"
    proc = _run([str(script), "sample", str(small_model), "--length", "-1"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: --length")
    # onnxruntime's own log lines never reach the terminal.
    proc = _run([str(script), "sample", str(small_model), "--prime", "ab", "-l", "0"], tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ab\n", "")


@pytest.mark.parametrize("engine", ["graph", "host"])
def test_sample_reports_the_engine_and_both_write_the_same(small_model, engine):
    args = ["sample", str(small_model), "--prime", "The ", "-l", "300", "--seed", "5", "-t", "0.7"]
    result = runner.invoke(app, [*args, "--engine", engine, "--verbose"])
    assert result.exit_code == 0, result.output
    assert f"{engine} engine; seed 5" in result.stderr
    other = "host" if engine == "graph" else "graph"
    assert result.stdout == runner.invoke(app, [*args, "--engine", other]).stdout
    document = json.loads(runner.invoke(app, [*args, "--engine", engine, "--json"]).stdout)
    assert document["engine"] == engine and document["settings"]["engine"] == engine
