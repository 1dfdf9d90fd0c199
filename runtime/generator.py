"""The Python API: text from a gru-edge .onnx file alone.

    gen = Generator.load("model.onnx")
    text = gen.generate("Shall I compare thee", length=200, temperature=0.8, seed=1)

``generate`` returns the continuation only (not the prime); the CLI prints the prime first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from runtime.errors import PrimeError, UsageError
from runtime.generation import Mode, generate_ids, generate_one
from runtime.loader import DEFAULT_MAX_BYTES, LoadedModel, load_model
from runtime.ortstep import OrtStep
from runtime.sampler import SamplingSettings
from runtime.text import normalize_text

Unknown = Literal["error", "skip"]
_MAX_LISTED = 20  # unknown characters named in a PrimeError


class Generator:
    """Generates text from a loaded gru-edge model.

    After each call, ``last_seed`` is the seed used (drawn fresh when none was given),
    ``last_prime`` the prime actually fed (normalised, unknown characters skipped; "" for the
    default start) and ``last_skipped`` the characters ``unknown="skip"`` dropped.
    """

    def __init__(self, model: LoadedModel):
        self.model = model
        self._index = {char: i for i, char in enumerate(model.vocab)}
        # Code points of the vocabulary, to decode a whole batch with one lookup per row.
        self._codes = np.array([ord(c) for c in model.vocab], dtype="<u4")
        self.last_seed: int | None = None
        self.last_prime: str = ""
        self.last_skipped: list[str] = []

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        threads: int | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Generator:
        """Load and check ``path`` (see runtime.loader) on "auto", "cpu" or "cuda"."""
        return cls(load_model(Path(path), device=device, threads=threads, max_bytes=max_bytes))

    @property
    def vocab(self) -> list[str]:
        """The characters the model knows; index = id."""
        return self.model.vocab

    @property
    def units(self) -> int:
        """Width of the GRU state."""
        return self.model.units

    @property
    def seq_len(self) -> int | None:
        """The training window from metadata (window mode re-feeds this many characters)."""
        return self.model.seq_len

    @property
    def provider(self) -> str:
        """The execution provider that runs the model."""
        return self.model.provider

    @property
    def metadata(self) -> dict[str, str]:
        """The file's metadata_props."""
        return self.model.metadata

    def encode_prime(
        self, prime: str | None, unknown: Unknown = "error"
    ) -> tuple[list[int], str, list[str]]:
        """(ids to feed, prime text fed, characters skipped) for ``prime``.

        The prime is normalised like the training text. Characters outside the vocabulary
        raise PrimeError, or are dropped with ``unknown="skip"``. No prime, or nothing left
        after skipping, starts from "\\n" (the vocabulary's first character if it lacks one).
        """
        if unknown not in ("error", "skip"):
            raise UsageError(f"unknown must be 'error' or 'skip', got {unknown!r}")
        text = normalize_text(prime) if prime else ""
        index = self._index
        missing = sorted({c for c in text if c not in index})
        if missing and unknown == "error":
            listed = ", ".join(repr(c) for c in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise PrimeError(
                f"the prime has {len(missing)} character(s) the model's vocabulary lacks: "
                f"{listed}{more}; remove them or pass --unknown skip"
            )
        kept = "".join(c for c in text if c in index) if missing else text
        if not kept:
            start = "\n" if "\n" in index else self.vocab[0]
            return [index[start]], "", missing
        return [index[c] for c in kept], kept, missing

    def stream(
        self,
        prime: str | None = None,
        length: int = 400,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        mode: Mode = "stateful",
        unknown: Unknown = "error",
    ) -> Iterator[str]:
        """Yield ``length`` generated characters one at a time.

        Checks the arguments and encodes the prime before returning, so errors (and
        ``last_seed`` / ``last_skipped``) come at the call, not at the first character.
        """
        kwargs = self._prepare(prime, length, 1, temperature, top_k, top_p, seed, mode, unknown)
        vocab = self.vocab
        return (vocab[index] for index in generate_one(**kwargs))

    def generate(
        self,
        prime: str | None = None,
        length: int = 400,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        mode: Mode = "stateful",
        unknown: Unknown = "error",
    ) -> str:
        """``length`` generated characters continuing ``prime`` (the prime is not included)."""
        return "".join(
            self.stream(
                prime,
                length,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
                mode=mode,
                unknown=unknown,
            )
        )

    def generate_batch(
        self,
        n: int,
        prime: str | None = None,
        length: int = 400,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        mode: Mode = "stateful",
        unknown: Unknown = "error",
    ) -> list[str]:
        """``n`` independent continuations of ``prime``, run as one batch through the model."""
        if not (isinstance(n, int) and n >= 1):
            raise UsageError(f"the number of samples must be at least 1, got {n!r}")
        kwargs = self._prepare(prime, length, n, temperature, top_k, top_p, seed, mode, unknown)
        out = np.empty((length, n), dtype=np.int64)
        for position, new in enumerate(generate_ids(batch=n, **kwargs)):
            out[position] = new
        codes = np.ascontiguousarray(self._codes[out.T])
        return [row.tobytes().decode("utf-32-le") for row in codes]

    def _prepare(
        self,
        prime: str | None,
        length: int,
        batch: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | None,
        mode: str,
        unknown: Unknown,
    ) -> dict[str, Any]:
        """Check the options and encode the prime; the arguments for the generation loop."""
        if not (isinstance(length, int) and length >= 1):
            raise UsageError(f"length must be at least 1, got {length!r}")
        if mode not in ("stateful", "window"):
            raise UsageError(f"mode must be 'stateful' or 'window', got {mode!r}")
        if mode == "window" and self.seq_len is None:
            raise UsageError(
                f"--mode window needs the model's seq_len metadata, which {self.model.path} "
                "lacks; use --mode stateful"
            )
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little")
        elif not (isinstance(seed, int) and seed >= 0):
            raise UsageError(f"seed must be a whole number >= 0, got {seed!r}")
        settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p)
        prime_ids, fed, skipped = self.encode_prime(prime, unknown)
        self.last_seed, self.last_prime, self.last_skipped = seed, fed, skipped
        # A fresh step per call: it owns the state buffers, so two live streams never share.
        step = OrtStep(
            self.model.session, batch=batch, units=self.units, vocab_size=len(self.vocab)
        )
        return {
            "step": step,
            "prime_ids": prime_ids,
            "length": length,
            "units": self.units,
            "settings": settings,
            "rng": np.random.default_rng(seed),
            "mode": mode,
            "seq_len": self.seq_len,
        }
