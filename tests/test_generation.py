"""Generation from a contract ONNX file: determinism, primes, streaming, batches, both modes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import numpy_step

from gru_edge.runtime.errors import PrimeError, UsageError
from gru_edge.runtime.generation import generate_ids, generate_one
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.ortstep import OrtStep
from gru_edge.runtime.sampler import SamplingSettings


def _reference_greedy(proto, prime_ids, length):
    """Greedy text ids from the plain-numpy GRU: what the ONNX graph must compute."""
    logits, state = numpy_step(proto, np.array([prime_ids]), np.zeros((1, 16)))
    out = []
    for _ in range(length):
        out.append(int(np.argmax(logits[0])))
        logits, state = numpy_step(proto, np.array([[out[-1]]]), state)
    return out


def test_greedy_text_matches_a_numpy_gru(gen, small_proto):
    prime = "Shall I compare thee"
    expected = _reference_greedy(small_proto, [gen.vocab.index(c) for c in prime], 60)
    assert gen.generate(prime, 60, temperature=0) == "".join(gen.vocab[i] for i in expected)


def test_same_seed_same_text_and_other_seeds_differ(gen):
    first = gen.generate("The ", 200, seed=7)
    assert len(first) == 200 and set(first) <= set(gen.vocab)
    assert gen.generate("The ", 200, seed=7) == first
    assert gen.generate("The ", 200, seed=8) != first


def test_a_drawn_seed_is_exposed_and_reproduces_the_text(gen):
    run = gen.start("The ", 100)
    text = "".join(run.pieces)
    seed = run.info.seed
    assert isinstance(seed, int) and seed >= 0
    assert gen.generate("The ", 100, seed=seed) == text


def test_the_prime_steers_the_text(gen):
    a = gen.generate("The rose ", 80, temperature=0)
    b = gen.generate("Death, be not ", 80, temperature=0)
    assert a != b
    assert gen.start("Death, be not ", 80, temperature=0).info.prime == "Death, be not "


def test_the_prime_is_normalised_like_the_corpus(gen):
    # CRLF -> LF and NFD -> NFC: "e" + combining acute becomes the vocabulary's "é".
    assert gen.generate("caf" + "e\u0301\r\n", 50, seed=1) == gen.generate("café\n", 50, seed=1)
    assert gen.start("caf" + "e\u0301\r\n", 50, seed=1).info.prime == "café\n"


@pytest.mark.parametrize(
    "prime, listed",
    [
        ("xyz€", "'€'"),
        ("€ ok ¥ €", "'¥', '€'"),  # sorted, each once
        ("tab\tand\x00nul", "'\\x00'"),  # control characters escaped
        ("日本", "'日', '本'"),
    ],
)
def test_unknown_prime_characters_are_listed(gen, prime, listed):
    with pytest.raises(PrimeError) as info:
        gen.generate(prime, 10)
    message = str(info.value)
    assert listed in message and "--unknown skip" in message and "\n" not in message


def test_unknown_characters_can_be_skipped(gen):
    run = gen.start("The€ rose¥", 40, seed=3, unknown="skip")
    text = "".join(run.pieces)
    assert run.info.skipped == ("¥", "€") and run.info.prime == "The rose"
    assert text == gen.generate("The rose", 40, seed=3)


def test_a_prime_skipped_to_nothing_starts_like_no_prime(gen):
    run = gen.start("€¥", 40, seed=4, unknown="skip")
    text = "".join(run.pieces)
    assert run.info.prime == "" and run.info.skipped == ("¥", "€")
    assert text == gen.generate(None, 40, seed=4) == gen.generate("", 40, seed=4)


def test_no_prime_starts_after_a_newline(gen):
    assert gen.generate(None, 40, seed=5) == gen.generate("\n", 40, seed=5)
    assert gen.start("\n", 40, seed=5).info.prime == "\n"


def test_without_a_newline_in_the_vocabulary_the_first_character_starts(models_dir):
    from onnx_models import write_model

    path = write_model(models_dir / "no_newline.onnx", units=8, vocab=list("abc d"), seed=4)
    gen = Generator.load(path, device="cpu")
    ids, fed, skipped = gen.encode_prime(None)
    assert (ids.tolist(), fed, skipped) == ([0], "", [])
    assert gen.generate(None, 30, seed=1) == gen.generate("a", 30, seed=1)


def test_stream_yields_the_generated_text_one_character_at_a_time(gen):
    chars = list(gen.stream("The ", 120, seed=11, temperature=0.8))
    assert all(len(c) == 1 for c in chars) and len(chars) == 120
    assert "".join(chars) == gen.generate("The ", 120, seed=11, temperature=0.8)


def test_stream_checks_its_arguments_before_the_first_character(gen):
    with pytest.raises(PrimeError):
        gen.stream("€", 10)  # no next() needed


def test_interleaved_streams_do_not_share_state(gen):
    a, b = gen.stream("The ", 50, seed=1), gen.stream("A ", 50, seed=2)
    mixed = [(next(a), next(b)) for _ in range(50)]
    assert "".join(x for x, _ in mixed) == gen.generate("The ", 50, seed=1)
    assert "".join(y for _, y in mixed) == gen.generate("A ", 50, seed=2)


def test_generate_one_and_generate_ids_pick_the_same_ids(gen):
    for settings in (SamplingSettings(0.9), SamplingSettings(0), SamplingSettings(top_k=5)):
        runs = []
        for loop in (generate_one, generate_ids):
            step = OrtStep(gen.model.session, batch=1, state_width=gen.state_width, vocab_size=70)
            ids = loop(
                step,
                [3, 4, 5],
                80,
                state_width=gen.state_width,
                settings=settings,
                seed=2,
            )
            runs.append([int(np.asarray(i).reshape(-1)[0]) for i in ids])
        assert runs[0] == runs[1]


def test_a_batch_is_n_texts_run_together(gen):
    texts = gen.generate_batch(6, "The ", 150, seed=3)
    assert len(texts) == 6 and all(len(t) == 150 for t in texts)
    assert len(set(texts)) == 6  # every row draws its own characters
    assert gen.generate_batch(6, "The ", 150, seed=3) == texts
    assert all(set(t) <= set(gen.vocab) for t in texts)


def test_greedy_batch_rows_each_equal_the_single_text(gen):
    single = gen.generate("Nothing gold ", 80, temperature=0)
    assert gen.generate_batch(4, "Nothing gold ", 80, temperature=0) == [single] * 4


def test_a_batch_of_one_equals_a_single_sample(gen):
    assert gen.generate_batch(1, "The ", 90, seed=6) == [gen.generate("The ", 90, seed=6)]


def test_batches_decode_characters_outside_the_bmp(models_dir):
    from onnx_models import write_model

    vocab = ["🙂", "a", "—"]
    path = write_model(models_dir / "emoji.onnx", units=8, vocab=vocab, seed=5, scale=0.01)
    texts = Generator.load(path, device="cpu").generate_batch(3, "a", 300, seed=1)
    assert all(len(t) == 300 and set(t) == set(vocab) for t in texts)


@pytest.mark.parametrize("prime", ["S", "Shall I compare thee", "x" * 30])
def test_window_and_stateful_agree_while_the_text_fits_in_one_window(gen, prime):
    length = gen.seq_len - len(prime)
    stateful = gen.generate(prime, length, temperature=0)
    assert gen.generate(prime, length, temperature=0, mode="window") == stateful


def test_window_mode_forgets_what_falls_out_of_the_window(gen):
    length = gen.seq_len + 40
    stateful = gen.generate("The ", length, seed=1, temperature=0)
    window = gen.generate("The ", length, seed=1, temperature=0, mode="window")
    assert window[: gen.seq_len - 4] == stateful[: gen.seq_len - 4]
    assert window != stateful


def test_window_mode_needs_seq_len(no_seq_len_model):
    gen = Generator.load(no_seq_len_model, device="cpu")
    assert gen.seq_len is None
    with pytest.raises(UsageError, match="seq_len"):
        gen.generate("a", 5, mode="window")


def test_stateful_steps_equal_a_window_recompute(gen):
    session = gen.model.session
    ids = np.random.default_rng(0).integers(0, 70, (3, 25))
    step = OrtStep(session, batch=3, state_width=gen.state_width, vocab_size=70)
    logits, state = step(ids[:, :5], np.zeros((3, gen.units), np.float32))
    for t in range(5, 25):
        full, full_state = session.run(
            ["logits", "state_out"],
            {"ids": ids[:, :t], "state": np.zeros((3, gen.units), np.float32)},
        )
        np.testing.assert_allclose(logits, full, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state), full_state, atol=1e-5)
        logits, state = step(ids[:, t : t + 1], state)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"length": -1}, UsageError, "length must be a whole number >= 0"),
        ({"seed": -1}, UsageError, "seed must be"),
        ({"mode": "loop"}, UsageError, "mode must be"),
        ({"unknown": "drop"}, UsageError, "unknown must be"),
        ({"temperature": -2.0}, UsageError, "temperature"),
        ({"top_p": 2.0}, UsageError, "top-p"),
        ({"prime": "¿"}, PrimeError, "'¿'"),
    ],
)
def test_bad_arguments_raise_one_line_errors(gen, kwargs, error, message):
    for call in (gen.generate, gen.stream, lambda **kw: gen.generate_batch(2, **kw)):
        with pytest.raises(error, match=message):
            call(**kwargs)


@pytest.mark.parametrize("n", [0, -1])
def test_a_batch_needs_at_least_one_sample(gen, n):
    with pytest.raises(UsageError, match="at least 1"):
        gen.generate_batch(n, "a", 5)


def test_properties_come_from_the_file(gen):
    assert (gen.units, gen.seq_len, len(gen.vocab)) == (16, 40, 70)
    assert gen.provider == "CPUExecutionProvider"
    assert gen.metadata["format"] == "gru-edge/2" and gen.model.has_generator
    assert "🙂" in gen.vocab and "\n" in gen.vocab


def test_state_kept_in_ortvalues_steps_like_numpy_state(gen):
    # The CUDA path keeps the state in device OrtValues; "cpu" OrtValues run the same code here.
    import onnxruntime as ort

    session, units = gen.model.session, gen.units
    ids = np.random.default_rng(1).integers(0, 70, (2, 12))
    plain = OrtStep(session, batch=2, state_width=units, vocab_size=70)
    bound = OrtStep(session, batch=2, state_width=units, vocab_size=70, state_device="cpu")
    zero = np.zeros((2, units), np.float32)
    (la, sa), (lb, sb) = plain(ids[:, :4], zero), bound(ids[:, :4], zero)
    assert isinstance(sb, ort.OrtValue)
    for t in range(4, 12):
        np.testing.assert_allclose(la, lb, atol=1e-6)
        np.testing.assert_allclose(sa, sb.numpy(), atol=1e-6)
        (la, sa), (lb, sb) = plain(ids[:, t : t + 1], sa), bound(ids[:, t : t + 1], sb)
    # Anything but a one-id step (here a window from the carried state) is a plain run.
    expected = session.run(["logits", "state_out"], {"ids": ids[:, :3], "state": sb.numpy()})
    logits, state = bound(ids[:, :3], sb)
    np.testing.assert_allclose(logits, expected[0], atol=1e-6)
    np.testing.assert_allclose(state.numpy(), expected[1], atol=1e-6)


def test_a_long_prime_is_fed_in_pieces(gen, monkeypatch):
    import gru_edge.runtime.generation

    prime = "Shall I compare thee to a summer's day? " * 3
    whole = gen.generate(prime, 30, temperature=0, engine="host")
    seen = []
    real = OrtStep.__call__

    def spy(self, ids, state):
        seen.append(ids.shape[1])
        return real(self, ids, state)

    monkeypatch.setattr(gru_edge.runtime.generation, "PRIME_CHUNK", 7)
    monkeypatch.setattr(OrtStep, "__call__", spy)
    assert gen.generate(prime, 30, temperature=0, engine="host") == whole
    assert seen[: len(prime) // 7 + 1] == [7] * (len(prime) // 7) + [len(prime) % 7]
