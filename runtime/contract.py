"""The ONNX contract shared by the exporter (which writes it) and the runtime (which reads it).

inputs:  ids int64 [batch, time], state float32 [batch, layers * units]
outputs: logits float32 [batch, vocab] (after the last position), state_out float32 [batch,
         layers * units]
gru-edge/2 adds the generator (runtime.generator_build): inputs with defaults steps,
temperature, top_k, top_p, seed, offset; outputs generated, gen_state, logit_sums. A client of
gru-edge/1 feeds and reads exactly what it did before.
metadata_props: ``vocabulary`` = JSON array of one-character strings (index = id), plus the facts
listed in METADATA_KEYS. The vocabulary's JSON form is runtime.vocabulary's.

Stacked GRUs (``layers`` > 1) keep the one ``state``: the layers' states side by side, layer 0
(the one reading the characters) first, so layer i is ``state[:, i * units:(i + 1) * units]``.
Only such a file carries ``layers`` metadata; without it a file has one layer and ``state`` is
``units`` wide, exactly as before stacking existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gru_edge.runtime.errors import ModelFileError, shown
from gru_edge.runtime.vocabulary import Vocabulary, VocabularyError

INPUT_IDS = "ids"
INPUT_STATE = "state"
OUTPUT_LOGITS = "logits"
OUTPUT_STATE = "state_out"
# gru-edge/2's generator: inputs that have defaults, and its outputs.
INPUT_STEPS = "steps"
INPUT_TEMPERATURE = "temperature"
INPUT_TOP_K = "top_k"
INPUT_TOP_P = "top_p"
INPUT_SEED = "seed"
INPUT_OFFSET = "offset"
# Generator version 2: each setting per row, int64/float32 [rows]; empty (the default) = the
# scalar above for every row. Only a batching caller feeds them.
INPUT_ROW_TEMPERATURE = "row_temperature"
INPUT_ROW_TOP_K = "row_top_k"
INPUT_ROW_TOP_P = "row_top_p"
INPUT_ROW_SEED = "row_seed"
INPUT_ROW_OFFSET = "row_offset"
ROW_INPUTS = {
    INPUT_ROW_TEMPERATURE: INPUT_TEMPERATURE,
    INPUT_ROW_TOP_K: INPUT_TOP_K,
    INPUT_ROW_TOP_P: INPUT_TOP_P,
    INPUT_ROW_SEED: INPUT_SEED,
    INPUT_ROW_OFFSET: INPUT_OFFSET,
}
OUTPUT_GENERATED = "generated"
OUTPUT_GEN_STATE = "gen_state"
OUTPUT_LOGIT_SUMS = "logit_sums"
GENERATOR_INPUTS = {
    INPUT_STEPS: "tensor(int64)",
    INPUT_TEMPERATURE: "tensor(float)",
    INPUT_TOP_K: "tensor(int64)",
    INPUT_TOP_P: "tensor(float)",
    INPUT_SEED: "tensor(int64)",
    INPUT_OFFSET: "tensor(int64)",
}
GENERATOR_OUTPUTS = {
    OUTPUT_GENERATED: "tensor(int64)",
    OUTPUT_GEN_STATE: "tensor(float)",
    OUTPUT_LOGIT_SUMS: "tensor(float)",
}

META_VOCABULARY = "vocabulary"
# Every metadata key the exporter writes, in the order `gru-edge info` shows them.
METADATA_KEYS = (
    "format",  # "gru-edge/2" (with the generator) or "gru-edge/1": this contract's version
    "units",  # GRU units per layer; width of state = layers * units
    "layers",  # stacked GRUs; written only when more than 1
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
    "weights",  # how the weights are stored: float32, or float16 (computed in float32)
    "created",  # UTC, ISO 8601
    META_VOCABULARY,
)
FORMAT = "gru-edge/2"
FORMAT_STEP_ONLY = "gru-edge/1"  # older files, and exports below opset 18: no generator
FORMATS = (FORMAT_STEP_ONLY, FORMAT)
REEXPORT = "re-export it with gru-edge export"  # the fix for a file that breaks the contract


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as onnxruntime reports it."""

    name: str
    type: str  # onnxruntime's spelling, e.g. "tensor(int64)"
    shape: tuple[int | str | None, ...] | None  # str = named dynamic dim, None = unknown

    @property
    def dtype(self) -> str:
        """numpy's name for the element type: tensor(float) -> float32."""
        inner = self.type.removeprefix("tensor(").removesuffix(")")
        return {"float": "float32", "double": "float64", "float16": "float16"}.get(inner, inner)

    def describe(self) -> str:
        """e.g. ``ids int64 [batch, time]``."""
        if self.shape is None:
            return f"{self.name} {self.dtype} [?]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


