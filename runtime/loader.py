"""Load an ONNX file that came from elsewhere, refusing anything outside the gru-edge contract.

Every refusal is a ModelFileError with one line: what is wrong, the value, how to fix it. The
file is read once, and everything that can be checked from its bytes is checked before
onnxruntime sees them: no external-data tensors anywhere (onnxruntime would read those from the
current directory even for a model given as bytes), an ai.onnx opset onnxruntime supports, and
the metadata read from the protobuf itself (onnxruntime's map keeps the last of repeated keys
and cannot hold bytes that are not UTF-8). Then the session is built from the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from gru_edge.runtime.contract import (
    REEXPORT,
    TensorSpec,
    check_contract,
    check_format,
    check_metadata,
    read_metadata,
    read_vocabulary,
)
from gru_edge.runtime.errors import (
    DeviceError,
    ModelFileError,
    UsageError,
    onnxruntime_message,
)
from gru_edge.runtime.generator_build import META_GENERATOR, VERSION_1
from gru_edge.runtime.generator_check import check_file_generator
from gru_edge.runtime.model_bytes import (
    DEFAULT_MAX_BYTES,
    MIN_OPSET,
    inspect_file,
    newest_opset,
    opset_error,
    read_model_bytes,
)
from gru_edge.runtime.onnx_proto import (
    DEFAULT_MAX_METADATA_BYTES,
    MetadataLimits,
    ProtoFacts,
)
from gru_edge.runtime.providers import (
    CPU,
    CUDA,
    check_session_providers,
    main_provider,
    resolve_providers,
)
from gru_edge.runtime.vocabulary import Vocabulary

# Each onnxruntime thread reserves its own stack and spins while waiting: 99999 of them took
# 16 GB. 256 is far past any gain for a GRU step and still bounded.
MAX_THREADS = 256
# Intra-op threads when none are asked for. One: a character's work (a GRU(128) step is ~0.1
# MFLOP per row) is too small to split, and onnxruntime's default (a spinning thread per core)
# loses to one thread as soon as anything else runs: `gru-edge bench`'s thread rows on a
# 2-core machine, idle and with every core busy, 1 stream and batch 256 (docs/benchmarks.md).
DEFAULT_THREADS = 1
# onnxruntime's log levels: 3 (ERROR) still prints a coloured line before raising the same error
# as an exception, which gru-edge reports on its one line.
_FATAL_ONLY = 4


@dataclass(frozen=True)
class LoadedModel:
    """A checked model: its session and everything the runtime needs from the file."""

    path: Path
    session: ort.InferenceSession
    vocab: Vocabulary
    units: int  # per GRU layer
    seq_len: int | None  # the training window, from metadata; None if the file lacks it
    metadata: dict[str, str]
    providers: list[str]  # what the session actually uses, best first
    file_size: int
    opset: int | None
    ir_version: int | None
    producer: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    warnings: tuple[str, ...] = ()  # e.g. CUDA offered but not started under --device auto
    layers: int = 1  # stacked GRUs; state holds them side by side, layer 0 first
    has_generator: bool = False  # gru-edge/2: the file generates text itself
    threads: int | None = None  # as asked; None = chosen per call (runtime.threads)
    data: bytes = field(default=b"", repr=False)  # the file as read and checked

    def session_for_threads(self, threads: int) -> ort.InferenceSession:
        """Another CPU session of the same checked bytes, with ``threads`` intra-op threads."""
        return _session(self.data, session_options(threads), [CPU])

    @property
    def state_width(self) -> int:
        """Width of the ``state`` input: layers x units."""
        return self.layers * self.units

    @property
    def takes_row_settings(self) -> bool:
        """Its generator takes every setting per row (version 2 on): what a batching server
        feeds."""
        return self.has_generator and self.metadata.get(META_GENERATOR, VERSION_1) != VERSION_1

    @property
    def provider(self) -> str:
        """The provider that runs the model."""
        return main_provider(self.providers)


def check_threads(threads: int | None) -> None:
    """Raise UsageError unless ``threads`` is None (DEFAULT_THREADS) or 1..MAX_THREADS."""
    if threads is not None and not (
        isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= MAX_THREADS
    ):
        raise UsageError(
            f"--threads must be 1 to {MAX_THREADS}, got {threads!r}; "
            f"omit it for the default ({DEFAULT_THREADS})"
        )


def session_options(threads: int | None) -> ort.SessionOptions:
    """Session options: ``threads`` intra-op threads (None = DEFAULT_THREADS), one
    inter-op thread (the graph is a chain), and onnxruntime's log lines silenced: the warning
    that matters (CUDA fallback) is checked and reported here, and errors come back as
    exceptions."""
    check_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or DEFAULT_THREADS
    options.inter_op_num_threads = 1
    options.log_severity_level = _FATAL_ONLY
    # Pre-packed weights take another matrix kernel for one-row steps than the generator's Scan
    # body (whose weights are never pre-packed): unpacked, a host step computes the same bits
    # as the in-graph generator, so both engines write the same text. (~10% per host step.)
    options.add_session_config_entry("session.disable_prepacking", "1")
    return options


def load_model(
    path: Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    available: Sequence[str] | None = None,
) -> LoadedModel:
    """Read, check and open a gru-edge ONNX file; raise ModelFileError or DeviceError."""
    path = Path(path)
    quiet_onnxruntime()
    options = session_options(threads)
    if available is None:
        available = ort.get_available_providers()
    requested = resolve_providers(device, available)
    data = read_model_bytes(path, max_bytes)
    facts = inspect_file(data, path, MetadataLimits(max_bytes=max_metadata_bytes))
    metadata = read_metadata(facts.metadata, str(path), max_metadata_bytes)
    vocab = read_vocabulary(metadata, str(path))
    # Before onnxruntime sees the graph: a generator that is not gru-edge's is refused, and so
    # is a step holding anything but a step's operators (no Loop, ConstantOfShape, ...).
    check_file_generator(data, metadata, len(vocab), facts.opset or MIN_OPSET, str(path))
    session, warning = _create_session(data, options, requested, device, path, facts)
    providers = list(session.get_providers())
    warning = warning or check_session_providers(device, requested, providers)

    inputs = tuple(_spec(arg) for arg in session.get_inputs())
    outputs = tuple(_spec(arg) for arg in session.get_outputs())
    defaults = tuple(_spec(arg) for arg in session.get_overridable_initializers())
    state_width, width, has_generator = check_contract(inputs, outputs, str(path), defaults)
    check_format(metadata, has_generator, str(path))
    layers, units, seq_len = check_metadata(metadata, vocab, state_width, width, str(path))
    return LoadedModel(
        path=path,
        session=session,
        vocab=vocab,
        units=units,
        layers=layers,
        seq_len=seq_len,
        metadata=metadata,
        providers=providers,
        file_size=len(data),
        opset=facts.opset,
        ir_version=facts.ir_version,
        producer=facts.producer,
        inputs=inputs + defaults,
        outputs=outputs,
        warnings=(warning,) if warning else (),
        has_generator=has_generator,
        threads=threads,
        data=data,
    )


@functools.cache
def quiet_onnxruntime() -> None:
    """Silence onnxruntime's default logger, once, before the first session: it writes
    coloured lines to stderr from code that session options do not reach (environment and
    allocator set-up, failures during initialization). What matters is checked and reported by
    gru-edge itself, and every onnxruntime error also comes back as an exception."""
    ort.set_default_logger_severity(_FATAL_ONLY)


def _load_error(path: Path, message: str, facts: ProtoFacts) -> ModelFileError:
    """onnxruntime's refusal as one line; for an opset or IR version it cannot run, the
    supported range in full (its own message is long and names it last)."""
    ir_top = re.search(r"max supported IR version: (\d+)", message)
    if ir_top:
        return ModelFileError(
            f"{path} has ONNX IR version {facts.ir_version}; this onnxruntime "
            f"({ort.__version__}) reads IR versions up to {ir_top.group(1)}; {REEXPORT}, or "
            "upgrade onnxruntime"
        )
    if "opset" in message.lower() and facts.opset is not None:
        top = newest_opset(message)
        if top is not None and facts.opset > top:
            return opset_error(path, facts.opset, message)
    return ModelFileError(
        f"onnxruntime cannot load {path}: {onnxruntime_message(message)}; {REEXPORT}"
    )


def _create_session(
    data: bytes,
    options: ort.SessionOptions,
    requested: list[str],
    device: str,
    path: Path,
    facts: ProtoFacts,
) -> tuple[ort.InferenceSession, str | None]:
    """The session, and a warning if "auto" had to fall back to the CPU.

    onnxruntime's own fallback is off: it prints to stdout, where the generated text goes.
    """
    try:
        return _session(data, options, requested), None
    except Exception as exc:  # onnxruntime's exceptions derive from Exception only
        message = str(exc)
    reason = onnxruntime_message(message)
    cuda_problem = any(word in message.lower() for word in ("cuda", "cudnn", "cublas"))
    if CUDA not in requested or (device == "cuda" and not cuda_problem):
        raise _load_error(path, message, facts)
    if device == "cuda":
        raise DeviceError(
            f"onnxruntime could not start CUDA for {path}: {reason}; check that the CUDA "
            "and cuDNN libraries match onnxruntime-gpu, or use --device cpu"
        )
    try:  # "auto": the CPU then
        session = _session(data, options, [CPU])
    except Exception as exc:
        raise _load_error(path, str(exc), facts) from None
    return session, f"onnxruntime could not start CUDA ({reason}); using the CPU"


def _session(
    data: bytes, options: ort.SessionOptions, providers: list[str]
) -> ort.InferenceSession:
    return ort.InferenceSession(data, sess_options=options, providers=providers, enable_fallback=0)


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = arg.shape
    return TensorSpec(arg.name, arg.type, None if shape is None else tuple(shape))


def available_providers() -> list[str]:
    """The providers this onnxruntime build offers."""
    return list(ort.get_available_providers())
