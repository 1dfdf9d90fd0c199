"""Epoch time of `gru-edge train` against the seed notebook's plain ``model.fit``, same run.

The seed notebook one-hot encodes every window into numpy arrays up front and calls
``model.fit(x, y, batch_size=128)``. Here both sides get the same corpus split, windows, batch
size and model (trainer/model.py build_model, same seed); the seed side also validates on the
held-out windows, so both do the same work per epoch. Ours is timed as a whole epoch of
`gru-edge train` (fit, validation, checkpoint, best model, history, curves, samples): the time
between consecutive epoch summary lines. Theirs is the time between ``on_epoch_end`` calls.

    .venv/bin/python examples/epoch_speed.py [CORPUS] [--epochs 5] [--rounds 1]

Prints one line per side and round with every epoch's seconds, and the median of epochs 2-5.
Rounds alternate the two sides, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def seed_style(corpus_path: Path, epochs: int, seed: int) -> tuple[list[float], list[float]]:
    """The notebook's loop: one-hot numpy arrays in memory, one ``fit`` call."""
    import numpy as np

    from gru_edge.trainer.config import TrainConfig
    from gru_edge.trainer.corpus import load_corpus
    from gru_edge.trainer.epochs import Split
    from gru_edge.trainer.model import build_model
    from gru_edge.trainer.tf_env import load_tf

    _, keras = load_tf()
    config = TrainConfig(seed=seed, epochs=epochs)
    corpus = load_corpus(corpus_path)
    split = Split.of(corpus, config)
    vocab = split.vocab_size

    def arrays(ids, starts):
        starts = np.asarray(starts)
        x = np.zeros((len(starts), config.seq_len, vocab), dtype=np.float32)
        y = np.zeros((len(starts), vocab), dtype=np.float32)
        for i, s in enumerate(starts):
            x[i, np.arange(config.seq_len), ids[s : s + config.seq_len]] = 1
            y[i, ids[s + config.seq_len]] = 1
        return x, y

    x, y = arrays(split.train_ids, split.train_starts)
    val = arrays(split.val_ids, split.val_starts)
    keras.utils.set_random_seed(seed)
    model = build_model(vocab, config)
    ends: list[tuple[float, float]] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(_now())

    start = _now()
    model.fit(
        x,
        y,
        batch_size=config.batch_size,
        epochs=epochs,
        validation_data=val,
        verbose=0,
        callbacks=[Clock()],
    )
    return _intervals([start, *ends])


def ours(corpus_path: Path, epochs: int, seed: int, extra: dict) -> tuple[list[float], list[float]]:
    """`gru-edge train` as the CLI runs it (samples on), timed between epoch summaries."""
    from gru_edge.trainer.config import TrainOptions
    from gru_edge.trainer.train import train

    marks = [_now()]

    def log(line: str) -> None:
        if line.startswith("epoch "):
            marks.append(_now())

    with tempfile.TemporaryDirectory() as tmp:
        options = TrainOptions(epochs=epochs, seed=seed, patience=0, **extra)
        result = train(corpus_path, Path(tmp) / "run", options, log=log, quiet=False)
        marks.append(_now())  # the last epoch's samples and files
    fits = " ".join(f"{row['seconds']:.2f}" for row in result.history)
    print(f"{'':15s} of which fit: {fits}")
    # Interval k: from epoch k-1's summary to epoch k's (includes epoch k-1's samples).
    wall, cpu = _intervals(marks)
    return wall[:epochs], cpu[:epochs]


def _now() -> tuple[float, float]:
    """Wall-clock and process CPU seconds: CPU time is less at the mercy of a shared machine."""
    return time.perf_counter(), time.process_time()


def _intervals(marks: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    pairs = list(zip(marks, marks[1:], strict=False))
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", default="poems.txt", type=Path)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        "seed fit": {"wall": [], "cpu": []},
        "gru-edge train": {"wall": [], "cpu": []},
    }
    for _ in range(args.rounds):
        for name, result in results.items():
            if name == "seed fit":
                wall, cpu = seed_style(args.corpus, args.epochs, args.seed)
            else:
                wall, cpu = ours(args.corpus, args.epochs, args.seed, {})
            for kind, times in (("wall", wall), ("cpu", cpu)):
                middle = statistics.median(times[1:5])
                result[kind].append(middle)
                shown = " ".join(f"{t:.2f}" for t in times)
                print(f"{name:15s} {kind:4s} epochs (s): {shown}   median of 2-5: {middle:.2f} s")
    for kind in ("wall", "cpu"):
        theirs = statistics.median(results["seed fit"][kind])
        mine = statistics.median(results["gru-edge train"][kind])
        print(
            f"{kind}: gru-edge train / seed fit = {mine / theirs:.2f}x "
            f"({mine:.2f} s vs {theirs:.2f} s, median over {args.rounds} round(s))"
        )


if __name__ == "__main__":
    main()
