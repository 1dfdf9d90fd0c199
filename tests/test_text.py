"""The text policy read a chunk at a time: the same text as normalising the whole file at once,
the same errors at the same offsets, and binary files refused (no TensorFlow needed)."""

from __future__ import annotations

import errno
import io
import random
import tempfile
import unicodedata

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime import text as text_policy
from gru_edge.runtime.errors import CorpusError
from gru_edge.runtime.text import iter_normalized, normalize_text, read_text_file

runner = CliRunner()
CHUNK_SIZES = [1, 2, 3, 4, 5, 7, 64, text_policy.CHUNK_BYTES]

# Each text puts something that NFC or the newline rule must see whole where small chunks cut it.
ADVERSARIAL = {
    "acute after e": "cafe\u0301 au lait",
    "marks out of canonical order": "a\u0301\u0328b\u0328\u0301 q\u0307\u0323",
    "long run of marks": "x" + "\u0301\u0323" * 40 + "y",
    "marks only": "\u0301\u0323\u0301" * 5,
    "Hangul L V T jamo": "\u1100\u1161\u11a8 \u1100\u1161 \u1112\u1175\u11c2",
    "Hangul syllable then T jamo": "\uac00\u11a8\uac00\u11a8",
    "Indic vowel halves, class 0": "\u0b47\u0b3e \u0dd9\u0dcf \u1025\u102e \u09c7\u09be",
    "decompositions starting with a mark": "a\u0344 \u0f71\u0f72\u0f73 b\u0f73",
    "singletons and exclusions": "\u212b \u2126 \u0958 \u2adc x\u0338",
    "CRLF, lone CR, CR at the end": "one\r\ntwo\rthree\r\r\nfour\r",
    "CR before a mark": "e\r\u0301",
    "BOM, a second BOM kept": "\ufeff\ufeffhi\ufeff",
    "four-byte characters": "🙂a\u0301🙂\U00020000\U0001d15e\U0001d165",
    "quotes and dashes": "“quoted” — ‘single’\n\tend",
}


def _chunked(data: bytes, chunk_bytes: int) -> str:
    return "".join(iter_normalized(io.BytesIO(data), "test", chunk_bytes))


def _whole(data: bytes) -> str:
    return normalize_text(data.decode("utf-8"))


@pytest.mark.parametrize("chunk_bytes", CHUNK_SIZES)
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_chunked_normalisation_is_whole_text_normalisation(name, chunk_bytes):
    data = ADVERSARIAL[name].encode("utf-8")
    assert _chunked(data, chunk_bytes) == _whole(data)


def test_random_texts_normalise_the_same_in_chunks():
    # Every tricky character above, plus plain letters, in random orders and chunk sizes.
    pool = sorted(set("".join(ADVERSARIAL.values())) | set("ab \n"))
    rng = random.Random(20261130)
    for _ in range(400):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        data = text.encode("utf-8")
        chunk_bytes = rng.randint(1, 9)
        assert _chunked(data, chunk_bytes) == _whole(data), (text, chunk_bytes)


def _interesting_code_points() -> list[str]:
    """Characters NFC treats specially: marks, decomposable characters, composition halves."""
    chars = []
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.combining(char) or unicodedata.decomposition(char):
            chars.append(char)
    hangul = map(chr, range(0xAC00, 0xD7A4, 7))  # algorithmic: no decomposition() entry
    return sorted(set(chars) | set(hangul) | text_policy._second_halves())


def test_every_segment_start_is_safe_to_cut_before():
    # The rule's claim, checked directly: NFC(x + c + y) == NFC(x) + NFC(c + y) for every
    # character c the rule cuts before, against contexts that compose or reorder.
    before = ["", "a", "e\u0301", "\u0b47", "\u1100", "\uac00", "\u0dd9", "\u1025", "\u0301"]
    after = ["", "\u0301", "\u0328\u0301", "\u1161", "\u11a8", "\u0b3e", "\u0dcf", "b"]
    nfc = unicodedata.normalize
    cut_before = [c for c in _interesting_code_points() if text_policy._starts_segment(c)]
    assert len(cut_before) > 1000  # precomposed letters, Hangul syllables, CJK compatibility...
    for char in cut_before:
        for x in before:
            for y in after:
                assert nfc("NFC", x + char + y) == nfc("NFC", x) + nfc("NFC", char + y), (
                    hex(ord(char)),
                    x,
                    y,
                )


