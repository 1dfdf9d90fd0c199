"""Half-size files: float32 weights stored as float16, with a Cast back to float32 at load.

Inputs and outputs stay float32 (the contract does not change) and every operator still
computes in float32: onnxruntime's CPU GRU has no float16 kernel, so an all-float16 graph
would only add casts. The Casts read initializers alone, so onnxruntime folds them into float32
constants when it loads the file: the speed is the float32 file's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gru_edge.runtime.errors import ExportValidationError

WEIGHTS = ("fp32", "fp16")
FP16_ATOL = 5e-3  # probabilities and states, against Keras: the rounding of 11-bit mantissas
_MIN_ELEMENTS = 16  # small constants (shapes, axes) stay as they are


def store_float16(model: Any) -> int:
    """Store the step graph's float32 weights as float16 in place; return how many."""
    graph = model.graph
    inputs = {value.name for value in graph.input}
    casts, kept, converted = [], [], 0
    for tensor in graph.initializer:
        if (
            tensor.data_type != TensorProto.FLOAT
            or tensor.name in inputs
            or np.prod(tensor.dims, dtype=np.int64) < _MIN_ELEMENTS
        ):
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        with np.errstate(over="ignore"):
            half = values.astype(np.float16)
        if not np.isfinite(half[np.isfinite(values)]).all():
            raise ExportValidationError(
                f"weight {tensor.name!r} holds values beyond float16's range (|x| > 65504, "
                f"largest {np.abs(values).max():.3g}); export it with --weights fp32"
            )
        stored = tensor.name + "_fp16"
        kept.append(numpy_helper.from_array(half, stored))
        casts.append(
            helper.make_node(
                "Cast", [stored], [tensor.name], to=TensorProto.FLOAT, name=f"{tensor.name}_cast"
            )
        )
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return converted
