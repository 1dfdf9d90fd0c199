"""Text policy, vocabulary, windows and the validation split (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from gru_edge.runtime.errors import CorpusError, UsageError
from gru_edge.runtime.text import normalize_text
from gru_edge.runtime.vocabulary import Vocabulary
from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.corpus import (
    check_length,
    load_corpus,
    min_corpus_chars,
    split_point,
    window_starts,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\nb", "a\nb"),
        ("a\rb", "a\nb"),
        ("\ufeffhello", "hello"),
        ("cafe\u0301", "café"),  # NFD -> NFC
        ("x\u2014y", "x\u2014y"),
        ("plain", "plain"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_windows_editor_twin_gives_same_vocabulary(tmp_path):
    clean = "Line one\ncafé — “quoted”\nline three\n" * 5
    windows = "\ufeff" + clean.replace("\n", "\r\n").replace("é", "e\u0301")
    (tmp_path / "clean.txt").write_text(clean, encoding="utf-8", newline="")
    (tmp_path / "win.txt").write_bytes(windows.encode("utf-8"))
    a, b = load_corpus(tmp_path / "clean.txt"), load_corpus(tmp_path / "win.txt")
    assert a.vocab == b.vocab
    assert a.sha256 == b.sha256
    assert "\r" not in a.vocab and "\ufeff" not in b.vocab


def test_vocabulary_is_sorted_and_unique():
    assert Vocabulary.from_text("banana\n") == ["\n", "a", "b", "n"]


def test_corpus_ids_decode_back(tmp_path):
    (tmp_path / "c.txt").write_text("hello world\n", encoding="utf-8")
    corpus = load_corpus(tmp_path / "c.txt")
    assert "".join(corpus.vocab[i] for i in corpus.ids) == corpus.text
    assert corpus.ids.dtype == np.int32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or only whitespace"),
        (b"  \n\t\n", "empty or only whitespace"),
        (b"good text \xff\xfe more", "not valid UTF-8: byte 0xff at offset 10"),
    ],
)
def test_bad_corpus_content(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_missing_and_directory_corpus(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        load_corpus(tmp_path)


def test_window_starts_match_the_notebook():
    # The notebook: for i in range(0, len(text) - maxlen, step): text[i:i+maxlen] -> text[i+maxlen]
    n, seq_len, step = 23, 5, 4
    assert window_starts(n, seq_len, step).tolist() == list(range(0, n - seq_len, step))
    last = window_starts(n, seq_len, step)[-1]
    assert last + seq_len <= n - 1  # the last window's target exists
    assert window_starts(seq_len, seq_len, 1).tolist() == []  # no room for a target


def test_validation_split_never_overlaps_training():
    n, seq_len = 1000, 20
    cut = split_point(n, 0.1)
    assert cut == 900
    train = window_starts(cut, seq_len, 1)
    assert train[-1] + seq_len == cut - 1  # last training target is the last training char
    assert split_point(n, 0.0) == n


@pytest.mark.parametrize(("seq_len", "fraction"), [(100, 0.1), (10, 0.0), (40, 0.5), (7, 0.33)])
def test_min_corpus_chars_is_tight(seq_len, fraction):
    need = min_corpus_chars(seq_len, fraction)
    check_length(need, seq_len, fraction)
    with pytest.raises(CorpusError, match=f"needs at least {need}"):
        check_length(need - 1, seq_len, fraction)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("units", 0, "--units must be at least 1, got 0"),
        ("lr", -1.0, "--lr must be a positive number, got -1.0"),
        ("lr", float("nan"), "--lr must be a positive number"),
        ("val_fraction", 0.9, "--val-fraction must be between 0 and 0.5, got 0.9"),
        ("seq_len", 1, "--seq-len must be at least 2, got 1"),
        ("step", 0, "--step must be at least 1"),
        ("batch_size", 0, "--batch-size must be at least 1"),
        ("epochs", 0, "--epochs must be at least 1"),
        ("strategy", "tpu", "--strategy must be one of"),
        ("seed", -5, "--seed must be between"),
    ],
)
def test_config_rejects_nonsense(field, value, message):
    config = TrainConfig(**{field: value})
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.validate()


def test_config_defaults_are_the_notebooks_and_round_trip():
    config = TrainConfig()
    config.validate()
    assert (config.seq_len, config.step, config.units, config.lr) == (100, 5, 128, 0.01)
    assert (config.batch_size, config.epochs, config.val_fraction) == (128, 20, 0.1)
    assert config.temperatures == (0.2, 0.5, 1.0, 1.2)
    assert TrainConfig.from_dict(config.to_dict()) == config