@pytest.mark.parametrize(
    "char",
    ["\u0301", "\u0328", "\u1161", "\u11a8", "\u0b3e", "\u0dcf", "\u102e", "\u0344", "\u0f73"],
)
def test_characters_that_join_what_precedes_them_are_never_cut_before(char):
    assert not text_policy._starts_segment(char)


def test_ascii_always_starts_a_segment():
    assert all(text_policy._starts_segment(chr(code)) for code in range(128))
    assert not set(map(chr, range(128))) & text_policy._second_halves()


@pytest.mark.parametrize(
    "data",
    [
        b"good text \xff\xfe more",
        b"abc\xc3(def",
        b"abc\xe2\x82",  # cut short at the end
        b"ab\xed\xa0\x80cd",  # a surrogate
        b"\xf0\x9f\x99\x82 ok \xf0\x9f\x99",
        b"x" * 20 + b"\xc0\xaf",  # overlong
        b"\x80 starts with a continuation byte",
    ],
)
@pytest.mark.parametrize("chunk_bytes", CHUNK_SIZES)
def test_bad_utf8_is_reported_at_its_absolute_offset(data, chunk_bytes):
    with pytest.raises(UnicodeDecodeError) as whole:
        data.decode("utf-8")
    offset = whole.value.start
    expected = (
        f"test is not valid UTF-8: byte 0x{data[offset]:02x} at offset {offset}; "
        "re-save the file as UTF-8"
    )
    with pytest.raises(CorpusError) as chunked:
        _chunked(data, chunk_bytes)
    assert str(chunked.value) == expected


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"abc\x00def", 3),
        (b"\x00", 0),
        (b"text\n" * 10 + b"\x00\x00", 50),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 8),  # a bad byte first: still binary
        (b"caf\xc3\xa9 \xff" + b"y" * 40 + b"\x00", 47),  # the NUL far past the bad byte
    ],
)
@pytest.mark.parametrize("chunk_bytes", CHUNK_SIZES)
def test_a_nul_byte_means_binary(data, offset, chunk_bytes):
    with pytest.raises(CorpusError) as exc:
        _chunked(data, chunk_bytes)
    assert str(exc.value) == (
        f"test is binary, not text: NUL byte at offset {offset}; pass a UTF-8 text file"
    )


def test_read_text_file_reads_in_chunks_like_the_whole(tmp_path):
    data = "".join(ADVERSARIAL.values()).encode("utf-8") * 3
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    pieces = list(text_policy.iter_text_file(path, "t", chunk_bytes=5))
    assert len(pieces) > 10
    assert "".join(pieces) == read_text_file(path) == _whole(data)


# --- through the CLI -----------------------------------------------------------------------


def test_train_refuses_a_binary_corpus(tmp_path):
    corpus = tmp_path / "corpus.bin"
    corpus.write_bytes(b"looks like text " * 100 + b"\x00\x01\x02")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(corpus), "--out", str(out)])
    assert_one_line_error(result, f"corpus {corpus} is binary", "offset 1600", "UTF-8 text file")
    assert not out.exists()


def test_sample_refuses_a_binary_prime_file(tmp_path, small_model):
    prime = tmp_path / "prime.txt"
    prime.write_bytes(b"The rose\x00")
    result = runner.invoke(app, ["sample", str(small_model), "--prime-file", str(prime)])
    assert_one_line_error(result, f"prime file {prime} is binary", "offset 8", "UTF-8 text file")


def test_train_with_a_full_temporary_folder_is_a_one_line_error(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n" * 200, encoding="utf-8")
    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(corpus), "--out", str(out)])
    assert_one_line_error(result, "temporary folder", "No space left on device", "TMPDIR")
    assert not out.exists()
