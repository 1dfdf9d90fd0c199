"""Generation that must stop or refuse: logits that leave nothing to sample (from ONNX models
whose weights make them NaN or infinite, at the first or a later character), and calls that
would hold more than the memory budget."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import DEFAULT_VOCAB, write_model

from gru_edge.runtime import generator as generator_module
from gru_edge.runtime.errors import ModelFileError, UsageError
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.ortstep import OrtStep

# --- logits that leave nothing to sample ---------------------------------------------------------

_Z = DEFAULT_VOCAB.index("z")


def _fill_bias(value: float):
    return lambda weights: weights["dense_b"].fill(value)


def _z_then_overflow(weights):
    # A GRU whose state is 0 until it reads 'z', then ~0.5 per unit; 'z' is by far the likeliest
    # first character, and a state of 0.5 overflows the first logit to +inf (0 keeps it at 0).
    # (NaN weights inside onnxruntime's GRU come out as a zero state, not as NaN.)
    units = weights["R"].shape[2]
    for name in ("W", "R", "B", "dense_w", "dense_b"):
        weights[name][...] = 0
    weights["W"][0, 2 * units :, _Z] = 10.0  # the candidate state, tanh(10) ~ 1, on 'z' only
    weights["dense_b"][_Z] = 1e4
    weights["dense_w"][:, 0] = 3e38


BROKEN_WEIGHTS = {
    "NaN": (_fill_bias(np.nan), "NaN", 1),
    "+inf": (_fill_bias(np.inf), "+inf", 1),
    "-inf": (_fill_bias(-np.inf), "only -inf", 1),
    "overflow after one character": (_z_then_overflow, "+inf", 2),
}


@pytest.fixture(scope="module")
def broken_gens(models_dir):
    return {
        case: Generator.load(
            write_model(models_dir / f"broken{i}.onnx", units=8, seed=6, edit_weights=edit),
            device="cpu",
        )
        for i, (case, (edit, _, _)) in enumerate(BROKEN_WEIGHTS.items())
    }


_CALLS = {
    "generate": lambda gen, **kw: gen.generate("ab", 30, **kw),
    "stream": lambda gen, **kw: list(gen.stream("ab", 30, **kw)),
    "batch": lambda gen, **kw: gen.generate_batch(3, "ab", 30, **kw),
    "window": lambda gen, **kw: gen.generate("ab", 30, mode="window", **kw),
    "top-k": lambda gen, **kw: gen.generate("ab", 30, top_k=3, **kw),
}


@pytest.mark.parametrize("case", list(BROKEN_WEIGHTS))
@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("call", list(_CALLS))
def test_non_finite_logits_stop_generation_with_one_line(broken_gens, case, temperature, call):
    _, what, position = BROKEN_WEIGHTS[case]
    with pytest.raises(ModelFileError) as info:
        _CALLS[call](broken_gens[case], temperature=temperature, seed=1)
    message = str(info.value)
    assert f"computed {what} logits at generated character {position}" in message, message
    assert ("(sample 1 of 3)" in message) == (call == "batch")
    assert "\n" not in message and "re-export" in message


def test_the_model_that_overflows_later_is_fine_before(broken_gens):
    gen = broken_gens["overflow after one character"]
    assert gen.generate("ab", 1, temperature=0) == "z"
    assert gen.generate_batch(2, "ab", 1, seed=3) == ["z", "z"]


# --- memory budgets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda g: g.generate_batch(2, "a", 10**12), "2 samples x 1,000,000,000,000 characters"),
        (lambda g: g.generate_batch_ids(2, "a", 10**12), "2 samples x 1,000,000,000,000"),
        (lambda g: g.generate("a", 10**12), "1,000,000,000,000 characters is more than"),
        (lambda g: g.generate_batch(10**6, "a", 5), "--num-samples 1,000,000 is more than"),
    ],
)
def test_whole_texts_past_the_budget_are_refused_before_any_work(gen, call, fragment):
    with pytest.raises(UsageError) as info:
        call(gen)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_the_budgets_are_what_the_refusals_say(gen, monkeypatch):
    monkeypatch.setattr(generator_module, "MAX_HELD_CHARS", 100)
    assert len(gen.generate("a", 100, seed=1)) == 100
    assert [len(t) for t in gen.generate_batch(4, "a", 25, seed=1)] == [25] * 4
    with pytest.raises(UsageError, match="4 samples x 26 characters is more than the 100"):
        gen.generate_batch(4, "a", 26)
    with pytest.raises(UsageError, match="101 characters is more than the 100"):
        gen.generate("a", 101)
    assert len("".join(gen.stream("a", 1000, seed=1))) == 1000  # a stream holds nothing
    per_row = len(gen.vocab) + gen.units  # 70 + 16
    monkeypatch.setattr(generator_module, "MAX_BATCH_VALUES", 3 * per_row)
    assert len(gen.generate_batch(3, "a", 5, seed=1)) == 3
    with pytest.raises(UsageError, match="use at most 3 samples per run"):
        gen.generate_batch(4, "a", 5)


def test_batch_ids_are_compact_and_decode_to_the_batch_texts(gen):
    ids = gen.generate_batch_ids(3, "The ", 40, seed=2)
    assert ids.dtype == np.uint8 and ids.shape == (3, 40)
    assert gen.vocab.decode_rows(ids) == gen.generate_batch(3, "The ", 40, seed=2)


def test_a_long_prime_in_a_batch_is_fed_without_repeating_it_whole(gen, monkeypatch):
    import gru_edge.runtime.generation

    prime = "Shall I compare thee to a summer's day? " * 3
    whole = gen.generate_batch(4, prime, 20, temperature=0, engine="host")
    seen = []
    real = OrtStep.__call__

    def spy(self, ids, state):
        seen.append(ids.shape)
        return real(self, ids, state)

    monkeypatch.setattr(gru_edge.runtime.generation, "PRIME_CHUNK", 20)
    monkeypatch.setattr(OrtStep, "__call__", spy)
    assert gen.generate_batch(4, prime, 20, temperature=0, engine="host") == whole
    assert max(rows * time for rows, time in seen) <= 20  # 4 rows x 5 ids per piece
