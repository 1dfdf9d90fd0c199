"""The Python API: text from a gru-edge .onnx file alone.

    gen = Generator.load("model.onnx")
    text = gen.generate("Shall I compare thee", length=200, temperature=0.8, seed=1)

Every generating method takes its settings either as keywords (``length=200, seed=1``) or as one
``GenerationOptions`` (``options=...``), the keywords overriding it; both are validated in one
place, GenerationOptions. ``generate`` returns the continuation only (not the prime).

Two engines write the same text for the same seed: the model file's own generator
(runtime.ingraph, a chunk of characters per onnxruntime call; gru-edge/2 files) and the host
loop (runtime.generation, one call per character; any file, and window mode). ``engine="auto"``
takes the graph when it can. ``start`` and ``start_batch`` return what ran with the text
(runtime.results: the seed, the prime fed, the engine); the Generator keeps no per-call state,
so threads may share one.

Memory stays bounded: ``stream`` holds nothing, whatever the length. The calls that return whole
texts hold them, so they refuse more than MAX_HELD_CHARS characters in all (one byte per
character while generating, then the strings); a batch also refuses more rows than one step's
budget of MAX_BATCH_VALUES values (rows x (vocabulary + units): the logits and the sampler's
float64 copies grow with it). Both are checked before any work, with one-line UsageErrors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gru_edge.runtime.contract import REEXPORT
from gru_edge.runtime.errors import ModelFileError, PrimeError, UsageError
from gru_edge.runtime.generation import generate_ids, generate_one
from gru_edge.runtime.ingraph import GraphEngine
from gru_edge.runtime.loader import DEFAULT_MAX_BYTES, LoadedModel, load_model
from gru_edge.runtime.options import UNKNOWN_POLICIES, GenerationOptions, Unknown
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.providers import CPU
from gru_edge.runtime.results import BatchGeneration, Generation, Prepared
from gru_edge.runtime.text import normalize_text
from gru_edge.runtime.threads import WIDE_BATCH, threads_for
from gru_edge.runtime.vocabulary import Vocabulary, smallest_dtype

_MAX_LISTED = 20  # unknown characters named in a PrimeError
MAX_HELD_CHARS = 1 << 25  # 33,554,432 characters: 32 MiB of ids, at most 128 MiB of text
MAX_BATCH_VALUES = 1 << 22  # rows x (vocabulary + units) per step: ~100 MB of working arrays


class Generator:
    """Generates text from a loaded gru-edge model."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self._wide: dict[int, ort.InferenceSession] = {}  # sessions with more threads, by count

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        threads: int | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Generator:
        """Load and check ``path`` (see gru_edge.runtime.loader) on "auto", "cpu" or "cuda";
        ``threads`` intra-op threads, None for one (loader.DEFAULT_THREADS)."""
        return cls(load_model(Path(path), device=device, threads=threads, max_bytes=max_bytes))

    @property
    def vocab(self) -> Vocabulary:
        """The characters the model knows; index = id."""
        return self.model.vocab

    @property
    def units(self) -> int:
        """Units of each GRU layer."""
        return self.model.units

    @property
    def state_width(self) -> int:
        """Width of the state the model carries: layers x units."""
        return self.model.state_width

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
    ) -> tuple[np.ndarray, str, list[str]]:
        """(ids to feed as int64 [time], prime text fed, characters skipped) for ``prime``.

        The prime is normalised like the training text. Characters outside the vocabulary
        raise PrimeError, or are dropped with ``unknown="skip"``. No prime, or nothing left
        after skipping, starts from "\\n" (the vocabulary's first character if it lacks one).
        """
        if unknown not in UNKNOWN_POLICIES:
            raise UsageError(f"unknown must be 'error' or 'skip', got {unknown!r}")
        vocab = self.vocab
        text = normalize_text(prime) if prime else ""
        missing = vocab.unknown(text)
        if missing and unknown == "error":
            listed = ", ".join(repr(c) for c in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise PrimeError(
                f"the prime has {len(missing)} character(s) the model's vocabulary lacks: "
                f"{listed}{more}; remove them or pass --unknown skip"
            )
        kept = "".join(c for c in text if c in vocab) if missing else text
        if not kept:
            start = "\n" if "\n" in vocab else vocab[0]
            return np.array([vocab.index(start)], dtype=np.int64), "", missing
        return vocab.encode(kept), kept, missing

    def start(
        self,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> Generation:
        """One stream: its ``pieces`` are the text as it comes, one character each from the
        host loop, one onnxruntime call's worth from the graph (32 characters first, then up to
        2,048), so a writer can flush once per piece; ``info`` says how it runs.

        ``settings`` are GenerationOptions fields (temperature, top_k, top_p, seed, mode,
        unknown, engine, stop). They are checked and the prime encoded here, so errors come at
        the call, not at the first character. Holds nothing: any length.
        """
        info, loop = self._prepare(prime, length, options, settings)
        if info.engine == "graph":
            vocab = self.vocab
            raw = (vocab.decode_rows(chunk)[0] for chunk in self._graph_chunks(1, loop))
        else:
            raw = (self.vocab[index] for index in generate_one(self._step(1), **loop))
        return Generation(info, raw)

    def start_batch(
        self,
        n: int,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> BatchGeneration:
        """``n`` independent continuations of ``prime``, run as one batch through the model;
        row b uses seed + b. Its ids are held: within MAX_HELD_CHARS and MAX_BATCH_VALUES."""
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise UsageError(f"--num-samples must be at least 1, got {n!r}")
        info, loop = self._prepare(prime, length, options, settings)
        self._check_batch(n, loop["length"])
        if info.engine == "graph":
            ids = self._graph_ids(n, loop)
        else:
            ids = np.empty((n, loop["length"]), dtype=smallest_dtype(len(self.vocab)))
            for position, new in enumerate(generate_ids(self._step(n), batch=n, **loop)):
                ids[:, position] = new
        return BatchGeneration(info, ids, self.vocab)

    def stream(
        self,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> Iterator[str]:
        """``start``'s text one character at a time."""
        pieces = self.start(prime, length, options=options, **settings).pieces
        return (char for piece in pieces for char in piece)

    def stream_pieces(
        self,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> Iterator[str]:
        """``start``'s text in pieces as they come."""
        return self.start(prime, length, options=options, **settings).pieces

    def generate(
        self,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> str:
        """The generated continuation of ``prime`` (the prime is not included), cut at a stop
        string; at most MAX_HELD_CHARS characters (``stream`` has no limit)."""
        info, loop = self._prepare(prime, length, options, settings)
        _check_held(loop["length"], 1)
        if info.engine == "graph":
            ids = self._graph_ids(1, loop)
        else:
            ids = np.fromiter(
                generate_one(self._step(1), **loop),
                dtype=smallest_dtype(len(self.vocab)),
                count=loop["length"],
            )[None, :]
        return BatchGeneration(info, ids, self.vocab).texts()[0]

    def generate_batch(
        self,
        n: int,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> list[str]:
        """``n`` independent continuations of ``prime``, run as one batch through the model."""
        return self.start_batch(n, prime, length, options=options, **settings).texts()

    def generate_batch_ids(
        self,
        n: int,
        prime: str | None = None,
        length: int | None = None,
        *,
        options: GenerationOptions | None = None,
        **settings: Any,
    ) -> np.ndarray:
        """``generate_batch``'s ids, undecoded and uncut by stop strings: [n, length] in the
        smallest integer type that holds the vocabulary (runtime.vocabulary.smallest_dtype)."""
        return self.start_batch(n, prime, length, options=options, **settings).ids

    def _graph_chunks(self, n: int, loop: dict[str, Any]) -> Iterator[np.ndarray]:
        engine = GraphEngine(
            self._session(n), batch=n, vocab_size=len(self.vocab), width=self.state_width
        )
        return engine.generate(loop["prime_ids"], loop["length"], loop["settings"], loop["seed"])

    def _graph_ids(self, n: int, loop: dict[str, Any]) -> np.ndarray:
        """[n, length] ids from the in-graph engine, in the smallest dtype."""
        out = np.empty((n, loop["length"]), dtype=smallest_dtype(len(self.vocab)))
        position = 0
        for chunk in self._graph_chunks(n, loop):
            out[:, position : position + chunk.shape[1]] = chunk
            position += chunk.shape[1]
        return out

    def _check_batch(self, n: int, length: int) -> None:
        per_row = len(self.vocab) + self.state_width
        if n * per_row > MAX_BATCH_VALUES:
            most = MAX_BATCH_VALUES // per_row
            raise UsageError(
                f"--num-samples {n:,} is more than one batch of this model can hold: a step keeps "
                f"samples x (vocabulary {len(self.vocab)} + state {self.state_width}) values, "
                f"at most {MAX_BATCH_VALUES:,}; use at most {most:,} samples per run"
            )
        _check_held(length, n)

    def _prepare(
        self,
        prime: str | None,
        length: int | None,
        options: GenerationOptions | None,
        settings: dict[str, Any],
    ) -> tuple[Prepared, dict[str, Any]]:
        """Merge and check the options, encode the prime, fix the seed: what runs, and the
        arguments of the generation loop (runtime.generation) but its step."""
        if length is not None:
            settings = {**settings, "length": length}
        options = (options or GenerationOptions()).replace(**settings)
        if options.mode == "window" and self.seq_len is None:
            raise UsageError(
                f"--mode window needs the model's seq_len metadata, which {self.model.path} "
                "lacks; use --mode stateful"
            )
        engine = self._engine(options)
        seed = options.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little")
        prime_ids, fed, skipped = self.encode_prime(prime, options.unknown)
        info = Prepared(seed, fed, tuple(skipped), engine, options.stop)
        return info, {
            "prime_ids": prime_ids,
            "length": options.length,
            "state_width": self.state_width,
            "settings": options.sampling,
            "seed": seed,
            "mode": options.mode,
            "seq_len": self.seq_len,
        }

    def _engine(self, options: GenerationOptions) -> str:
        """ "graph" or "host" for these options and this file."""
        if options.engine == "graph" and not self.model.has_generator:
            raise ModelFileError(
                f"{self.model.path} is a gru-edge/1 file, without the in-graph generator; "
                f"{REEXPORT} to get one, or use --engine host"
            )
        if options.engine == "host" or options.mode == "window" or not self.model.has_generator:
            return "host"
        return "graph"

    def _step(self, batch: int) -> OrtStep:
        # A fresh step per call: it owns the state buffers, so two live streams never share.
        return OrtStep(
            self._session(batch),
            batch=batch,
            state_width=self.state_width,
            vocab_size=len(self.vocab),
        )

    def _session(self, batch: int) -> ort.InferenceSession:
        """The model's session, or, for a large batch on the CPU with no thread count asked
        for, one with as many threads as cores are idle now (runtime.threads). Every thread
        count computes the same bits: only the time changes."""
        if self.model.threads is not None or self.provider != CPU or batch < WIDE_BATCH:
            return self.model.session
        threads = threads_for(batch)
        if threads == 1:
            return self.model.session
        if threads not in self._wide:
            self._wide[threads] = self.model.session_for_threads(threads)
        return self._wide[threads]


def _check_held(length: int, n: int) -> None:
    """Refuse a call that would hold more than MAX_HELD_CHARS generated characters."""
    if length * n > MAX_HELD_CHARS:
        total = f"{n:,} samples x {length:,}" if n > 1 else f"{length:,}"
        raise UsageError(
            f"{total} characters is more than the {MAX_HELD_CHARS:,} that whole texts may hold "
            "in memory; lower --length or --num-samples, or stream one sample "
            "(gru-edge sample -n 1, Generator.stream), which takes any length"
        )
