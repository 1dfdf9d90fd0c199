"""`export --ort`: the ORT format for onnxruntime's minimal (mobile) builds, and the operator
config such a build is compiled with.

The conversion is onnxruntime's own (a session that saves its optimised graph as ORT format),
with the optimisations `python -m onnxruntime.tools.convert_onnx_models_to_ort` applies by
default except two: the NCHWc layout, which would tie the file to x86, and constant folding,
which would store the random stream's 65,536-entry Gumbel table and float32 copies of float16
weights in the file (measured: 676 KB instead of 416 KB for the quickstart-sized model, 677 KB
instead of 246 KB with --weights fp16), for ~4% of speed. Metadata survives in the ORT format,
so the vocabulary and the training facts travel inside the `.ort` as well.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from gru_edge.runtime.files import atomic_path

CONFIG_SUFFIX = ".required_operators.config"


def ort_paths(onnx_path: Path) -> tuple[Path, Path]:
    """The .ort file and the operator config written beside ``onnx_path``."""
    ort_path = onnx_path.with_suffix(".ort")
    return ort_path, ort_path.with_name(ort_path.stem + CONFIG_SUFFIX)


def write_ort(
    onnx_bytes: bytes, ort_path: Path, config_path: Path, check: Callable[[Path], None]
) -> int:
    """Convert ``onnx_bytes`` to ``ort_path`` and write the operators it needs to
    ``config_path``; ``check`` sees the converted file before either is renamed into place.
    Returns the .ort file's size."""
    import logging

    from onnxruntime.tools.ort_format_model import create_config_from_models

    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)  # its INFO names a temp

    with atomic_path(ort_path) as tmp, atomic_path(config_path) as config_tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(tmp)
        options.add_session_config_entry("session.save_model_format", "ORT")
        options.log_severity_level = 4
        ort.InferenceSession(
            onnx_bytes,
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=["NchwcTransformer", "ConstantFolding"],
        )
        check(tmp)
        create_config_from_models([tmp], config_tmp, enable_type_reduction=False)
        # The config names the model it came from: the final name, not the temporary one.
        text = config_tmp.read_text(encoding="utf-8").replace(str(tmp), ort_path.name)
        config_tmp.write_text(text, encoding="utf-8")
        return tmp.stat().st_size
