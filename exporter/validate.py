"""Export-time validation: Keras and onnxruntime on the same inputs, every output compared.

Like optimum's exporter, every mismatch is collected and reported at once, across every stage
(the step against Keras, the generator, the .ort twin: see run_stage and fail_on_stages); unlike
it, a mismatch is fatal: the ONNX file is never written. A NaN is named as a NaN, not as an
infinite difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gru_edge.runtime.errors import ExportValidationError, GruEdgeError
from gru_edge.runtime.generation import generate_ids
from gru_edge.runtime.sampler import SamplingSettings

GENERATOR_CHARS = 500
# The generator's checks: (name, settings, reference): "keras" is the Keras stepper through the
# host loop (greedy, so the noise plays no part and float32 rounding differences between
# TensorFlow and onnxruntime only matter at an exact tie); "host" is the host loop stepping
# the written file, which must pick the very same ids as the graph for the same seed.
GENERATOR_CHECKS = (
    ("greedy", SamplingSettings(temperature=0.0), "greedy"),
    ("sampled, temperature 1.0", SamplingSettings(temperature=1.0), "host"),
    ("sampled, temperature 0.8, top-k 10, top-p 0.9", SamplingSettings(0.8, 10, 0.9), "host"),
)


@dataclass(frozen=True)
class Comparison:
    """Two outputs' largest absolute difference against a tolerance; ``nan_in`` names the
    side(s) holding a NaN, which fails whatever the difference."""

    name: str
    max_diff: float
    atol: float
    nan_in: str = ""  # e.g. "the ONNX output"; empty = no NaN

    @property
    def ok(self) -> bool:
        return not self.nan_in and bool(self.max_diff <= self.atol)  # NaN fails too

    def line(self) -> str:
        if self.nan_in:
            return (
                f"- {self.name}: NaN in {self.nan_in} (a NaN weight? check the run's loss) "
                f"(atol {self.atol:g}) MISMATCH"
            )
        verdict = "ok" if self.ok else "MISMATCH"
        return f"- {self.name}: max diff = {self.max_diff:.3g} (atol {self.atol:g}) {verdict}"


@dataclass(frozen=True)
class StageError:
    """A stage of validation that could not run at all (the runtime refused what it computed)."""

    name: str
    message: str
    ok = False

    def line(self) -> str:
        return f"- {self.name}: could not run ({self.message}) MISMATCH"


Stage = tuple[str, Sequence[Any]]  # (what fails when one of them does, its results)


def run_stage(name: str, check: Callable[[], list]) -> list:
    """``check()``'s results, or one StageError if the runtime raised on the way: the other
    stages still run, and every failure is reported together."""
    try:
        return check()
    except ExportValidationError:
        raise
    except GruEdgeError as exc:
        return [StageError(name, str(exc))]


def fail_on_stages(stages: Sequence[Stage]) -> None:
    """Raise one ExportValidationError naming every failed comparison of every stage."""
    failed = [
        f"{what} ({'; '.join(r.line().lstrip('- ') for r in results if not r.ok)})"
        for what, results in stages
        if not all(r.ok for r in results)
    ]
    if failed:
        raise ExportValidationError(f"{' and '.join(failed)}; nothing written")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def validate(
    model: Any,
    keras_step: Any,
    onnx_step: Any,
    *,
    vocab_size: int,
    state_width: int,
    seq_len: int,
    probe_ids: np.ndarray,
    atol: float,
    windows: int = 8,
    seed: int = 0,
    check: bool = True,
) -> list[Comparison]:
    """Compare the trained Keras model (and its stepper) with the ONNX session; raise on mismatch
    (with ``check``; without, return the comparisons for fail_on_stages).

    (a) ``windows`` random windows of ``seq_len`` ids from a zero state: ONNX probabilities vs the
        trained model's ``predict`` and vs the stepper, ONNX state vs the stepper's;
    (b) a stateful rollout over ``probe_ids`` (real text), one id at a time, carrying the state:
        probabilities and states at every step.
    ``keras_step`` and ``onnx_step`` have the contract's step signature.
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(windows, seq_len), dtype=np.int64)
    zero = np.zeros((windows, state_width), dtype=np.float32)
    one_hot = np.eye(vocab_size, dtype=np.float32)[ids]
    reference = model.predict(one_hot, verbose=0, batch_size=windows)
    k_logits, k_state = keras_step(ids, zero)
    o_logits, o_state = onnx_step(ids, zero)
    results = [
        compare(
            "window probabilities vs trained model",
            diff_of(softmax(o_logits), reference, "the trained model's"),
            atol,
        ),
        compare(
            "window probabilities vs Keras stepper",
            diff_of(softmax(o_logits), softmax(k_logits)),
            atol,
        ),
        compare("window state_out vs Keras stepper", diff_of(o_state, k_state), atol),
    ]
    k_state = o_state = np.zeros((1, state_width), dtype=np.float32)
    probs: list[tuple[float, str]] = []
    states: list[tuple[float, str]] = []
    for token in probe_ids:
        step_ids = np.array([[token]], dtype=np.int64)
        k_logits, k_state = keras_step(step_ids, k_state)
        o_logits, o_state = onnx_step(step_ids, o_state)
        probs.append(diff_of(softmax(o_logits), softmax(k_logits)))
        states.append(diff_of(o_state, k_state))
    steps = len(probe_ids)
    results += [
        compare(f"rollout probabilities ({steps} steps)", worst(probs), atol),
        compare(f"rollout state_out ({steps} steps)", worst(states), atol),
    ]
    return fail_on_mismatch(results, "the ONNX model does not match Keras") if check else results


