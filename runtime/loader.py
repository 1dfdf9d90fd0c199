"""Load an ONNX file that came from elsewhere, refusing anything outside the gru-edge contract.

Every refusal is a ModelFileError with one line: what is wrong, the value, how to fix it. The
session is built from the bytes read here, after checking they hold no external-data tensors:
onnxruntime would otherwise read those from the current directory.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from gru_edge.runtime import contract
from gru_edge.runtime.contract import REEXPORT, TensorSpec, check_contract
from gru_edge.runtime.errors import DeviceError, ModelFileError, UsageError
from gru_edge.runtime.onnx_proto import ProtoError, ProtoFacts, inspect_model
from gru_edge.runtime.providers import (
    CPU,
    CUDA,
    check_session_providers,
    main_provider,
    resolve_providers,
)
from gru_edge.runtime.vocabulary import Vocabulary, VocabularyError

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a GRU(512) over 200 characters is ~5 MB
DEFAULT_MAX_METADATA_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LoadedModel:
    """A checked model: its session and everything the runtime needs from the file."""

    path: Path
    session: ort.InferenceSession
    vocab: Vocabulary
    units: int
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
        raise ModelFileError(f"{path} is a directory; pass the .onnx file inside it")
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


def session_options(threads: int | None) -> ort.SessionOptions:
    """Session options: ``threads`` intra-op threads (None = onnxruntime's default), one
    inter-op thread (the graph is a chain), and onnxruntime's warnings silenced because the
    one that matters (CUDA fallback) is checked and reported here."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads must be at least 1, got {threads!r}; omit it for the default")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
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
    options = session_options(threads)
    if available is None:
        available = ort.get_available_providers()
    requested = resolve_providers(device, available)
    data = read_model_bytes(path, max_bytes)
    facts = _inspect(data, path)
    session, warning = _create_session(data, options, requested, device, path)
    providers = list(session.get_providers())
    warning = warning or check_session_providers(device, requested, providers)

    metadata = _metadata(session, path, max_metadata_bytes)
    vocab = _vocabulary(metadata, path)
    inputs = tuple(_spec(arg) for arg in session.get_inputs())
    outputs = tuple(_spec(arg) for arg in session.get_outputs())
    units, width = check_contract(inputs, outputs, str(path))
    if len(vocab) != width:
        raise ModelFileError(
            f"{path}: the vocabulary has {len(vocab)} characters but logits are {width} wide; "
            f"{REEXPORT}"
        )
    _check_int_meta(metadata, "units", units, path)
    _check_int_meta(metadata, "vocab_size", len(vocab), path)
    seq_len = _check_int_meta(metadata, "seq_len", None, path)
    return LoadedModel(
        path=path,
        session=session,
        vocab=vocab,
        units=units,
        seq_len=seq_len,
        metadata=metadata,
        providers=providers,
        file_size=len(data),
        opset=facts.opset,
        ir_version=facts.ir_version,
        producer=facts.producer,
        inputs=inputs,
        outputs=outputs,
        warnings=(warning,) if warning else (),
    )


def _inspect(data: bytes, path: Path) -> ProtoFacts:
    """The file's facts from its protobuf; refuse what is not ONNX or has external data."""
    try:
        facts = inspect_model(data)
    except ProtoError as exc:
        raise ModelFileError(
            f"{path} is not an ONNX model (truncated or corrupt: {exc}); {REEXPORT}"
        ) from None
    if facts.external_tensors:
        names = ", ".join(facts.external_tensors[:3])
        extra = len(facts.external_tensors) - 3
        more = f" and {extra} more" if extra > 0 else ""
        raise ModelFileError(
            f"{path} stores tensors as external data ({names}{more}), which gru-edge refuses "
            f"for files from elsewhere; {REEXPORT} (it writes one self-contained file)"
        )
    return facts


def _metadata(session: ort.InferenceSession, path: Path, max_bytes: int) -> dict[str, str]:
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > max_bytes:
        raise ModelFileError(
            f"{path} carries {size:,} characters of metadata, over the "
            f"{max_bytes:,} limit; {REEXPORT}"
        )
    return metadata


def _create_session(
    data: bytes, options: ort.SessionOptions, requested: list[str], device: str, path: Path
) -> tuple[ort.InferenceSession, str | None]:
    """The session, and a warning if "auto" had to fall back to the CPU.

    onnxruntime's own fallback is off: it prints to stdout, where the generated text goes.
    """
    try:
        return _session(data, options, requested), None
    except Exception as exc:  # onnxruntime's exceptions derive from Exception only
        message = _ort_message(exc)
    cuda_problem = any(word in message.lower() for word in ("cuda", "cudnn", "cublas"))
    if CUDA not in requested or (device == "cuda" and not cuda_problem):
        raise ModelFileError(f"onnxruntime cannot load {path}: {message}; {REEXPORT}")
    if device == "cuda":
        raise DeviceError(
            f"onnxruntime could not start CUDA for {path}: {message}; check that the CUDA "
            "and cuDNN libraries match onnxruntime-gpu, or use --device cpu"
        )
    try:  # "auto": the CPU then
        session = _session(data, options, [CPU])
    except Exception as exc:
        message = _ort_message(exc)
        raise ModelFileError(f"onnxruntime cannot load {path}: {message}; {REEXPORT}") from None
    return session, f"onnxruntime could not start CUDA ({message}); using the CPU"


def _session(
    data: bytes, options: ort.SessionOptions, providers: list[str]
) -> ort.InferenceSession:
    return ort.InferenceSession(data, sess_options=options, providers=providers, enable_fallback=0)


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = arg.shape
    return TensorSpec(arg.name, arg.type, None if shape is None else tuple(shape))


def _vocabulary(metadata: dict[str, str], path: Path) -> Vocabulary:
    raw = metadata.get(contract.META_VOCABULARY)
    if raw is None:
        raise ModelFileError(f"{path} has no '{contract.META_VOCABULARY}' metadata; {REEXPORT}")
    try:
        return Vocabulary.from_json(raw)
    except VocabularyError as exc:
        raise ModelFileError(f"{path}: {exc}; {REEXPORT}") from None


def _check_int_meta(
    metadata: dict[str, str], key: str, expected: int | None, path: Path
) -> int | None:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (expected is not None and value != expected):
        want = f"{expected}" if expected is not None else "a positive integer"
        raise ModelFileError(
            f"{path}: '{key}' metadata is {raw[:40]!r}, expected {want}; {REEXPORT}"
        )
    return value


def _ort_message(exc: Exception) -> str:
    """onnxruntime's message on one line, without its '[ONNXRuntimeError] : 7 : CODE :' prefix."""
    text = " ".join(str(exc).split())
    if text.startswith("[ONNXRuntimeError]"):
        text = text.split(" : ", 3)[-1]
    if len(text) > 300:
        text = text[:297] + "..."
    return text or type(exc).__name__


def available_providers() -> list[str]:
    """The providers this onnxruntime build offers."""
    return list(ort.get_available_providers())
