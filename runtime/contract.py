"""The ONNX contract shared by the exporter (which writes it) and the runtime (which reads it).

inputs:  ids int64 [batch, time], state float32 [batch, units]
outputs: logits float32 [batch, vocab] (after the last position), state_out float32 [batch, units]
metadata_props: ``vocabulary`` = JSON array of one-character strings (index = id), plus the facts
listed in METADATA_KEYS.
"""

from __future__ import annotations

import json

from runtime.errors import ModelFileError

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


def encode_vocabulary(vocab: list[str]) -> str:
    """The vocabulary as stored in metadata: a JSON array, ASCII-escaped so any byte survives."""
    return json.dumps(vocab, ensure_ascii=True)


def parse_vocabulary(raw: str | None, source: str) -> list[str]:
    """Parse and validate a stored vocabulary; raise ModelFileError naming the problem."""
    if raw is None:
        raise ModelFileError(
            f"{source} has no '{META_VOCABULARY}' metadata; re-export it with gru-edge export"
        )
    try:
        vocab = json.loads(raw)
    except ValueError:
        raise ModelFileError(
            f"{source}: '{META_VOCABULARY}' metadata is not JSON ({raw[:40]!r}); "
            "re-export it with gru-edge export"
        ) from None
    if not isinstance(vocab, list) or not vocab:
        raise ModelFileError(
            f"{source}: '{META_VOCABULARY}' must be a non-empty JSON array of characters; "
            "re-export it with gru-edge export"
        )
    for index, char in enumerate(vocab):
        if not isinstance(char, str) or len(char) != 1:
            raise ModelFileError(
                f"{source}: vocabulary entry {index} is {char!r}, not one character; "
                "re-export it with gru-edge export"
            )
    if len(set(vocab)) != len(vocab):
        dupes = sorted({c for c in vocab if vocab.count(c) > 1})
        raise ModelFileError(
            f"{source}: vocabulary repeats {dupes!r}; re-export it with gru-edge export"
        )
    return vocab
