"""`gru-edge export`: a run directory's best model -> one validated, self-contained ONNX file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_edge.exporter.convert import convert, set_metadata, supported_opsets
from gru_edge.exporter.generator_graph import MIN_OPSET as GENERATOR_OPSET
from gru_edge.exporter.generator_graph import add_generator, graphs
from gru_edge.exporter.mobile import ort_paths, write_ort
from gru_edge.exporter.precision import FP16_ATOL, WEIGHTS, store_float16
from gru_edge.exporter.validate import (
    GENERATOR_MISMATCH,
    Comparison,
    Stage,
    TextComparison,
    compare,
    diff_of,
    fail_on_stages,
    run_stage,
    validate,
    validate_generator,
    worst,
)
from gru_edge.runtime.errors import GruEdgeError
from gru_edge.runtime.files import atomic_path
from gru_edge.runtime.ingraph import GraphEngine
from gru_edge.runtime.loader import LoadedModel, load_model
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.sampler import SamplingSettings
from gru_edge.trainer.keras_files import load_best_model
from gru_edge.trainer.model import build_stepper, step_function
from gru_edge.trainer.rundir import Run, load_run
from gru_edge.trainer.tf_env import load_tf

MIN_ROLLOUT, MAX_ROLLOUT = 200, 500
DEFAULT_ATOL = 1e-5  # float32 weights, against Keras
ORT_MISMATCH = "the .ort file does not compute what the .onnx file does"


class ExportError(GruEdgeError):
    """The output path cannot be written."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    size_bytes: int
    ops: list[str]
    comparisons: list[Comparison | TextComparison]
    metadata: dict[str, str]