def fail_on_mismatch(results: list, what: str) -> list:
    """``results`` if every comparison is ok; else one ExportValidationError naming them all."""
    failures = [r for r in results if not r.ok]
    if failures:
        raise ExportValidationError(
            f"{what}, nothing written: " + "; ".join(r.line().lstrip("- ") for r in failures)
        )
    return results


@dataclass(frozen=True)
class TextComparison:
    """The in-graph generator's ids against a reference loop's, character for character."""

    name: str
    length: int
    first_difference: int | None  # 0-based; None = identical

    @property
    def ok(self) -> bool:
        return self.first_difference is None

    @classmethod
    def of(cls, name: str, got: np.ndarray, expected: np.ndarray) -> TextComparison:
        """Compare two id sequences of the same length."""
        differs = np.flatnonzero(np.asarray(got).reshape(-1) != np.asarray(expected).reshape(-1))
        return cls(name, len(expected), int(differs[0]) if len(differs) else None)

    def line(self) -> str:
        if self.ok:
            return f"- generator, {self.name}: {self.length} characters identical ok"
        return (
            f"- generator, {self.name}: MISMATCH from character {self.first_difference + 1} "
            f"of {self.length}"
        )


def validate_generator(
    generate: Any,
    keras_step: Any,
    host_step: Any,
    *,
    prime_ids: np.ndarray,
    state_width: int,
    seed: int = 0,
    length: int = GENERATOR_CHARS,
    greedy_reference: str = "keras",
    check: bool = True,
) -> list[TextComparison]:
    """The file's own generator against the host loop: greedy against the Keras stepper,
    sampled against the host loop stepping the file with the same seed; raise on a mismatch
    (with ``check``; without, return the comparisons for fail_on_stages).

    ``generate(prime_ids, length, settings, seed)`` returns the in-graph engine's ids [length].
    ``greedy_reference`` names what ``keras_step`` is for the greedy check ("keras", or "host"
    when it is the host step too).
    """
    results = []
    for name, settings, against in GENERATOR_CHECKS:
        reference = greedy_reference if against == "greedy" else against
        step = keras_step if against == "greedy" else host_step
        expected = np.array(
            [
                row[0]
                for row in generate_ids(
                    step, prime_ids, length, state_width=state_width, settings=settings, seed=seed
                )
            ]
        )
        got = generate(prime_ids, length, settings, seed)
        reference_name = "Keras stepper" if reference == "keras" else "host loop"
        results.append(TextComparison.of(f"{name} vs {reference_name}", got, expected))
    if not check:
        return results
    return fail_on_mismatch(results, GENERATOR_MISMATCH)


GENERATOR_MISMATCH = "the ONNX file's generator does not write what the model does"


def compare(name: str, measured: tuple[float, str], atol: float) -> Comparison:
    """A Comparison from ``(max diff, NaN note)`` as _diff or diff_of returns them."""
    return Comparison(name, measured[0], atol, measured[1])


def diff_of(onnx: np.ndarray, reference: np.ndarray, name: str = "the Keras") -> tuple[float, str]:
    """(largest absolute difference where neither side is NaN, which side(s) hold a NaN);
    ``name`` names the reference side, e.g. "the .onnx"."""
    a = np.asarray(onnx, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    sides = [who for who, x in (("the ONNX", a), (name, b)) if np.isnan(x).any()]
    nan_in = f"{' and '.join(sides)} output" + ("s" if len(sides) > 1 else "") if sides else ""
    diff = np.abs(a - b)
    finite = diff[~np.isnan(diff)]
    return (float(finite.max()) if finite.size else 0.0), nan_in


def worst(diffs: list[tuple[float, str]]) -> tuple[float, str]:
    """The largest difference over the steps, and the first NaN note."""
    return max((d for d, _ in diffs), default=0.0), next((n for _, n in diffs if n), "")
