"""One contender of `gru-edge bench`, run as a script in a fresh process (never imported).

    python bench_worker.py KIND MODEL RANDOMNESS_PY VOCAB_JSON THREADS first CHARS
    python bench_worker.py KIND MODEL RANDOMNESS_PY VOCAB_JSON THREADS rate CHARS REPEATS B...

KIND is ``litert`` (a one-step .tflite twin), ``numpy`` (an .npz of the Keras weights, a
float32 GRU loop), ``onnx`` (the README's plain onnxruntime recipe on the file's generator) or
``gemm`` (``rate`` only: the .npz's matrix products of a step through numpy, nothing else).
``first`` writes CHARS characters of one stream to stdout as they come (the parent times the
first byte and reads the peak RSS of the whole process); ``rate`` prints one JSON object,
batch -> chars/s (median of REPEATS, after a warm-up). Every contender samples with the
specified noise stream at temperature 1 (runtime/randomness.py, loaded by its path so that
nothing but numpy and the contender's runtime is imported).

Only the standard library, numpy and the contender's own runtime are imported, so start-up and
memory are the contender's own.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time

import numpy as np


def _randomness(path: str):
    spec = importlib.util.spec_from_file_location("_gru_edge_randomness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LiteRT:
    """The one-step twin: ids int32 [batch, 1] and state in, logits and state out."""

    def __init__(self, path: str, batch: int, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        details = {d["name"]: d for d in self.interpreter.get_input_details()}
        ids = next(d for name, d in details.items() if "ids" in name)
        state = next(d for name, d in details.items() if "state" in name)
        self.width = int(state["shape"][-1])
        self.interpreter.resize_tensor_input(ids["index"], [batch, 1])
        self.interpreter.resize_tensor_input(state["index"], [batch, self.width])
        self.interpreter.allocate_tensors()
        self.ids_index, self.state_index = ids["index"], state["index"]
        outputs = self.interpreter.get_output_details()
        # The logits are [batch, vocab], the state [batch, width]: tell them apart by width.
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        self.state_out = by_width.pop(self.width)
        self.logits_out = next(iter(by_width.values())) if by_width else self.state_out

    def zero_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.width), dtype=np.float32)

    def __call__(self, ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interp = self.interpreter
        interp.set_tensor(self.ids_index, ids.astype(np.int32))
        interp.set_tensor(self.state_index, state)
        interp.invoke()
        return interp.get_tensor(self.logits_out), interp.get_tensor(self.state_out)


class _NumpyGru:
    """The Keras GRU (reset_after) and Dense in float32 numpy, input rows gathered by id."""

    def __init__(self, path: str):
        with np.load(path) as data:
            self.layers = int(data["layers"])
            self.kernels = [data[f"kernel{i}"] for i in range(self.layers)]
            self.recurrents = [data[f"recurrent{i}"] for i in range(self.layers)]
            self.biases = [data[f"bias{i}"] for i in range(self.layers)]
            self.dense, self.dense_bias = data["dense"], data["dense_bias"]
        self.units = self.recurrents[0].shape[0]
        # Layer 0's input projection of every character, its input bias included.
        self.table = self.kernels[0] + self.biases[0][0]

    def zero_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.layers * self.units), dtype=np.float32)

    def __call__(self, ids: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = self.units
        x = self.table[ids[:, 0]]
        out = []
        for layer in range(self.layers):
            h = state[:, layer * u : (layer + 1) * u]
            if layer:
                x = x @ self.kernels[layer] + self.biases[layer][0]
            r_ = h @ self.recurrents[layer] + self.biases[layer][1]
            z = 1 / (1 + np.exp(-(x[:, :u] + r_[:, :u])))
            r = 1 / (1 + np.exp(-(x[:, u : 2 * u] + r_[:, u : 2 * u])))
            hh = np.tanh(x[:, 2 * u :] + r * r_[:, 2 * u :])
            h = z * h + (1 - z) * hh
            out.append(h)
            x = h
        return x @ self.dense + self.dense_bias, np.concatenate(out, axis=1)


def _products_seconds(path: str, batch: int, steps: int) -> float:
    """Seconds for ``steps`` steps of only the float32 matrix products a character needs (each
    layer's recurrent one, the input one of every layer after the first, the logits'), batch
    rows at a time: what any runtime that computes the model in float32 must at least do."""
    weights = _NumpyGru(path)
    mats = [*weights.recurrents, *weights.kernels[1:], weights.dense]
    mats = [np.ascontiguousarray(m, dtype=np.float32) for m in mats]
    h = np.random.default_rng(0).standard_normal((batch, weights.units)).astype(np.float32)
    outs = [np.empty((batch, m.shape[1]), dtype=np.float32) for m in mats]
    started = time.perf_counter()
    for _ in range(steps):
        for mat, out in zip(mats, outs, strict=True):
            np.matmul(h, mat, out=out)
    return time.perf_counter() - started


def _step_ids(step, rnd, vocab, batch, chars):
    """Yield [batch] id arrays, ``chars`` of them, from a newline prime."""
    noise = rnd.NoiseStream(1, batch, len(vocab), np.float32(1.0))
    ids = np.full((batch, 1), vocab.index("\n") if "\n" in vocab else 0, dtype=np.int64)
    state = step.zero_state(batch)
    for position in range(chars):
        logits, state = step(ids, state)
        ids = np.argmax(logits + noise(position), axis=1)[:, None]
        yield ids[:, 0]


def _onnx_session(model: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _onnx_ids(session, vocab, batch, chars):
    """The README's recipe: the file's generator, chunks of 32 doubling up to 2048."""
    ids = np.full((batch, 1), vocab.index("\n") if "\n" in vocab else 0, dtype=np.int64)
    state = np.zeros((batch, session.get_inputs()[1].shape[1]), dtype=np.float32)
    offset, chunk = 0, 32
    while offset < chars:
        steps = min(chunk, chars - offset)
        generated, state = session.run(
            ["generated", "gen_state"],
            {
                "ids": ids,
                "state": state,
                "steps": np.array(steps),
                "offset": np.array(offset),
                "temperature": np.array(1.0, np.float32),
                "seed": np.array(1),
            },
        )
        yield from generated.T
        ids, offset, chunk = generated[:, -1:], offset + steps, min(chunk * 2, 2048)


def _generator(kind: str, model: str, rnd, vocab: list, batch: int, threads: int):
    """A function chars -> iterator of [batch] ids, the contender loaded once."""
    if kind == "onnx":
        session = _onnx_session(model, threads)
        return lambda chars: _onnx_ids(session, vocab, batch, chars)
    step = _LiteRT(model, batch, threads) if kind == "litert" else _NumpyGru(model)
    return lambda chars: _step_ids(step, rnd, vocab, batch, chars)


def main(argv: list[str]) -> None:
    kind, model, randomness, vocab_path, threads, mode, chars = argv[:7]
    threads_n, n = int(threads), int(chars)
    rnd = _randomness(randomness) if kind != "onnx" else None
    with open(vocab_path, encoding="utf-8") as handle:
        vocab = json.load(handle)
    if mode == "first":
        out = sys.stdout
        for ids in _generator(kind, model, rnd, vocab, 1, threads_n)(n):
            out.write(vocab[int(ids[0])])
            out.flush()
        return
    repeats = int(argv[7])
    rates = {}
    for batch in (int(b) for b in argv[8:]):
        steps = max(1, n // batch)
        if kind == "gemm":
            _products_seconds(model, batch, min(steps, 50))  # warm-up
            seconds = [_products_seconds(model, batch, steps) for _ in range(repeats)]
            rates[batch] = steps * batch / statistics.median(seconds)
            continue
        generate = _generator(kind, model, rnd, vocab, batch, threads_n)
        for _ in generate(min(steps, 50)):
            pass  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in generate(steps):
                pass
            times.append(time.perf_counter() - started)
        rates[batch] = steps * batch / statistics.median(times)
    print(json.dumps(rates))


if __name__ == "__main__":
    main(sys.argv[1:])
