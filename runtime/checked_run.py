"""Model calls whose failures and results are checked: an onnxruntime error while a model runs
(a Reshape that cannot reshape, memory it cannot get) becomes one ModelFileError line, and what
a call returns must have the contract's shape, with ids in the vocabulary, before any of it is
used. Both engines (runtime.ingraph, runtime.ortstep) go through here."""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.runtime.contract import REEXPORT
from gru_edge.runtime.errors import GruEdgeError, ModelFileError, onnxruntime_message


def run_failed(exc: Exception) -> ModelFileError:
    """onnxruntime's run-time error as one line."""
    return ModelFileError(
        f"onnxruntime failed while running the model: {onnxruntime_message(str(exc))}; {REEXPORT}"
    )


def run(session: Any, outputs: list[str], feeds: dict[str, Any]) -> list[np.ndarray]:
    """``session.run``, with its errors as run_failed."""
    try:
        return session.run(outputs, feeds)
    except GruEdgeError:  # raised by a signal handler as the call returned (files.signals_raise)
        raise
    except Exception as exc:  # onnxruntime's exceptions derive from Exception only
        raise run_failed(exc) from None


def check_shape(name: str, value: np.ndarray, shape: tuple[int, ...], dtype: Any) -> None:
    """Refuse an output of another shape or element type than the contract's."""
    if value.shape != shape or value.dtype != dtype:
        raise ModelFileError(
            f"the model's {name} output is {value.dtype} {list(value.shape)}, where the contract "
            f"asks for {np.dtype(dtype)} {list(shape)}; {REEXPORT}"
        )


def check_ids(value: np.ndarray, vocab_size: int) -> None:
    """Refuse generated ids outside the vocabulary (0 to vocab_size - 1)."""
    if value.size and (value.min() < 0 or value.max() >= vocab_size):
        bad = value.min() if value.min() < 0 else value.max()
        raise ModelFileError(
            f"the model's generator returned id {int(bad)}, outside its vocabulary of "
            f"{vocab_size} characters (0 to {vocab_size - 1}); {REEXPORT}"
        )
