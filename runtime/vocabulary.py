"""The vocabulary: the characters a model knows, index = id.

One class builds it from text, encodes and decodes, validates it, and round-trips it through the
JSON that both `vocab.json` (run directory) and the ONNX `vocabulary` metadata hold. Callers turn
its VocabularyError into their own error with the fix that fits their file.

Which characters a vocabulary may hold (one rule for corpora and for files from elsewhere): any
Unicode character a UTF-8 text can carry, except the control characters (category Cc) other
than "\n" and "\t", and lone surrogates. A surrogate is no character at all (no UTF-8 text holds
one; printing it raises); a control character is not text, and the escape controls would let a
model from elsewhere drive the terminal it prints to ("\r" is one too: the text policy turns it
into "\n"). Everything else stays allowed, because real corpora hold it: no-break and other
spaces, format characters such as the zero-width joiner or the soft hyphen, private-use and
not-yet-assigned code points.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

from gru_edge.runtime.errors import GruEdgeError, shown

_MAX_LISTED = 20  # characters named in a message
# A vocabulary is one flat array; json.loads recurses per level and raises RecursionError past
# ~1000, so deeper nesting is refused before parsing.
MAX_NESTING = 32
_ALLOWED_CONTROLS = frozenset("\n\t")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # one alternative per character: linear time
_BRACKET = re.compile(r"[\[\]{}]")


class VocabularyError(GruEdgeError):
    """A vocabulary that is not a non-empty list of distinct single characters."""


class Vocabulary(Sequence[str]):
    """An immutable sequence of distinct single characters: ``vocab[i]`` is id i's character."""

    __slots__ = ("_chars", "_ids", "_codes")

    def __init__(self, chars: Iterable[str]):
        """Validate ``chars``; raise VocabularyError naming the first problem."""
        chars = tuple(chars)
        if not chars:
            raise VocabularyError("the vocabulary is empty")
        for position, char in enumerate(chars):
            problem = character_problem(char)
            if problem:
                raise VocabularyError(f"vocabulary entry {position} is {shown(char)}, {problem}")
        ids = {char: i for i, char in enumerate(chars)}
        if len(ids) != len(chars):
            repeated = sorted(c for c, n in Counter(chars).items() if n > 1)
            raise VocabularyError(f"the vocabulary repeats {shown(repeated)}")
        self._chars = chars
        self._ids = ids
        self._codes: np.ndarray | None = None

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """The sorted set of characters in ``text``."""
        return cls(sorted(set(text)))

    @classmethod
    def from_json(cls, raw: Any) -> Vocabulary:
        """Parse the stored form (a JSON array of one-character strings)."""
        if not isinstance(raw, str):
            raise VocabularyError(f"the vocabulary is {type(raw).__name__}, not JSON text")
        if _nesting(raw) > MAX_NESTING:
            raise VocabularyError(
                f"the vocabulary nests JSON arrays or objects more than {MAX_NESTING} deep; "
                "it must be one flat JSON array of one-character strings"
            )
        try:
            chars = json.loads(raw)
        except ValueError:
            raise VocabularyError(f"the vocabulary is not JSON ({shown(raw)})") from None
        return cls.from_list(chars)

    @classmethod
    def from_list(cls, chars: Any) -> Vocabulary:
        """A vocabulary from already-parsed JSON, which must be a non-empty array."""
        if not isinstance(chars, list) or not chars:
            raise VocabularyError("the vocabulary must be a non-empty JSON array of characters")
        return cls(chars)

    def to_json(self) -> str:
        """The stored form: ASCII-escaped JSON, so any character survives any transport."""
        return json.dumps(list(self._chars), ensure_ascii=True)

    def to_list(self) -> list[str]:
        return list(self._chars)

    # --- Sequence ---------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._chars[index]

    def __len__(self) -> int:
        return len(self._chars)

    def __iter__(self) -> Iterator[str]:
        return iter(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._ids

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Vocabulary):
            return self._chars == other._chars
        if isinstance(other, (list, tuple)):
            return self._chars == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"Vocabulary({list(self._chars)!r})"

    def index(self, char: str, *_: Any) -> int:  # type: ignore[override]
        """The id of ``char`` (a dict lookup, not a scan); ValueError if it is unknown."""
        try:
            return self._ids[char]
        except KeyError:
            raise ValueError(f"{char!r} is not in the vocabulary") from None

    # --- encoding ---------------------------------------------------------------------------

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` outside the vocabulary, sorted."""
        ids = self._ids
        return sorted({c for c in text if c not in ids})

    def encode(self, text: str, *, skip_unknown: bool = False, dtype: Any = np.int64) -> np.ndarray:
        """``text`` as ids; unknown characters raise VocabularyError, or are dropped."""
        ids = self._ids
        if skip_unknown:
            text = "".join(c for c in text if c in ids)
        else:
            missing = self.unknown(text)
            if missing:
                listed = ", ".join(repr(c) for c in missing[:_MAX_LISTED])
                raise VocabularyError(
                    f"{len(missing)} character(s) outside the vocabulary: {listed}"
                )
        return np.fromiter((ids[c] for c in text), dtype=dtype, count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text."""
        chars = self._chars
        return "".join(chars[int(i)] for i in ids)

    def decode_rows(self, ids: np.ndarray) -> list[str]:
        """Each row of an integer array [rows, length] as one string, in one vectorised lookup."""
        if self._codes is None:
            self._codes = np.array([ord(c) for c in self._chars], dtype="<u4")
        codes = np.ascontiguousarray(self._codes[np.asarray(ids)])
        return [row.tobytes().decode("utf-32-le") for row in codes]


def character_problem(char: Any) -> str | None:
    """Why ``char`` cannot be a vocabulary entry (see the module's rule), or None if it can."""
    if not isinstance(char, str) or len(char) != 1:
        return "not one character"
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate, which is not a character and cannot be printed"
    if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
        return (
            "a control character; a vocabulary holds text: any character but a surrogate "
            "or a control character other than '\\n' and '\\t'"
        )
    return None


def _nesting(raw: str) -> int:
    """How deep ``raw``'s arrays and objects nest, counted up to just past MAX_NESTING."""
    text = _JSON_STRING.sub("", raw)
    if text.count("[") + text.count("{") <= 1:  # the usual case, at C speed
        return 1
    depth = deepest = 0
    for match in _BRACKET.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
    return deepest


def smallest_dtype(count: int) -> np.dtype:
    """The narrowest integer dtype that holds 0 .. count - 1 and that TensorFlow can cast."""
    for dtype, limit in ((np.uint8, 2**8), (np.uint16, 2**16), (np.int32, 2**31)):
        if count <= limit:
            return np.dtype(dtype)
    return np.dtype(np.int64)