_EXPECTED = {
    INPUT_IDS: "tensor(int64)",
    INPUT_STATE: "tensor(float)",
    OUTPUT_LOGITS: "tensor(float)",
    OUTPUT_STATE: "tensor(float)",
}


def check_contract(
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    source: str,
    defaults: Sequence[TensorSpec] = (),
) -> tuple[int, int, bool]:
    """Check names, element types and shapes against the contract; return (width of state,
    width of logits, whether the file carries gru-edge/2's generator). ``defaults`` are the
    inputs that have a default value (onnxruntime's overridable initializers)."""
    in_names = sorted(s.name for s in inputs)
    out_names = sorted(s.name for s in outputs)
    step_outputs = sorted([OUTPUT_LOGITS, OUTPUT_STATE])
    has_generator = bool(set(out_names) & set(GENERATOR_OUTPUTS))
    expected_outputs = sorted([*step_outputs, *GENERATOR_OUTPUTS]) if has_generator else None
    if in_names != sorted([INPUT_IDS, INPUT_STATE]) or out_names not in (
        step_outputs,
        expected_outputs,
    ):
        raise ModelFileError(
            f"{source} has inputs {in_names} and outputs {_listed(out_names)}; the gru-edge "
            "contract is inputs ['ids', 'state'] and outputs ['logits', 'state_out'] (plus "
            f"{_listed(sorted(GENERATOR_OUTPUTS))} for the generator); {REEXPORT}"
        )
    specs = {s.name: s for s in (*inputs, *outputs)}
    for name, expected in _EXPECTED.items():
        spec = specs[name]
        if spec.type != expected:
            want = TensorSpec(name, expected, None).dtype
            raise ModelFileError(
                f"{source}: '{name}' is {spec.dtype}, the contract says {want}; {REEXPORT}"
            )
        if spec.shape is None or len(spec.shape) != 2:
            raise ModelFileError(
                f"{source}: '{name}' has shape {_shape(spec)}, the contract says rank 2; {REEXPORT}"
            )
    for name, axis in (("ids", 0), ("ids", 1), ("state", 0), ("logits", 0), ("state_out", 0)):
        if isinstance(specs[name].shape[axis], int):
            what = "batch" if axis == 0 else "time"
            raise ModelFileError(
                f"{source}: '{name}' has a fixed {what} size {specs[name].shape[axis]} "
                f"({_shape(specs[name])}); the contract needs it dynamic; {REEXPORT}"
            )
    state_width = specs["state"].shape[1]
    width = specs["logits"].shape[1]
    for name, value in (("state", state_width), ("logits", width)):
        if not (isinstance(value, int) and value > 0):
            raise ModelFileError(
                f"{source}: '{name}' has shape {_shape(specs[name])}; the contract needs a "
                f"fixed width in the second dimension; {REEXPORT}"
            )
    if specs["state_out"].shape[1] != state_width:
        raise ModelFileError(
            f"{source}: 'state' is {state_width} wide but 'state_out' is "
            f"{specs['state_out'].shape[1]}; the contract needs them equal; {REEXPORT}"
        )
    if has_generator:
        _check_generator(specs, {s.name: s for s in defaults}, source)
    return state_width, width, has_generator


def _check_generator(
    specs: dict[str, TensorSpec], defaults: dict[str, TensorSpec], source: str
) -> None:
    """The generator's inputs must all have defaults, and its inputs and outputs their types."""
    missing = [name for name in GENERATOR_INPUTS if name not in defaults]
    if missing:
        raise ModelFileError(
            f"{source} has the generator's outputs but not its input(s) {_listed(missing)} "
            f"with defaults, so its generator graph is malformed; {REEXPORT}"
        )
    for name, expected in (*GENERATOR_INPUTS.items(), *GENERATOR_OUTPUTS.items()):
        spec = defaults.get(name) or specs[name]
        if spec.type != expected:
            want = TensorSpec(name, expected, None).dtype
            raise ModelFileError(
                f"{source}: the generator's '{name}' is {spec.dtype}, the contract says {want}; "
                f"{REEXPORT}"
            )


