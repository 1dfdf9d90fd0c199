"""Keras stepper -> ONNX ModelProto with tf2onnx, then the contract's names and metadata."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from gru_edge.runtime.contract import (
    FORMAT,
    FORMAT_STEP_ONLY,
    INPUT_IDS,
    INPUT_STATE,
    META_VOCABULARY,
    OUTPUT_LOGITS,
    OUTPUT_STATE,
)
from gru_edge.runtime.errors import ExportValidationError
from gru_edge.runtime.generator_build import META_GENERATOR
from gru_edge.runtime.version import __version__
from gru_edge.runtime.vocabulary import Vocabulary
from gru_edge.trainer.tf_env import load_tf

# tf2onnx turns a Keras 3 GRU into these; the contract needs the fused GRU op (see trainer/tf_env).
SLOW_OPS = {"Loop", "Scan"}
# onnxruntime implements the ONNX GRU op from version 7: files at opset 1-6 convert, then fail
# to load (measured with onnxruntime 1.32 at opsets 1 and 5).
MIN_OPSET = 7


def supported_opsets() -> tuple[int, int]:
    """The opsets an export can produce: (MIN_OPSET, the highest tf2onnx knows)."""
    load_tf("gru-edge export")
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    return MIN_OPSET, max(OPSET_TO_IR_VERSION)


def convert(stepper: Any, opset: int) -> Any:
    """Convert the Keras stepper (ids, state) -> (logits, state_out) to an ONNX ModelProto."""
    tf, _ = load_tf("gru-edge export")
    import tf2onnx

    state_width = int(stepper.inputs[1].shape[-1])
    signature = [
        tf.TensorSpec([None, None], tf.int64, name=INPUT_IDS),
        tf.TensorSpec([None, state_width], tf.float32, name=INPUT_STATE),
    ]

    @tf.function(input_signature=signature)
    def step(ids, state):
        logits, state_out = stepper([ids, state], training=False)
        return {OUTPUT_LOGITS: logits, OUTPUT_STATE: state_out}

    model_proto, _ = tf2onnx.convert.from_function(step, input_signature=signature, opset=opset)
    _name_dynamic_dims(model_proto)
    ops = {node.op_type for node in model_proto.graph.node}
    if "GRU" not in ops or ops & SLOW_OPS:
        raise ExportValidationError(
            f"tf2onnx did not produce one fused GRU op (ops: {sorted(ops)}); "
            "train with the [train] extra's tf-keras, not Keras 3"
        )
    return model_proto


def _name_dynamic_dims(model_proto: Any) -> None:
    """tf2onnx calls the dynamic dims unk__N; the contract calls them batch and time."""
    for value in [*model_proto.graph.input, *model_proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if value.name == INPUT_IDS:
            dims[1].dim_param = "time"


def set_metadata(
    model_proto: Any,
    run_info: dict[str, Any],
    vocab: Vocabulary,
    opset: int,
    *,
    generator: bool = True,
    weights: str = "fp32",
) -> dict:
    """Write the contract's metadata_props (tf2onnx has no API for custom metadata), keeping
    the generator's version that exporter.generator_graph wrote; ``generator``: the file
    carries gru-edge/2's in-graph generator."""
    tf, keras = load_tf()
    import tf2onnx

    config = run_info["config"]
    best_loss = run_info.get("best_val_loss")
    metadata = {
        "format": FORMAT if generator else FORMAT_STEP_ONLY,
        "units": config["units"],
        # Only a stacked model says so: a one-layer file keeps gru-edge/1's keys exactly, and
        # a reader that knows `layers` takes its absence as 1.
        **({"layers": config["layers"]} if config.get("layers", 1) > 1 else {}),
        "seq_len": config["seq_len"],
        "vocab_size": len(vocab),
        "text_policy": run_info["text_policy"],
        "corpus_sha256": run_info["corpus"]["sha256"],
        "corpus_chars": run_info["corpus"]["chars"],
        "epochs_trained": run_info.get("epochs_completed"),
        "best_epoch": run_info.get("best_epoch"),
        "best_val_loss": best_loss,
        "best_val_bpc": run_info.get("best_val_bpc"),
        "gru_edge_version": __version__,
        "tensorflow_version": tf.__version__,
        "tf_keras_version": keras.__version__,
        "tf2onnx_version": tf2onnx.__version__,
        "opset": opset,
        "weights": {"fp32": "float32", "fp16": "float16"}[weights],
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    }
    stored = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    stored[META_VOCABULARY] = vocab.to_json()
    stored.update((p.key, p.value) for p in model_proto.metadata_props if p.key == META_GENERATOR)
    del model_proto.metadata_props[:]
    for key, value in stored.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value
    model_proto.producer_version = tf2onnx.__version__  # tf2onnx appends its git hash, "None"
    model_proto.doc_string = (
        "gru-edge character-level GRU: ids int64 [batch, time] + state float32 [batch, "
        f"{'layers * ' if config.get('layers', 1) > 1 else ''}units] -> "
        "logits float32 [batch, vocab] + state_out"
        + (
            "; generator: steps, temperature, top_k, top_p, seed, offset -> generated, "
            "gen_state, logit_sums"
            if generator
            else ""
        )
        + "; vocabulary in metadata_props"
    )
    return stored
