"""Domain exceptions. Every message is one line: what is wrong, the offending value, how to fix it.

The library raises these; the CLI prints ``str(error)`` and exits with ``error.exit_code``.
"""

from __future__ import annotations

import re
from typing import Any


class GruEdgeError(Exception):
    """A problem the user can fix; ``str()`` is the whole message."""

    exit_code = 1


class UsageError(GruEdgeError):
    """An option value that makes no sense."""

    exit_code = 2


class CorpusError(GruEdgeError):
    """The training text cannot be used."""


class RunDirError(GruEdgeError):
    """A run directory is missing, incomplete, or belongs to another run."""


class ModelFileError(GruEdgeError):
    """An ONNX file that is missing, malformed, or breaks the gru-edge contract."""


class PrimeError(GruEdgeError):
    """A prime that cannot be encoded with the model's vocabulary."""


class DeviceError(GruEdgeError):
    """The requested execution provider is not available."""


class MissingExtraError(GruEdgeError):
    """A command needs an optional dependency group that is not installed."""


class ExportValidationError(GruEdgeError):
    """The ONNX model does not compute what the Keras model computes."""


class TrainingInterrupted(GruEdgeError):
    """Training stopped by Ctrl-C; the last completed epoch is saved."""

    exit_code = 130


def missing_train_extra(what: str) -> MissingExtraError:
    """The error for a TensorFlow-backed command on a bare (edge) install."""
    return MissingExtraError(
        f"{what} needs TensorFlow, which this install lacks; "
        "install the training extra: pip install 'gru-edge[train]'"
    )


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: a value from a file, quoted so that no
    character of it (a newline, an escape) can break a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SOURCE_LOCATION = re.compile(r"(?<!\S)\S+\.(?:h|hpp|cc|cpp|c):\d+ ")
_SIGNATURE_START = re.compile(r"(?:[^\s(]+ ){0,3}[\w:~<>]*::[\w~]+\(")  # [type ]ns::name(


def onnxruntime_message(message: str) -> str:
    """onnxruntime's message on one line, without its '[ONNXRuntimeError] : 7 : CODE :' prefix
    and the C++ source location and function signature that often come before the words."""
    text = " ".join(message.split())
    if text.startswith("[ONNXRuntimeError]"):
        text = text.split(" : ", 3)[-1]
    location = _SOURCE_LOCATION.search(text)
    if location:
        text = text[: location.start()] + _after_signature(text[location.end() :])
    if len(text) > 300:
        text = text[:297] + "..."
    return text or "no message"


def _after_signature(text: str) -> str:
    """What follows a leading C++ signature ``[type ]ns::name(arguments)[ const]``."""
    start = _SIGNATURE_START.match(text)
    if not start:
        return text
    depth = 0
    for index in range(start.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            rest = text[index + 1 :].strip().removeprefix("const ").strip()
            return rest or text
    return text