def check_format(metadata: dict[str, str], has_generator: bool, source: str) -> None:
    """The ``format`` metadata must agree with the graph: gru-edge/2 files generate."""
    declared = metadata.get("format")
    if declared is None:
        return  # files from before the key existed: the graph says what they are
    if declared not in FORMATS:
        raise ModelFileError(
            f"{source} says format {shown(declared)}; this gru-edge reads "
            f"{' and '.join(FORMATS)} files; {REEXPORT}, or upgrade gru-edge"
        )
    if (declared == FORMAT) != has_generator:
        has = "has" if has_generator else "lacks"
        raise ModelFileError(
            f"{source} says format {declared!r} but {has} the in-graph generator, so its "
            f"generator graph is missing or malformed; {REEXPORT}"
        )


def _listed(names: Sequence[str]) -> str:
    return "[" + ", ".join(repr(n) for n in names) + "]"


def _shape(spec: TensorSpec) -> str:
    return spec.describe().split(" ", 2)[2]


def read_metadata(
    entries: Sequence[tuple[bytes, bytes]], source: str, max_bytes: int
) -> dict[str, str]:
    """metadata_props as a dict from the raw (key, value) entries, in file order. Refuses more
    than ``max_bytes`` in all, a key or value that is not UTF-8, and a repeated key (which
    onnxruntime's map would silently resolve to the last)."""
    size = sum(len(k) + len(v) for k, v in entries)
    if size > max_bytes:
        raise ModelFileError(
            f"{source} carries {size:,} bytes of metadata, over the {max_bytes:,}-byte limit; "
            f"{REEXPORT}"
        )
    metadata: dict[str, str] = {}
    for raw_key, raw_value in entries:
        key = _utf8(raw_key, source, "a metadata key")
        value = _utf8(raw_value, source, f"the value of metadata key {shown(key)}")
        if key in metadata:
            raise ModelFileError(
                f"{source} has metadata key {shown(key)} more than once, so which value holds "
                f"is ambiguous; {REEXPORT}"
            )
        metadata[key] = value
    return metadata


def _utf8(raw: bytes, source: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="backslashreplace")
        raise ModelFileError(
            f"{source}: {what} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start} of {shown(text)}); {REEXPORT}"
        ) from None


def read_vocabulary(metadata: dict[str, str], source: str) -> Vocabulary:
    """The ``vocabulary`` metadata as a Vocabulary; ModelFileError if missing or invalid."""
    raw = metadata.get(META_VOCABULARY)
    if raw is None:
        raise ModelFileError(f"{source} has no '{META_VOCABULARY}' metadata; {REEXPORT}")
    try:
        return Vocabulary.from_json(raw)
    except VocabularyError as exc:
        raise ModelFileError(f"{source}: {exc}; {REEXPORT}") from None


def check_metadata(
    metadata: dict[str, str], vocab: Vocabulary, state_width: int, width: int, source: str
) -> tuple[int, int, int | None]:
    """Check the vocabulary and the numeric metadata against the signature; return (layers,
    units per layer, seq_len or None if the file lacks it)."""
    if len(vocab) != width:
        raise ModelFileError(
            f"{source}: the vocabulary has {len(vocab)} characters but logits are {width} wide; "
            f"{REEXPORT}"
        )
    layers = _int_meta(metadata, "layers", None, source) or 1
    if layers > 1:
        units = _int_meta(metadata, "units", None, source)
        if state_width % layers or (units is not None and layers * units != state_width):
            says = f"{layers} layers" + (f" of {units} units" if units else "")
            raise ModelFileError(
                f"{source}: 'state' is {state_width} wide but the metadata says {says}; the "
                f"contract needs it layers x units wide; {REEXPORT}"
            )
    units = state_width // layers
    _int_meta(metadata, "units", units, source)
    _int_meta(metadata, "vocab_size", len(vocab), source)
    return layers, units, _int_meta(metadata, "seq_len", None, source)


def _int_meta(metadata: dict[str, str], key: str, expected: int | None, source: str) -> int | None:
    raw = metadata.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (expected is not None and value != expected):
        want = f"{expected}" if expected is not None else "a positive integer"
        raise ModelFileError(
            f"{source}: '{key}' metadata is {shown(raw)}, expected {want}; {REEXPORT}"
        )
    return value
