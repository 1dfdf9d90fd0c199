"""docs/model-file.md is a specification a client is written from: its vectors, its committed
tiny model and its plain-onnxruntime recipe, checked against both of gru-edge's engines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import write_model
from test_randomness import scalar_gumbel, scalar_index
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.randomness import gumbel, table_indices
from gru_edge.runtime.sampler import SamplingSettings, sample_ids

DOCS = Path(__file__).resolve().parents[1] / "docs"
SPEC = (DOCS / "model-file.md").read_text(encoding="utf-8")


def _numbers(cell: str, kind=int) -> list:
    return [kind(x) for x in cell.split(",")]


def test_the_later_character_vectors_match_the_code_and_the_scalar_definition():
    rows = re.findall(
        r"^\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+)-(\d+) \| ([\d, ]+) \| ([-\d., ]+) \|$",
        SPEC,
        re.M,
    )
    assert len(rows) == 4, "the later-character vector table is missing"
    for seed, vocab, row, n, first, last, ms, gs in rows:
        seed, vocab, row, n, first, last = map(int, (seed, vocab, row, n, first, last))
        entries = range(first, last + 1)
        expected_m, expected_g = _numbers(ms), [g.strip() for g in gs.split(",")]
        got = table_indices(seed, row + 1, n, 1, vocab)[0, row]
        noise = gumbel(seed, row + 1, n, 1, vocab)[0, row]
        assert [int(got[j]) for j in entries] == expected_m
        assert [f"{noise[j]:.6f}" for j in entries] == expected_g
        scalar = [scalar_index(seed, row, n, j, vocab) for j in entries]
        assert scalar == expected_m
        assert [f"{scalar_gumbel(m):.6f}" for m in scalar] == expected_g


def _near_tie() -> tuple[np.ndarray, float, set[int]]:
    match = re.search(r"logits `\[([-\d., ]+)\]`.*?T = (\d+), p = (\d+\.\d+)", SPEC, re.S)
    assert match, "the top-p near-tie vector is missing"
    logits = np.array(_numbers(match[1], float), np.float32)
    kept = re.search(r"keeps\s+\*\*ids (\d+) and (\d+)\*\* only", SPEC)
    return logits, float(match[3]), {int(kept[1]), int(kept[2])}


def test_the_top_p_near_tie_on_the_host_rule():
    logits, p, kept = _near_tie()
    settings = SamplingSettings(1.0, None, p)
    picks = {
        int(sample_ids(logits[None], settings, gumbel(seed, 1, 0, 1, 5)[0])[0])
        for seed in range(400)
    }
    assert picks == kept
    looser = {
        int(
            sample_ids(
                logits[None], SamplingSettings(1.0, None, 0.7000001), gumbel(s, 1, 0, 1, 5)[0]
            )[0]
        )
        for s in range(400)
    }
    assert looser > kept  # just above the tie, the third weight (and its tie) comes in


def test_the_top_p_near_tie_in_the_graph(tmp_path):
    logits, p, kept = _near_tie()

    def constant_logits(w):  # the Dense layer ignores the state: logits = its bias
        w["dense_w"][:] = 0
        w["dense_b"][:] = logits

    path = write_model(
        tmp_path / "tie.onnx", units=4, vocab=list("abcde"), seed=0, edit_weights=constant_logits
    )
    gen = Generator.load(path, device="cpu", threads=1)
    for engine in ("graph", "host"):
        text = gen.generate("a", 400, seed=3, top_p=p, engine=engine)
        assert {"abcde".index(c) for c in text} == kept, engine


def _text_vectors() -> list[tuple[int, dict, str]]:
    rows = re.findall(r'^\| (\d+) \| (\{.*?\}) \| (".*") \|$', SPEC, re.M)
    assert len(rows) == 4, "the end-to-end vector table is missing"
    return [(int(s), json.loads(settings), json.loads(text)) for s, settings, text in rows]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The page's tiny model, built by the page's own script (numpy and onnx only), and the
    gru-edge/2 file gru-edge's exporter makes of it (its generator beside the step)."""
    import onnx

    from gru_edge.exporter.generator_graph import add_generator

    folder = tmp_path_factory.mktemp("tiny")
    script = SPEC.split("**End to end**", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    (folder / "make_tiny.py").write_text(script, encoding="utf-8")
    subprocess.run([sys.executable, "make_tiny.py"], cwd=folder, check=True, timeout=120)
    step = folder / "tiny-model.onnx"
    model = onnx.load(step)
    add_generator(model, 10, 8)
    next(p for p in model.metadata_props if p.key == "format").value = "gru-edge/2"
    generating = folder / "tiny-generator.onnx"
    onnx.save(model, generating)
    return step, generating


def test_the_tiny_model_writes_the_documented_texts_with_both_engines(tiny):
    step, generating = tiny
    stepped = Generator.load(step, device="cpu", threads=1)
    assert stepped.units == 8 and list(stepped.vocab) == list("\n .aeinost")
    assert not stepped.model.has_generator
    gen = Generator.load(generating, device="cpu", threads=1)
    for seed, settings, text in _text_vectors():
        assert stepped.generate("one ", 40, seed=seed, **settings) == text
        for engine in ("graph", "host"):
            assert gen.generate("one ", 40, seed=seed, engine=engine, **settings) == text


def test_the_tiny_models_generator_needs_only_onnxruntime(tiny):
    """As a client written from the page would run it: one call of 40 steps."""
    session = ort.InferenceSession(str(tiny[1]), providers=["CPUExecutionProvider"])
    vocab = json.loads(session.get_modelmeta().custom_metadata_map["vocabulary"])
    for seed, settings, text in _text_vectors():
        feeds = {
            "ids": np.array([[vocab.index(c) for c in "one "]], np.int64),
            "state": np.zeros((1, 8), np.float32),
            "steps": np.array(40, np.int64),
            "seed": np.array(seed, np.int64),
            "temperature": np.array(settings.get("temperature", 1.0), np.float32),
            "top_k": np.array(settings.get("top_k", 0), np.int64),
            "top_p": np.array(settings.get("top_p", 1.0), np.float32),
        }
        (generated,) = session.run(["generated"], feeds)
        assert "".join(vocab[i] for i in generated[0]) == text


def test_the_per_row_vector_writes_the_table_row_by_row(tiny):
    """The page's per-row vector: the table's settings, one per row, in one call, and the
    same call continued from character 10 with ``row_offset``."""
    assert "**Per row**: one call of 40 steps on four rows" in SPEC
    session = ort.InferenceSession(str(tiny[1]), providers=["CPUExecutionProvider"])
    vocab = json.loads(session.get_modelmeta().custom_metadata_map["vocabulary"])
    vectors = _text_vectors()
    assert [seed for seed, _, _ in vectors] == [1, 2, 3, 4]
    rows = {
        "row_seed": np.array([seed for seed, _, _ in vectors], np.int64),
        "row_temperature": np.array([s.get("temperature", 1.0) for _, s, _ in vectors], np.float32),
        "row_top_k": np.array([s.get("top_k", 0) for _, s, _ in vectors], np.int64),
        "row_top_p": np.array([s.get("top_p", 1.0) for _, s, _ in vectors], np.float32),
        "row_offset": np.zeros(4, np.int64),
    }
    start = {
        "ids": np.array([[vocab.index(c) for c in "one "]] * 4, np.int64),
        "state": np.zeros((4, 8), np.float32),
    }
    outputs = ["generated", "gen_state"]
    (whole,) = session.run(["generated"], {**start, **rows, "steps": np.array(40, np.int64)})
    assert ["".join(vocab[i] for i in row) for row in whole] == [t for _, _, t in vectors]
    first, state = session.run(outputs, {**start, **rows, "steps": np.array(10, np.int64)})
    rows["row_offset"][:] = 10
    later = {"ids": first[:, -1:], "state": state, "steps": np.array(30, np.int64)}
    (rest,) = session.run(["generated"], {**later, **rows})
    np.testing.assert_array_equal(rest, whole[:, 10:])


def test_the_recipe_prints_what_the_named_command_prints_and_nothing_on_stderr(
    small_model, tmp_path
):
    recipe = SPEC.split("### Driving it from plain onnxruntime", 1)[1]
    code = recipe.split("```python", 1)[1].split("```", 1)[0]
    command = re.search(r"`(gru-edge sample poems\.onnx [^`]+)`", recipe)[1]
    (tmp_path / "poems.onnx").write_bytes(small_model.read_bytes())
    (tmp_path / "recipe.py").write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "recipe.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == ""
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', command)][1:]
    args[1] = str(tmp_path / "poems.onnx")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0
    assert done.stdout == result.stdout and len(done.stdout) == len("The woods are ") + 201


@pytest.mark.parametrize("vocab", [63, 70])
def test_a_wrong_stride_fails_the_later_vectors(vocab):
    """A client that advanced the counter by V per character would pass the character-0 table
    but not the later ones: the later table is what catches it."""
    h, wrong = -(-vocab // 4), vocab
    right = scalar_index(0, 0, 1, 0, vocab)
    mask = (1 << 64) - 1
    z = (0 + (1 * wrong + 0 + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    assert (z >> 48) & 0xFFFF != right and h != wrong
