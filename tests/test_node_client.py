"""The Node client (examples/node/generate.js) prints exactly what `gru-edge sample` prints.

Both run the model file's own generator (gru-edge/2) with the same feeds, so their stdout must
agree byte for byte: greedy and sampled, with top-k and top-p, for short and long primes,
non-ASCII primes and stacked GRUs. Needs node and examples/node's npm packages (the js/ package
and onnxruntime-node: `bash .ci/install-js`); without them the tests are skipped, except under CI
(CI set), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import DEFAULT_VOCAB, OPSET, default_metadata, write_model
from tool_checks import INSTALL, require
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.exporter.generator_graph import add_generator

NODE_DIR = Path(__file__).resolve().parents[1] / "examples" / "node"
SCRIPT = NODE_DIR / "generate.js"
runner = CliRunner()


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable; skip (fail under CI) when it or onnxruntime-node is missing."""
    exe = shutil.which("node")
    problem = None
    if exe is None:
        problem = "node is not on PATH"
    elif not (NODE_DIR / "node_modules" / "onnxruntime-node" / "package.json").is_file():
        problem = "examples/node/node_modules lacks onnxruntime-node"
    require(problem, INSTALL, "the Node client's test")
    return exe


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("node_models")

    def nan_logits(w):
        w["dense_b"][3] = np.nan

    return {
        "small": write_model(folder / "small.onnx", units=16, seed=1),
        "big": write_model(folder / "gru128.onnx", units=128, seed=2),
        "stacked": write_model(folder / "stacked.onnx", _stacked_model(units=24, seed=5)),
        "v1": write_model(folder / "v1.onnx", units=16, seed=1, generator=False),
        "nan": write_model(folder / "nan.onnx", units=16, seed=1, edit_weights=nan_logits),
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("node_cwd")


def _node(node: str, workdir: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node, str(SCRIPT), *map(str, args)],
        cwd=workdir,
        capture_output=True,
        timeout=60,
    )


def _python(*args):
    return runner.invoke(app, ["sample", *map(str, args)])


def _same(node: str, workdir: Path, model: Path, *args) -> bytes:
    """Run both; assert both succeed with the same stdout bytes; return them."""
    py = _python(model, *args)
    assert py.exit_code == 0, (py.stdout, py.stderr)
    js = _node(node, workdir, model, *args)
    assert js.returncode == 0, js.stderr.decode()
    assert js.stderr == b"", js.stderr.decode()
    if js.stdout != py.stdout_bytes:
        a, b = js.stdout, py.stdout_bytes
        at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
        pytest.fail(
            f"stdout differs from byte {at}: node {a[max(0, at - 20) : at + 20]!r}, "
            f"gru-edge {b[max(0, at - 20) : at + 20]!r}"
        )
    return js.stdout


def _both_refuse(node: str, workdir: Path, model: Path, *args) -> str:
    """Both exit non-zero; Node with one 'Error: ' line on stderr and nothing on stdout."""
    py = _python(model, *args)
    assert py.exit_code != 0, py.stdout
    js = _node(node, workdir, model, *args)
    assert js.returncode != 0, js.stdout
    lines = js.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), js.stderr.decode()
    assert "Traceback" not in py.output
    return lines[0]


