"""The ONNX contract shared by the exporter (which writes it) and the runtime (which reads it).

inputs:  ids int64 [batch, time], state float32 [batch, units]
outputs: logits float32 [batch, vocab] (after the last position), state_out float32 [batch, units]
metadata_props: ``vocabulary`` = JSON array of one-character strings (index = id), plus the facts
listed in METADATA_KEYS. The vocabulary's JSON form is runtime.vocabulary's.
"""

from __future__ import annotations

INPUT_IDS = "ids"
INPUT_STATE = "state"
OUTPUT_LOGITS = "logits"
OUTPUT_STATE = "state_out"

META_VOCABULARY = "vocabulary"
# Every metadata key the exporter writes, in the order `gru-edge info` shows them.
METADATA_KEYS = (
    "format",  # "gru-edge/1": the version of this contract
    "units",  # GRU units = width of state
    "seq_len",  # training window; window mode re-feeds this many characters
    "vocab_size",
    "text_policy",  # normalisation applied to training text and primes
    "corpus_sha256",  # of the normalised training text
    "corpus_chars",
    "epochs_trained",
    "best_epoch",
    "best_val_loss",  # nats per character
    "best_val_bpc",  # bits per character on the held-out text
    "gru_edge_version",
    "tensorflow_version",
    "tf_keras_version",
    "tf2onnx_version",
    "opset",
    "created",  # UTC, ISO 8601
    META_VOCABULARY,
)
FORMAT = "gru-edge/1"