def export_run(
    run_dir: Path,
    out: Path | str,
    *,
    opset: int = 18,
    atol: float | None = None,
    force: bool = False,
    weights: str = "fp32",
    ort_format: bool = False,
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Convert, check, validate against Keras, then write ``out`` atomically.

    ``out`` names a file; a string ending in a path separator names a folder and is refused.
    ``weights`` "fp16" stores the weights as float16 (validated within FP16_ATOL unless
    ``atol`` says otherwise); ``ort_format`` also writes the ORT-format twin and its operator
    config beside ``out`` (exporter.mobile), checked against the .onnx file.
    """
    if weights not in WEIGHTS:
        raise ExportError(f"--weights must be fp32 or fp16, got {weights!r}")
    if atol is None:
        atol = FP16_ATOL if weights == "fp16" else DEFAULT_ATOL
    run_dir, out = Path(run_dir), _check_out(out, force)
    if ort_format:
        for path in ort_paths(out):
            _check_out(path, force)
    if not (atol >= 0):
        raise ExportError(f"--atol must be >= 0, got {atol}; try 1e-5")
    run = load_run(run_dir)
    load_tf("gru-edge export")
    low, high = supported_opsets()
    if not (low <= opset <= high):
        raise ExportError(
            f"--opset {opset} is outside what this export supports ({low} to {high}: onnxruntime "
            f"implements GRU from opset {low}, tf2onnx converts up to {high}); try 18"
        )
    model = load_best_model(
        run, "export only run directories written by gru-edge train (re-train to get one)"
    )
    stepper = build_stepper(model)
    state_width = int(stepper.inputs[1].shape[-1])  # layers x units
    log(f"converting {run.model_path} with tf2onnx (opset {opset})")
    model_proto = convert(stepper, opset)
    if weights == "fp16":
        log(f"storing {store_float16(model_proto)} weight tensors as float16")
    generator = opset >= GENERATOR_OPSET
    if generator:
        add_generator(model_proto, len(run.vocab), state_width)
    else:
        log(
            f"note: opset {opset} has no BitwiseXor, which the in-graph generator needs (opset "
            f"{GENERATOR_OPSET}+): writing a gru-edge/1 file, sampled by the host loop only"
        )
    metadata = set_metadata(
        model_proto, run.info, run.vocab, opset, generator=generator, weights=weights
    )
    _check_proto(model_proto)
    payload = model_proto.SerializeToString()

    probe_ids = _probe_ids(run)
    log(
        f"validating against Keras: 8 windows of {run.info['config']['seq_len']} ids, "
        f"a {len(probe_ids)}-step stateful rollout"
    )
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(payload)
            # The file as written, opened by the runtime's own loader (contract, vocabulary,
            # no external data): what `gru-edge sample` will see. Renamed into place only if
            # every comparison passes.
            loaded = load_model(tmp, device="cpu")
            comparisons: list = validate(
                model,
                step_function(stepper),
                # The runtime's own step (I/O binding once the state is its own): the path
                # `gru-edge sample` takes is the one validated.
                OrtStep(
                    loaded.session, batch=1, state_width=state_width, vocab_size=len(run.vocab)
                ),
                vocab_size=len(run.vocab),
                state_width=state_width,
                seq_len=run.info["config"]["seq_len"],
                probe_ids=probe_ids,
                atol=atol,
                check=False,  # every stage runs; one error names every mismatch
            )
            stages: list[Stage] = [("the ONNX model does not match Keras", list(comparisons))]
            if generator:
                checked = run_stage(
                    "generator",
                    lambda: _validate_generator(
                        loaded, stepper, probe_ids, state_width, keras_greedy=weights == "fp32"
                    ),
                )
                stages.append((GENERATOR_MISMATCH, checked))
                comparisons += checked
            for comparison in comparisons:
                log(comparison.line())
            if ort_format:
                ort_path, config_path = ort_paths(out)

                def check_ort(path: Path) -> None:
                    checks = run_stage(
                        ".ort", lambda: _check_ort(path, loaded, probe_ids, generator)
                    )
                    for comparison in checks:
                        log(comparison.line())
                    comparisons.extend(checks)
                    stages.append((ORT_MISMATCH, checks))
                    fail_on_stages(stages)  # before either file is renamed into place

                size = write_ort(payload, ort_path, config_path, check_ort)
                log(f"wrote {ort_path} ({size:,} bytes) and {config_path.name}")
            else:
                fail_on_stages(stages)
    except OSError as exc:
        raise ExportError(f"cannot write --out {out}: {exc.strerror}") from None
    ops = [node.op_type for node in model_proto.graph.node]
    log(f"wrote {out} ({len(payload):,} bytes; ops: {' '.join(_op_types(model_proto.graph))})")
    _note_stale_temps(out, log)
    return ExportReport(out, len(payload), ops, comparisons, metadata)


def _op_types(graph) -> list[str]:
    """Every operator the graph runs, subgraphs included, each once in the order first met."""
    return list(dict.fromkeys(node.op_type for sub in graphs(graph) for node in sub.node))


def _graph_generate(loaded: LoadedModel) -> Callable[..., np.ndarray]:
    """``generate(prime, length, settings, seed)`` -> ids [1, length] from the file's generator."""
    engine = GraphEngine(
        loaded.session, batch=1, vocab_size=len(loaded.vocab), width=loaded.state_width
    )

    def generate(prime, length, settings, seed):
        return np.concatenate(list(engine.generate(prime, length, settings, seed)), axis=1)

    return generate


def _validate_generator(
    loaded: LoadedModel,
    stepper: Any,
    probe_ids: np.ndarray,
    state_width: int,
    *,
    keras_greedy: bool,
) -> list[TextComparison]:
    """The written file's generator against Keras (greedy; for float16 weights, whose rounding
    may break a near tie, against its own host loop instead) and its own host loop (sampled),
    from the first 20 held-out characters."""
    host = OrtStep(loaded.session, batch=1, state_width=state_width, vocab_size=len(loaded.vocab))
    return validate_generator(
        _graph_generate(loaded),
        step_function(stepper) if keras_greedy else host,
        host,
        prime_ids=probe_ids[:20],
        state_width=state_width,
        greedy_reference="keras" if keras_greedy else "host",
        check=False,
    )


def _check_ort(
    path: Path, onnx_model: LoadedModel, probe_ids: np.ndarray, generator: bool
) -> list[Comparison | TextComparison]:
    """The .ort file, opened by the runtime's loader, against the .onnx file: the same logits
    and states for the held-out rollout, and the same generated text (for fail_on_stages)."""
    ort_model = load_model(path, device="cpu")
    width, vocab = onnx_model.state_width, len(onnx_model.vocab)
    steps = [
        OrtStep(m.session, batch=1, state_width=width, vocab_size=vocab)
        for m in (onnx_model, ort_model)
    ]
    states = [np.zeros((1, width), np.float32)] * 2
    logit_diffs, state_diffs = [], []
    for token in probe_ids:
        ids = np.array([[token]], np.int64)
        (la, sa), (lb, sb) = (step(ids, state) for step, state in zip(steps, states, strict=True))
        logit_diffs.append(diff_of(lb, la, "the .onnx"))
        states = [np.array(sa), np.array(sb)]
        state_diffs.append(diff_of(states[1], states[0], "the .onnx"))
    results: list[Comparison | TextComparison] = [
        compare(f".ort rollout logits vs .onnx ({len(probe_ids)} steps)", worst(logit_diffs), 0.0),
        compare(
            f".ort rollout state_out vs .onnx ({len(probe_ids)} steps)", worst(state_diffs), 0.0
        ),
    ]
    if generator:
        settings = SamplingSettings(temperature=1.0)
        expected = _graph_generate(onnx_model)(probe_ids[:20], 500, settings, 0)[0]
        got = _graph_generate(ort_model)(probe_ids[:20], 500, settings, 0)[0]
        results.append(TextComparison.of(".ort, sampled, temperature 1.0 vs .onnx", got, expected))
    return results


def _probe_ids(run: Run) -> np.ndarray:
    """Ids of the run's held-out text for the stateful rollout, padded with seeded ids for a
    tiny corpus."""
    probe = run.info.get("probe_text") or ""
    probe_ids = run.vocab.encode(probe, skip_unknown=True)[:MAX_ROLLOUT]
    if len(probe_ids) < MIN_ROLLOUT:
        extra = np.random.default_rng(1).integers(0, len(run.vocab), MIN_ROLLOUT - len(probe_ids))
        probe_ids = np.concatenate([probe_ids, extra])
    return probe_ids


def _check_proto(model_proto) -> None:
    import onnx

    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        first_line = str(exc).splitlines()[0]
        raise ExportError(f"the converted model fails onnx.checker: {first_line}") from None


def _check_out(out_arg: Path | str, force: bool) -> Path:
    """``out`` as a Path, once it names a file that may be written."""
    text = os.fspath(out_arg)
    out = Path(text)
    # Path drops a trailing slash: "new/" would silently become a file called "new".
    if text.endswith((os.sep, "/")) or (os.altsep and text.endswith(os.altsep)):
        raise ExportError(
            f"--out {text} ends with a path separator, so it names a folder; give a file "
            f"name such as {out / 'model.onnx'}"
        )
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory; give a file name such as model.onnx")
    if out.exists() and not force:
        raise ExportError(f"--out {out} already exists; add --force to replace it")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write --out {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise ExportError(f"cannot write --out {out}: folder {out.parent} is not writable")
    return out


def _note_stale_temps(out: Path, log: Callable[[str], None]) -> None:
    """Name the temporary files a killed export left beside ``out`` (of the .onnx file, and of
    the .ort file and operator config that --ort writes, whether or not this export did). They
    are not deleted: the folder is the user's, and another export to the same --out may be
    writing one right now (nothing locks an output file), so neither the name nor the age proves
    one is abandoned."""
    patterns = [
        re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp{re.escape(path.suffix)}")
        for path in (out, *ort_paths(out))
    ]
    stale = sorted(
        p.name for p in out.parent.iterdir() if any(pat.fullmatch(p.name) for pat in patterns)
    )
    if stale:
        log(
            f"note: {len(stale)} temporary file(s) from an interrupted export lie beside {out} "
            f"({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}); delete them unless "
            "another export to it is running"
        )