def _stacked_model(units: int, seed: int) -> onnx.ModelProto:
    """Two stacked GRUs in the contract's form (one state: layer 0's units, then layer 1's),
    with gru-edge/2's generator: the shape the exporter gives `train --layers 2`."""
    vocab, v = list(DEFAULT_VOCAB), len(DEFAULT_VOCAB)
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    arrays = {
        "W0": weights(1, 3 * units, v),
        "R0": weights(1, 3 * units, units),
        "B0": weights(1, 6 * units) * 0.1,
        "W1": weights(1, 3 * units, units),
        "R1": weights(1, 3 * units, units),
        "B1": weights(1, 6 * units) * 0.1,
        "dense_w": weights(units, v),
        "dense_b": weights(v) * 0.1,
        "depth": np.array([v], dtype=np.int64),
        "onehot_values": np.array([0.0, 1.0], dtype=np.float32),
        "axis0": np.array([0], dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
        "split": np.array([units, units], dtype=np.int64),
    }
    gru = {"hidden_size": units, "linear_before_reset": 1}
    nodes = [
        helper.make_node("OneHot", ["ids", "depth", "onehot_values"], ["onehot"], axis=-1),
        helper.make_node("Transpose", ["onehot"], ["x"], perm=[1, 0, 2]),
        helper.make_node("Split", ["state", "split"], ["s0", "s1"], axis=1),
        helper.make_node("Unsqueeze", ["s0", "axis0"], ["h0"]),
        helper.make_node("Unsqueeze", ["s1", "axis0"], ["h1"]),
        helper.make_node("GRU", ["x", "W0", "R0", "B0", "", "h0"], ["y0", "y0_h"], **gru),
        helper.make_node("Squeeze", ["y0", "axis1"], ["x1"]),
        helper.make_node("GRU", ["x1", "W1", "R1", "B1", "", "h1"], ["", "y1_h"], **gru),
        helper.make_node("Squeeze", ["y0_h", "axis0"], ["state0"]),
        helper.make_node("Squeeze", ["y1_h", "axis0"], ["state1"]),
        helper.make_node("Concat", ["state0", "state1"], ["state_out"], axis=1),
        helper.make_node("MatMul", ["state1", "dense_w"], ["dense"]),
        helper.make_node("Add", ["dense", "dense_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gru_edge_stacked_test",
        inputs=[
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", 2 * units]),
        ],
        outputs=[
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", v]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["batch", 2 * units]),
        ],
        initializer=[numpy_helper.from_array(a, name) for name, a in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
    add_generator(model, v, 2 * units)
    version = {p.key: p.value for p in model.metadata_props}
    meta = {**default_metadata(vocab, units, 40), "layers": "2"}
    helper.set_model_props(model, {**meta, "generator": version["generator"]})
    onnx.checker.check_model(model)
    return model


# --- the same text -----------------------------------------------------------------------------


def test_greedy(node, workdir, models):
    out = _same(node, workdir, models["small"], "--prime", "The ", "--length", 400, "-t", 0)
    assert out.startswith(b"The ") and out.endswith(b"\n")
    assert len(out.decode()) == len("The ") + 400 + 1


@pytest.mark.parametrize("temperature", ["0.5", "1.0", "1.2"])
@pytest.mark.parametrize("seed", ["0", "7", "123456789", str(2**63 - 1)])
def test_sampled(node, workdir, models, seed, temperature):
    args = ["--prime", "Once upon ", "--length", 300, "--seed", seed, "--temperature", temperature]
    _same(node, workdir, models["small"], *args)


@pytest.mark.parametrize(
    "filters",
    [
        ["--top-k", "5"],
        ["--top-k", "1"],
        ["--top-k", "500"],
        ["--top-p", "0.9"],
        ["--top-p", "0.3"],
        ["--top-p", "1"],
        ["--top-k", "10", "--top-p", "0.8"],
    ],
    ids=lambda f: " ".join(f),
)
@pytest.mark.parametrize("temperature", ["0.5", "1.2"])
def test_top_k_and_top_p(node, workdir, models, filters, temperature):
    args = ["--prime", "It was ", "-l", 300, "--seed", 11, "-t", temperature, *filters]
    _same(node, workdir, models["small"], *args)


def test_chunks_across_many_calls(node, workdir, models):
    """1000 characters: gru-edge's calls of 32, 64, ... and the Node client's agree anyway."""
    _same(node, workdir, models["small"], "--prime", "A", "-l", 1000, "--seed", 5, "-t", "0.9")


@pytest.mark.parametrize("temperature", ["0", "0.8"])
def test_gru128(node, workdir, models, temperature):
    args = ["--prime", "The rose ", "-l", 400, "--seed", 3, "-t", temperature, "--top-p", "0.95"]
    _same(node, workdir, models["big"], *args)


@pytest.mark.parametrize("temperature", ["0", "1.0"])
def test_stacked(node, workdir, models, temperature):
    args = ["--prime", "Two layers ", "-l", 300, "--seed", 9, "-t", temperature, "--top-k", "20"]
    _same(node, workdir, models["stacked"], *args)


def test_length_zero_prints_the_prime_only(node, workdir, models):
    assert _same(node, workdir, models["small"], "--prime", "Hi\r\nthere", "-l", 0) == (
        b"Hi\nthere\n"
    )
    assert _same(node, workdir, models["small"], "-l", 0, "--seed", 1) == b"\n"


def test_no_prime_starts_after_a_newline(node, workdir, models):
    out = _same(node, workdir, models["small"], "-l", 200, "--seed", 4, "-t", "0.7")
    assert len(out.decode()) == 201
    _same(node, workdir, models["small"], "--prime", "", "-l", 100, "--seed", 4)
    _same(node, workdir, models["small"], "--prime", "\ufeff", "-l", 100, "--seed", 4)


def test_non_ascii_prime(node, workdir, models):
    prime = "\ufeffCafe\u0301 🙂 — “quoted” ‘x’\r\n\tlast\rline é🙂"
    out = _same(node, workdir, models["small"], "--prime", prime, "-l", 300, "--seed", 8)
    assert out.startswith("Café 🙂 — “quoted” ‘x’\n\tlast\nline é🙂".encode())


@pytest.mark.parametrize("size", [2048, 2049, 5000])
def test_long_prime_goes_in_pieces(node, workdir, models, size):
    rng = np.random.default_rng(size)
    chars = [c for c in DEFAULT_VOCAB if c != "\r"]
    prime = "".join(rng.choice(chars, size))
    args = ["--prime", prime, "-l", 200, "--seed", 2, "-t", "0.8"]
    out = _same(node, workdir, models["small"], *args)
    assert out.decode().startswith(prime)


def test_drawn_seed_is_reported_and_repeats(node, workdir, models):
    js = _node(node, workdir, models["small"], "-l", 100, "--verbose")
    assert js.returncode == 0, js.stderr.decode()
    seed = js.stderr.decode().split("seed ")[1].split()[0]
    again = _same(node, workdir, models["small"], "-l", 100, "--seed", seed)
    assert again == js.stdout


# --- the same refusals -------------------------------------------------------------------------


def test_unknown_prime_character(node, workdir, models):
    line = _both_refuse(node, workdir, models["small"], "--prime", "tick ✓", "-l", 10)
    assert "'✓'" in line
    assert _node(node, workdir, models["small"], "--prime", "✓").returncode == 2


@pytest.mark.parametrize(
    "bad",
    [
        ["--length", "-1"],
        ["--length", "2.5"],
        ["--temperature", "-0.5"],
        ["--temperature", "nan"],
        ["--temperature", "inf"],
        ["--top-k", "0"],
        ["--top-p", "0"],
        ["--top-p", "1.5"],
        ["--seed", "-1"],
        ["--seed", str(2**63)],
    ],
    ids=lambda b: " ".join(b),
)
def test_bad_arguments(node, workdir, models, bad):
    _both_refuse(node, workdir, models["small"], *bad)
    assert _node(node, workdir, models["small"], *bad).returncode == 2


def test_a_gru_edge_1_file_is_refused(node, workdir, models):
    js = _node(node, workdir, models["v1"], "--prime", "The ", "-l", 20, "--seed", 1)
    assert js.returncode != 0 and js.stdout == b""
    lines = js.stderr.decode().splitlines()
    assert len(lines) == 1 and "gru-edge/1" in lines[0], lines
    assert "re-export it with gru-edge export" in lines[0]


def test_non_finite_logits_fail(node, workdir, models):
    js = _node(node, workdir, models["nan"], "-l", 20, "--seed", 1)
    assert js.returncode == 1
    lines = js.stderr.decode().splitlines()
    assert len(lines) == 1 and "not finite" in lines[0], lines
    assert _python(models["nan"], "-l", 20, "--seed", 1).exit_code != 0


def test_missing_model_and_help(node, workdir, models):
    js = _node(node, workdir, workdir / "nothing.onnx")
    assert js.returncode != 0 and len(js.stderr.decode().splitlines()) == 1
    assert _node(node, workdir).returncode == 2
    shown = _node(node, workdir, "--help")
    assert shown.returncode == 0 and b"--top-p" in shown.stdout


# --- nothing raw reaches the terminal ----------------------------------------------------------


def test_a_vocabulary_with_escape_sequences_is_refused_as_python_refuses_it(
    node, workdir, tmp_path
):
    vocab = [*DEFAULT_VOCAB[:5], "\x1b", *DEFAULT_VOCAB[6:]]
    model = write_model(tmp_path / "escape.onnx", units=16, seed=1, vocab=vocab)
    line = _both_refuse(node, workdir, model, "-l", 20, "--seed", 1)
    python = _python(model, "-l", 20, "--seed", 1)
    assert line + "\n" == python.stderr
    assert "vocabulary entry 5 is '\\x1b', a control character" in line
    assert b"\x1b" not in _node(node, workdir, model, "-l", "20").stderr


def test_control_characters_in_a_message_are_escaped(node, workdir):
    js = _node(node, workdir, "no\x1b]0;title\x07\nsuch.onnx")
    assert js.returncode == 1 and js.stdout == b""
    assert (
        js.stderr
        == b"Error: model file not found: no\\x1b]0;title\\x07\\x0asuch.onnx; check the path\n"
    )


def test_a_keras_file_or_run_directory_gets_the_export_command(node, workdir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.keras").write_bytes(b"PK\x03\x04" + bytes(40))
    for path in (run, run / "model.keras"):
        line = _both_refuse(node, workdir, path)
        assert line + "\n" == _python(path).stderr
        assert "gru-edge export" in line


def test_what_is_no_model_file_is_refused_as_python_refuses_it(node, workdir, tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo.onnx"
    os.mkfifo(fifo)  # reading it would block: both refuse it unread
    huge = tmp_path / "huge.onnx"
    with open(huge, "wb") as handle:
        handle.truncate(256 * 1024 * 1024 + 1)  # sparse: refused by its size, unread
    for path in (empty, fifo, huge, tmp_path, tmp_path / "missing.onnx"):
        line = _both_refuse(node, workdir, path)
        assert line + "\n" == _python(path).stderr
