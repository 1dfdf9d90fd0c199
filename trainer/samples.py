"""The notebook's per-epoch samples, through the runtime's sampler and generation loop."""

from __future__ import annotations

from typing import Any

import numpy as np

from gru_edge.runtime.generation import generate_ids
from gru_edge.runtime.sampler import SamplingSettings
from gru_edge.trainer.config import TrainConfig
from gru_edge.trainer.corpus import Corpus
from gru_edge.trainer.model import build_stepper, step_function
from gru_edge.trainer.numpy_step import numpy_step


def epoch_samples(model: Any, corpus: Corpus, config: TrainConfig, epoch: int) -> str:
    """One block of text: a random window of the corpus as the prime, then
    ``config.sample_length`` characters at each of ``config.temperatures``.

    Seeded by (seed, epoch), so a resumed run writes the samples an uninterrupted one would.
    """
    # numpy is ~10x faster per character than a Keras stepper (trainer/numpy_step.py).
    step = numpy_step(model) or step_function(build_stepper(model))
    rng = np.random.default_rng([config.seed, epoch, 1])
    start = int(rng.integers(0, len(corpus.ids) - config.seq_len))
    prime = corpus.decode(start, start + config.seq_len)
    prime_ids = corpus.ids[start : start + config.seq_len].tolist()
    blocks = [f"----- epoch {epoch + 1}, prime: {prime!r}\n"]
    for temperature in config.temperatures:
        ids = generate_ids(
            step,
            prime_ids,
            config.sample_length,
            state_width=config.units * config.layers,  # the width of the stepper's state
            settings=SamplingSettings(temperature=temperature),
            seed=int(rng.integers(0, 1 << 62)),
        )
        text = corpus.vocab.decode(int(row[0]) for row in ids)
        blocks.append(f"----- temperature {temperature}\n{text}\n")
    return "".join(blocks)
