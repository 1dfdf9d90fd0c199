"""The one vocabulary: build, encode, decode, JSON round trip and validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gru_edge.runtime.vocabulary import MAX_NESTING, Vocabulary, VocabularyError, character_problem

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
        ('["\\ud83d", "a"]', "entry 0 is '\\ud83d', a lone surrogate"),
        ('["a", "\\u0007"]', "entry 1 is '\\x07', a control character"),
        ("[" * 33 + "]" * 33, f"more than {MAX_NESTING} deep"),
        ("[" * 10**6, f"more than {MAX_NESTING} deep"),
        ('["a", ' + "{" * 40 + "}" * 40 + "]", f"more than {MAX_NESTING} deep"),
        ("[" * 32 + "]" * 32, "entry 0 is [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]..., not one"),
        ('["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "a"]', "entry 0 is '[[[[[[[[[[[[[[["),
    ],
)
def test_invalid_vocabularies_are_refused(raw, message):
    with pytest.raises(VocabularyError, match=re.escape(message)):
        Vocabulary.from_json(raw)


def test_equality_is_by_characters_and_it_is_unhashable():
    assert Vocabulary("ab") == Vocabulary(["a", "b"]) == ("a", "b")
    assert Vocabulary("ab") != Vocabulary("ba") and Vocabulary("ab") != "ab"
    with pytest.raises(TypeError):
        hash(Vocabulary("ab"))


@pytest.mark.parametrize(
    ("char", "problem"),
    [
        ("a", None),
        ("\n", None),
        ("\t", None),
        (" ", None),
        ("\xa0", None),  # no-break space: real corpora have it
        ("\u200d", None),  # zero-width joiner, inside emoji sequences
        ("\xad", None),  # soft hyphen
        ("\ue000", None),  # private use
        ("\U000e0001", None),  # format character (language tag)
        ("\r", "a control character"),
        ("\x00", "a control character"),
        ("\x0c", "a control character"),
        ("\x1b", "a control character"),
        ("\x7f", "a control character"),
        ("\x85", "a control character"),
        ("\ud800", "a lone surrogate"),
        ("\udfff", "a lone surrogate"),
        ("ab", "not one character"),
        (7, "not one character"),
    ],
)
def test_which_characters_a_vocabulary_may_hold(char, problem):
    found = character_problem(char)
    assert (found is None) if problem is None else found.startswith(problem)


def test_a_corpus_with_control_characters_gets_the_same_rule():
    with pytest.raises(VocabularyError, match=r"entry 0 is '\\x0c', a control character"):
        Vocabulary.from_text("page one\x0cpage two")
