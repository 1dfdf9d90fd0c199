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
import stat
from collections.abc import Sequence
from dataclasses import dataclass
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
    shown,
)
from gru_edge.runtime.generator_check import check_file_generator
from gru_edge.runtime.onnx_proto import (
    DEFAULT_MAX_METADATA_BYTES,
    MetadataLimitError,
    MetadataLimits,
    ProtoError,
    ProtoFacts,
    inspect_model,
)
from gru_edge.runtime.ort_format import inspect_ort_model, is_ort_format
from gru_edge.runtime.providers import (
    CPU,
    CUDA,
    check_session_providers,
    main_provider,
    resolve_providers,
)
from gru_edge.runtime.vocabulary import Vocabulary

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a GRU(512) over 200 characters is ~5 MB
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
MIN_OPSET = 7  # the oldest ai.onnx opset onnxruntime guarantees; the newest comes from onnxruntime
# What a user gives instead of the .onnx file, by the first bytes: the fix is an export, not a
# re-export. (A run directory's own files, see _directory_error.)
_KERAS_FILES = ((b"PK\x03\x04", "a zip archive"), (b"\x89HDF\r\n\x1a\n", "an HDF5 file"))
_EXPORT_FIRST = "export its run directory to one: gru-edge export RUN_DIR --out model.onnx"


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

    @property
    def state_width(self) -> int:
        """Width of the ``state`` input: layers x units."""
        return self.layers * self.units

    @property
    def provider(self) -> str:
        """The provider that runs the model."""
        return main_provider(self.providers)


def read_model_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read a model file, refusing what is missing, not a file, empty or over ``max_bytes``."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}; check the path") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise _directory_error(path)
    if not stat.S_ISREG(info.st_mode):
        raise ModelFileError(f"{path} is not a regular file; pass an .onnx file")
    if info.st_size == 0:
        raise ModelFileError(f"model file {path} is empty; {REEXPORT}")
    too_big = ModelFileError(
        f"model file {path} is over the {max_bytes:,}-byte limit "
        f"({info.st_size:,} bytes); is it a gru-edge model?"
    )
    if info.st_size > max_bytes:
        raise too_big
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise too_big
    return data


def _directory_error(path: Path) -> ModelFileError:
    """A training run's directory gets the command that makes a model file of it."""
    if (path / "config.json").is_file() and (path / "model.keras").exists():
        return ModelFileError(
            f"{path} is a training run directory, not a model file; export it first: "
            f"gru-edge export {path} --out model.onnx"
        )
    return ModelFileError(f"{path} is a directory; pass the .onnx file inside it")


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
    facts = _inspect(data, path, MetadataLimits(max_bytes=max_metadata_bytes))
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
    )


@functools.cache
def quiet_onnxruntime() -> None:
    """Silence onnxruntime's default logger, once, before the first session: it writes
    coloured lines to stderr from code that session options do not reach (environment and
    allocator set-up, failures during initialization). What matters is checked and reported by
    gru-edge itself, and every onnxruntime error also comes back as an exception."""
    ort.set_default_logger_severity(_FATAL_ONLY)


def _inspect(data: bytes, path: Path, limits: MetadataLimits) -> ProtoFacts:
    """The file's facts from its protobuf (or its FlatBuffers, for the ORT format); refuse what
    is not a model, has external data or too much metadata, or imports no ai.onnx opset or one
    older than onnxruntime supports."""
    for magic, kind in _KERAS_FILES:
        if data.startswith(magic):
            raise ModelFileError(
                f"{path} is a Keras model ({kind}), not an ONNX model; {_EXPORT_FIRST}"
            )
    ort_format = is_ort_format(data)
    try:
        facts = inspect_ort_model(data, limits) if ort_format else inspect_model(data, limits)
    except MetadataLimitError as exc:
        raise ModelFileError(f"{path} {exc}; {REEXPORT}") from None
    except ProtoError as exc:
        kind = "an ORT-format model" if ort_format else "an ONNX model"
        raise ModelFileError(
            f"{path} is not {kind} (truncated or corrupt: {exc}); {REEXPORT}"
        ) from None
    if facts.external_tensors:
        # Names come from the file: quoted and cut, so none can break the one-line message.
        names = ", ".join(shown(name) for name in facts.external_tensors[:3])
        extra = len(facts.external_tensors) - 3
        more = f" and {extra} more" if extra > 0 else ""
        raise ModelFileError(
            f"{path} stores tensors as external data ({names}{more}), which gru-edge refuses "
            f"for files from elsewhere; {REEXPORT} (it writes one self-contained file)"
        )
    if not facts.has_graph:
        raise ModelFileError(f"{path} is not an ONNX model (it holds no graph); {REEXPORT}")
    if facts.opset is None or facts.opset < MIN_OPSET:
        raise _opset_error(path, facts.opset)
    return facts


def _opset_error(path: Path, opset: int | None, message: str = "") -> ModelFileError:
    top = _newest_opset(message)
    runs = f"opsets {MIN_OPSET} to {top}" if top else f"opsets {MIN_OPSET} and up"
    uses = f"uses ai.onnx opset {opset}" if opset is not None else "imports no ai.onnx opset"
    return ModelFileError(
        f"{path} {uses}; this onnxruntime ({ort.__version__}) runs {runs}; "
        f"{REEXPORT} --opset N, with N in that range"
    )


def _newest_opset(message: str) -> int | None:
    """The newest ai.onnx opset this onnxruntime runs: from its refusal if it says, else from
    its operator schemas (~40 ms, so only on the way to a refusal)."""
    said = re.search(r"till opset (\d+)", message)
    if said:
        return int(said.group(1))
    schemas = getattr(ort.capi._pybind_state, "get_all_operator_schema", None)
    if schemas is None:
        return None
    versions = [s.since_version for s in schemas() if s.domain in ("", "ai.onnx")]
    return max(versions, default=None)


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
        top = _newest_opset(message)
        if top is not None and facts.opset > top:
            return _opset_error(path, facts.opset, message)
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
