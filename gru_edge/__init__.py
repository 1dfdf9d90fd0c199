"""gru-edge: train a character-level GRU, export it to ONNX, sample it anywhere.

The public API::

    from gru_edge import Generator, GenerationOptions, GruEdgeError

``Generator`` and ``GenerationOptions`` load lazily, so ``import gru_edge`` (and the CLI's
start-up) does not import onnxruntime or numpy.
"""

from typing import Any

from gru_edge.runtime.errors import (
    CorpusError,
    DeviceError,
    ExportValidationError,
    GruEdgeError,
    MissingExtraError,
    ModelFileError,
    PrimeError,
    RunDirError,
    TrainingInterrupted,
    UsageError,
)
from gru_edge.runtime.version import __version__

__all__ = [
    "CorpusError",
    "DeviceError",
    "ExportValidationError",
    "GenerationOptions",
    "Generator",
    "GruEdgeError",
    "MissingExtraError",
    "ModelFileError",
    "PrimeError",
    "RunDirError",
    "TrainingInterrupted",
    "UsageError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "Generator":
        from gru_edge.runtime.generator import Generator

        return Generator
    if name == "GenerationOptions":
        from gru_edge.runtime.options import GenerationOptions

        return GenerationOptions
    raise AttributeError(f"module 'gru_edge' has no attribute {name!r}")
