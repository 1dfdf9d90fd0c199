"""Stop strings: generated text ends before the first occurrence of any of them.

One rule for `gru-edge sample --stop` and the service's ``stop``: the text is searched as
generated (never the prime), the earliest occurrence of any stop string wins (at one position,
the first listed), and neither it nor anything after it is returned. Text arrives in pieces of
any size, so a StopFilter holds back the last ``longest - 1`` characters until it knows they
do not begin a stop string: what it has passed on is final.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.text import normalize_text

MAX_STOP_CHARS = 256  # characters in one stop string


def check_stops(stops: Sequence[str]) -> tuple[str, ...]:
    """The stop strings, normalised like the prime (NFC, LF); UsageError for an empty or
    overlong one."""
    checked = []
    for stop in stops:
        if not isinstance(stop, str) or not stop:
            raise UsageError(f"--stop must be a non-empty string, got {stop!r}")
        text = normalize_text(stop)
        if len(text) > MAX_STOP_CHARS:
            raise UsageError(
                f"--stop strings are at most {MAX_STOP_CHARS} characters, got one of {len(text):,}"
            )
        checked.append(text)
    return tuple(checked)


class StopFilter:
    """Passes text through until a stop string appears; ``stopped`` says whether one did."""

    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(stops)
        self._keep = max((len(s) for s in self.stops), default=1) - 1
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The part of the text so far that is final; "" once stopped."""
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        text = self._held + piece
        cut = _first_stop(text, self.stops)
        if cut is not None:
            self.stopped, self._held = True, ""
            return text[:cut]
        split = max(0, len(text) - self._keep)
        self._held = text[split:]
        return text[:split]

    def flush(self) -> str:
        """What is held back, at the end of the text (it began no stop string)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def pieces(self, pieces: Iterable[str]) -> Iterator[str]:
        """``pieces`` cut at the first stop string; stops pulling from them there."""
        for piece in pieces:
            out = self.feed(piece)
            if out:
                yield out
            if self.stopped:
                return
        rest = self.flush()
        if rest:
            yield rest


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(``text`` before its first stop string, whether one was found)."""
    cut = _first_stop(text, stops)
    return (text, False) if cut is None else (text[:cut], True)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None
