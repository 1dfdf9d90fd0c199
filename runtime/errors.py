"""Domain exceptions. Every message is one line: what is wrong, the offending value, how to fix it.

The library raises these; the CLI prints ``str(error)`` and exits with ``error.exit_code``.
"""

from __future__ import annotations


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
