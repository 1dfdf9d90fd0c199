"""The one vocabulary: build, encode, decode, JSON round trip and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gru_edge.runtime.vocabulary import Vocabulary, VocabularyError

HARD = ["\n", "\t", " ", "a", "é", "—", "“", "🙂"]


def test_built_from_text_sorted_and_distinct():
    vocab = Vocabulary.from_text("banana\n")
    assert vocab == ["\n", "a", "b", "n"] and list(vocab) == ["\n", "a", "b", "n"]
    assert len(vocab) == 4 and vocab[1] == "a" and "b" in vocab and "z" not in vocab
    assert vocab.index("n") == 3


def test_encode_decode_round_trip():
    vocab = Vocabulary(HARD)
    text = "a\té 🙂—“\n"
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and vocab.decode(ids) == text
    assert vocab.encode(text, dtype=np.int32).dtype == np.int32
    rows = np.array([vocab.encode("aé🙂"), vocab.encode("\n\t ")])
    assert vocab.decode_rows(rows) == ["aé🙂", "\n\t "]


def test_unknown_characters_are_listed_or_skipped():
    vocab = Vocabulary(HARD)
    assert vocab.unknown("xa€y") == ["x", "y", "€"]
    with pytest.raises(VocabularyError, match="3 character\\(s\\) outside the vocabulary"):
        vocab.encode("xa€y")
    assert vocab.decode(vocab.encode("xa€y", skip_unknown=True)) == "a"
    with pytest.raises(ValueError, match="'x' is not in the vocabulary"):
        vocab.index("x")


def test_json_round_trip_keeps_every_character():
    vocab = Vocabulary(HARD)
    stored = vocab.to_json()
    assert stored.isascii()  # escaped: survives any metadata transport
    assert Vocabulary.from_json(stored) == vocab
    assert json.loads(stored) == HARD


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('["a", ', "is not JSON"),
        ('{"a": 1}', "must be a non-empty JSON array"),
        ("[]", "must be a non-empty JSON array"),
        ('["ab", "c"]', "entry 0 is 'ab', not one character"),
        ('["a", 1]', "entry 1 is 1, not one character"),
        ('["a", "b", "a"]', "repeats ['a']"),
        (None, "is NoneType, not JSON text"),
    ],
)
def test_invalid_vocabularies_are_refused(raw, message):
    with pytest.raises(VocabularyError, match=message.replace("[", "\\[").replace("(", "\\(")):
        Vocabulary.from_json(raw)


def test_equality_is_by_characters_and_it_is_unhashable():
    assert Vocabulary("ab") == Vocabulary(["a", "b"]) == ("a", "b")
    assert Vocabulary("ab") != Vocabulary("ba") and Vocabulary("ab") != "ab"
    with pytest.raises(TypeError):
        hash(Vocabulary("ab"))
