"""Text policy, vocabulary, windows and the validation split (no TensorFlow needed)."""

from __future__ import annotations

import hashlib
import tempfile

import numpy as np
import pytest

from gru_edge.runtime.errors import CorpusError, UsageError
from gru_edge.runtime.text import CHUNK_BYTES, normalize_text
from gru_edge.runtime.vocabulary import Vocabulary
from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.corpus import (
    check_length,
    cut_windows,
    epoch_order,
    load_corpus,
    min_corpus_chars,
    smallest_dtype,
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
    assert corpus.decode() == "".join(corpus.vocab[i] for i in corpus.ids) == "hello world\n"
    assert (corpus.decode(2, 5), corpus.decode(-3)) == ("llo", "ld\n")
    assert corpus.ids.dtype == np.uint8
    assert not corpus.ids.flags.writeable


@pytest.mark.parametrize("chunk_bytes", [1, 3, 1000, CHUNK_BYTES])
def test_corpus_read_in_chunks_is_the_whole_text_normalised(tmp_path, chunk_bytes):
    # CRLF, a BOM, a decomposed accent, marks out of order, Hangul jamo, an emoji: pieces that
    # small chunks cut apart. Hash and vocabulary must be what the whole text gives (--resume).
    raw = "\ufeffLine\r\ncafe\u0301 a\u0301\u0328\r\u1100\u1161\u11a8 🙂\r" * 50
    path = tmp_path / "c.txt"
    path.write_bytes(raw.encode("utf-8"))
    text = normalize_text(raw)
    corpus = load_corpus(path, chunk_bytes=chunk_bytes)
    assert corpus.decode() == text
    assert corpus.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert corpus.vocab == Vocabulary.from_text(text)


@pytest.mark.parametrize(
    ("distinct", "dtype"), [(3, np.uint8), (256, np.uint8), (300, np.uint16), (70_000, np.int32)]
)
def test_ids_take_the_smallest_dtype_for_the_vocabulary(tmp_path, distinct, dtype):
    # From U+30000 on: CJK ideographs and unassigned code points, which NFC leaves alone.
    text = "".join(chr(0x30000 + i) for i in range(distinct)) * 2
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(tmp_path / "c.txt")
    assert corpus.ids.dtype == dtype and len(corpus.vocab) == distinct
    assert corpus.decode() == text


@pytest.mark.parametrize(
    ("count", "dtype"),
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65_536, np.uint16), (65_537, np.int32)],
)
def test_smallest_dtype(count, dtype):
    assert smallest_dtype(count) == dtype
    assert smallest_dtype(2**31 + 1) == np.int64


def test_loading_leaves_no_temporary_files(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (tmp_path / "c.txt").write_text("some text\n" * 100, encoding="utf-8")
    corpus = load_corpus(tmp_path / "c.txt")
    assert list(scratch.iterdir()) == []
    assert corpus.decode(0, 9) == "some text"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or only whitespace"),
        (b"  \n\t\n", "empty or only whitespace"),
        (b"good text \xff\xfe more", "not valid UTF-8: byte 0xff at offset 10"),
        (b"text\x00\x00", "is binary, not text: NUL byte at offset 4; pass a UTF-8 text file"),
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
    assert list(window_starts(n, seq_len, step)) == list(range(0, n - seq_len, step))
    last = window_starts(n, seq_len, step)[-1]
    assert last + seq_len <= n - 1  # the last window's target exists
    assert list(window_starts(seq_len, seq_len, 1)) == []  # no room for a target


@pytest.mark.parametrize("n_windows", [1, 2, 255, 256, 257, 70_000])
@pytest.mark.parametrize("seed", [[0, 0], [1234, 7]])
def test_epoch_order_is_the_permutation_of_the_starts(n_windows, seed):
    # What the pipeline did before the order shrank to the smallest dtype: resume depends on it.
    step = 5
    starts = np.arange(0, n_windows * step, step, dtype=np.int64)
    before = np.random.default_rng(seed).permutation(starts)
    order = epoch_order(n_windows, seed)
    assert order.dtype == smallest_dtype(n_windows)
    np.testing.assert_array_equal(order.astype(np.int64) * step, before)


def test_cut_windows_takes_each_window_and_its_target():
    ids = (np.arange(40) % 7).astype(np.uint8)
    seq_len, positions = 4, np.array([3, 0, 2])
    expected = [ids[s : s + seq_len + 1] for s in (9, 0, 6)]
    for starts in (window_starts(len(ids), seq_len, 3), np.arange(0, 36, 3)):
        windows = cut_windows(ids, starts, positions, seq_len)
        assert windows.dtype == np.uint8
        np.testing.assert_array_equal(windows, expected)


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
        ("units", 0, r"--units must be between 1 and \d+, got 0"),
        ("lr", -1.0, "--lr must be a positive number, got -1.0"),
        ("lr", float("nan"), "--lr must be a positive number"),
        ("val_fraction", 0.9, "--val-fraction must be between 0 and 0.5, got 0.9"),
        ("seq_len", 1, r"--seq-len must be between 2 and \d+, got 1"),
        ("step", 0, "--step must be at least 1"),
        ("batch_size", 0, r"--batch-size must be between 1 and \d+, got 0"),
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
