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
from gru_edge.runtime.errors import DeviceError, ModelFileError, UsageError
from gru_edge.runtime.onnx_proto import ProtoError, inspect_model
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
_REEXPORT = "re-export it with gru-edge export"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as onnxruntime reports it."""

    name: str
    type: str  # onnxruntime's spelling, e.g. "tensor(int64)"
    shape: tuple[int | str | None, ...] | None  # str = named dynamic dim, None = unknown

    @property
    def dtype(self) -> str:
        """numpy's name for the element type: tensor(float) -> float32."""
        inner = self.type.removeprefix("tensor(").removesuffix(")")
        return {"float": "float32", "double": "float64", "float16": "float16"}.get(inner, inner)

    def describe(self) -> str:
        """e.g. ``ids int64 [batch, time]``."""
        if self.shape is None:
            return f"{self.name} {self.dtype} [?]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


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
        raise ModelFileError(f"model file {path} is empty; {_REEXPORT}")
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
    try:
        facts = inspect_model(data)
    except ProtoError as exc:
        raise ModelFileError(
            f"{path} is not an ONNX model (truncated or corrupt: {exc}); {_REEXPORT}"
        ) from None
    if facts.external_tensors:
        names = ", ".join(facts.external_tensors[:3])
        extra = len(facts.external_tensors) - 3
        more = f" and {extra} more" if extra > 0 else ""
        raise ModelFileError(
            f"{path} stores tensors as external data ({names}{more}), which gru-edge refuses "
            f"for files from elsewhere; {_REEXPORT} (it writes one self-contained file)"
        )
    session, warning = _create_session(data, options, requested, device, path)
    providers = list(session.get_providers())
    warning = warning or check_session_providers(device, requested, providers)

    metadata = dict(session.get_modelmeta().custom_metadata_map)
    meta_size = sum(len(k) + len(v) for k, v in metadata.items())
    if meta_size > max_metadata_bytes:
        raise ModelFileError(
            f"{path} carries {meta_size:,} characters of metadata, over the "
            f"{max_metadata_bytes:,} limit; {_REEXPORT}"
        )
    vocab = _vocabulary(metadata, path)
    inputs = tuple(_spec(arg) for arg in session.get_inputs())
    outputs = tuple(_spec(arg) for arg in session.get_outputs())
    units, width = check_contract(inputs, outputs, str(path))
    if len(vocab) != width:
        raise ModelFileError(
            f"{path}: the vocabulary has {len(vocab)} characters but logits are {width} wide; "
            f"{_REEXPORT}"
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
        raise ModelFileError(f"onnxruntime cannot load {path}: {message}; {_REEXPORT}")
    if device == "cuda":
        raise DeviceError(
            f"onnxruntime could not start CUDA for {path}: {message}; check that the CUDA "
            "and cuDNN libraries match onnxruntime-gpu, or use --device cpu"
        )
    try:  # "auto": the CPU then
        session = _session(data, options, [CPU])
    except Exception as exc:
        message = _ort_message(exc)
        raise ModelFileError(f"onnxruntime cannot load {path}: {message}; {_REEXPORT}") from None
    return session, f"onnxruntime could not start CUDA ({message}); using the CPU"


def _session(
    data: bytes, options: ort.SessionOptions, providers: list[str]
) -> ort.InferenceSession:
    return ort.InferenceSession(data, sess_options=options, providers=providers, enable_fallback=0)


_EXPECTED = {
    contract.INPUT_IDS: "tensor(int64)",
    contract.INPUT_STATE: "tensor(float)",
    contract.OUTPUT_LOGITS: "tensor(float)",
    contract.OUTPUT_STATE: "tensor(float)",
}


def check_contract(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], source: str
) -> tuple[int, int]:
    """Check names, element types and shapes against the contract; return (units, vocab width)."""
    in_names = sorted(s.name for s in inputs)
    out_names = sorted(s.name for s in outputs)
    if in_names != sorted([contract.INPUT_IDS, contract.INPUT_STATE]) or out_names != sorted(
        [contract.OUTPUT_LOGITS, contract.OUTPUT_STATE]
    ):
        raise ModelFileError(
            f"{source} has inputs {in_names} and outputs {out_names}; the gru-edge contract is "
            f"inputs ['ids', 'state'] and outputs ['logits', 'state_out']; {_REEXPORT}"
        )
    specs = {s.name: s for s in (*inputs, *outputs)}
    for name, expected in _EXPECTED.items():
        spec = specs[name]
        if spec.type != expected:
            want = TensorSpec(name, expected, None).dtype
            raise ModelFileError(
                f"{source}: '{name}' is {spec.dtype}, the contract says {want}; {_REEXPORT}"
            )
        if spec.shape is None or len(spec.shape) != 2:
            raise ModelFileError(
                f"{source}: '{name}' has shape {_shape(spec)}, the contract says rank 2; "
                f"{_REEXPORT}"
            )
    for name, axis in (("ids", 0), ("ids", 1), ("state", 0), ("logits", 0), ("state_out", 0)):
        if isinstance(specs[name].shape[axis], int):
            what = "batch" if axis == 0 else "time"
            raise ModelFileError(
                f"{source}: '{name}' has a fixed {what} size {specs[name].shape[axis]} "
                f"({_shape(specs[name])}); the contract needs it dynamic; {_REEXPORT}"
            )
    units = specs["state"].shape[1]
    width = specs["logits"].shape[1]
    for name, value in (("state", units), ("logits", width)):
        if not (isinstance(value, int) and value > 0):
            raise ModelFileError(
                f"{source}: '{name}' has shape {_shape(specs[name])}; the contract needs a "
                f"fixed width in the second dimension; {_REEXPORT}"
            )
    if specs["state_out"].shape[1] != units:
        raise ModelFileError(
            f"{source}: 'state' is {units} wide but 'state_out' is "
            f"{specs['state_out'].shape[1]}; the contract needs them equal; {_REEXPORT}"
        )
    return units, width


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = arg.shape
    return TensorSpec(arg.name, arg.type, None if shape is None else tuple(shape))


def _shape(spec: TensorSpec) -> str:
    return spec.describe().split(" ", 2)[2]


def _vocabulary(metadata: dict[str, str], path: Path) -> Vocabulary:
    raw = metadata.get(contract.META_VOCABULARY)
    if raw is None:
        raise ModelFileError(f"{path} has no '{contract.META_VOCABULARY}' metadata; {_REEXPORT}")
    try:
        return Vocabulary.from_json(raw)
    except VocabularyError as exc:
        raise ModelFileError(f"{path}: {exc}; {_REEXPORT}") from None


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
            f"{path}: '{key}' metadata is {raw[:40]!r}, expected {want}; {_REEXPORT}"
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
