"""gru-edge: train a character-level GRU, export it to ONNX, sample it anywhere."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Generator", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import gru_edge` (and the CLI's start-up) does not load onnxruntime.
    if name == "Generator":
        from runtime.generator import Generator

        return Generator
    raise AttributeError(f"module 'gru_edge' has no attribute {name!r}")
