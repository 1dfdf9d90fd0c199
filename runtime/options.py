"""Generation options: one frozen object, validated once, passed whole from the CLI to the loop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.randomness import MAX_SEED
from gru_edge.runtime.sampler import SamplingSettings
from gru_edge.runtime.stops import check_stops

Mode = Literal["stateful", "window"]
Unknown = Literal["error", "skip"]
Engine = Literal["auto", "graph", "host"]
MODES: tuple[str, ...] = ("stateful", "window")
UNKNOWN_POLICIES: tuple[str, ...] = ("error", "skip")
ENGINES: tuple[str, ...] = ("auto", "graph", "host")


@dataclass(frozen=True)
class GenerationOptions:
    """How much text to generate and how to pick each character."""

    length: int = 400  # characters to generate; 0 = none (the CLI prints the prime alone)
    temperature: float = 1.0  # 0 = greedy argmax; the notebook called it "diversity"
    top_k: int | None = None  # keep only the k likeliest characters
    top_p: float | None = None  # keep the likeliest characters whose odds add up to p
    seed: int | None = None  # None: drawn for each call and reported in its Generation
    mode: Mode = "stateful"  # stateful: carry the GRU state; window: the notebook's re-feeding
    unknown: Unknown = "error"  # prime characters outside the vocabulary: refuse, or skip
    # graph: the model file's own generator (gru-edge/2), a chunk per onnxruntime call; host:
    # a Python loop stepping the file; auto: graph when the file has one and mode is stateful.
    # Both write the same text for the same seed.
    engine: Engine = "auto"
    # The text ends before the first of these (runtime.stops); normalised like the prime.
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stop, str) or not isinstance(self.stop, (tuple, list)):
            raise UsageError(f"--stop takes a list of strings, got {self.stop!r}")
        object.__setattr__(self, "stop", check_stops(self.stop))
        if not (_is_int(self.length) and self.length >= 0):
            raise UsageError(f"--length must be a whole number >= 0, got {self.length!r}")
        if self.mode not in MODES:
            raise UsageError(f"--mode must be 'stateful' or 'window', got {self.mode!r}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise UsageError(f"--unknown must be 'error' or 'skip', got {self.unknown!r}")
        if self.seed is not None and not (_is_int(self.seed) and 0 <= self.seed <= MAX_SEED):
            raise UsageError(
                f"--seed must be a whole number >= 0 and below 2**63, got {self.seed!r}"
            )
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be 'auto', 'graph' or 'host', got {self.engine!r}")
        if self.engine == "graph" and self.mode == "window":
            raise UsageError(
                "--mode window runs on the host loop (the in-graph generator is stateful); "
                "use --engine host or auto, or --mode stateful"
            )
        self.sampling  # noqa: B018  # validates temperature, top-k and top-p

    @property
    def sampling(self) -> SamplingSettings:
        """The part the sampler needs."""
        return SamplingSettings(self.temperature, self.top_k, self.top_p)

    def replace(self, **changes: Any) -> GenerationOptions:
        """A copy with ``changes`` applied (and validated); an unknown name is a UsageError."""
        names = {f.name for f in dataclasses.fields(self)}
        wrong = sorted(set(changes) - names)
        if wrong:
            raise UsageError(
                f"unknown generation option(s) {', '.join(wrong)}; "
                f"the options are {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        settings["stop"] = list(self.stop)
        return settings


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
