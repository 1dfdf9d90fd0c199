"""A model file's bytes and the facts read from them before onnxruntime sees them: a missing,
empty, oversized or wrong kind of file (a Keras file, a run directory) refused with the command
that makes a model of it; external data, too much metadata and unsupported opsets refused."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import onnxruntime as ort

from gru_edge.runtime.contract import REEXPORT
from gru_edge.runtime.errors import ModelFileError, shown
from gru_edge.runtime.onnx_proto import (
    MetadataLimitError,
    MetadataLimits,
    ProtoError,
    ProtoFacts,
    inspect_model,
)
from gru_edge.runtime.ort_format import inspect_ort_model, is_ort_format

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a GRU(512) over 200 characters is ~5 MB
MIN_OPSET = 7  # the oldest ai.onnx opset onnxruntime guarantees; the newest comes from onnxruntime
# What a user gives instead of the .onnx file, by the first bytes: the fix is an export, not a
# re-export. (A run directory's own files, see _directory_error.)
_KERAS_FILES = ((b"PK\x03\x04", "a zip archive"), (b"\x89HDF\r\n\x1a\n", "an HDF5 file"))
_EXPORT_FIRST = "export its run directory to one: gru-edge export RUN_DIR --out model.onnx"


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
            # Asking read() for max_bytes + 1 would reserve that much for every file; the
            # second read sees a file that grew since stat().
            data = handle.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += handle.read(max_bytes + 1 - len(data))
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


def inspect_file(data: bytes, path: Path, limits: MetadataLimits) -> ProtoFacts:
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
        raise opset_error(path, facts.opset)
    return facts


def opset_error(path: Path, opset: int | None, message: str = "") -> ModelFileError:
    top = newest_opset(message)
    runs = f"opsets {MIN_OPSET} to {top}" if top else f"opsets {MIN_OPSET} and up"
    uses = f"uses ai.onnx opset {opset}" if opset is not None else "imports no ai.onnx opset"
    return ModelFileError(
        f"{path} {uses}; this onnxruntime ({ort.__version__}) runs {runs}; "
        f"{REEXPORT} --opset N, with N in that range"
    )


def newest_opset(message: str) -> int | None:
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
