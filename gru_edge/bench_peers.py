"""`gru-edge bench`'s peers: LiteRT and a numpy float32 GRU loop on the run's own weights, and
whole processes timed to their first character with their peak RSS.

Every peer runs gru_edge/bench_worker.py in a fresh process (only numpy and its own runtime
imported), so its speed, start-up and memory are its own. The LiteRT file is the one a Keras user
would make: a stateful one-step twin of the run's model (one id and the state in, logits and the
state out), its GRU with ``unroll=True`` (straight-line ops; the default GRU becomes a WHILE loop,
1.6x slower), converted with ``TFLiteConverter.from_keras_model``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gru_edge.runtime import randomness
from gru_edge.runtime.errors import MissingExtraError

WORKER = Path(__file__).with_name("bench_worker.py")
FIRST_CHARS = 2000  # what each start-up process writes (the first is timed, the whole for RSS)


@dataclass
class ProcessFigures:
    """One contender as a whole process: spawn to first character, and its peak RSS."""

    name: str
    first_char_s: float | None
    peak_rss_mb: float | None
    note: str = ""


# A small launcher between bench and the timed process: a child's peak RSS as the kernel reports
# it includes the image it was forked from, which is bench's own (TensorFlow: ~600 MB). Forked
# from this launcher instead, the timed process's figure is its own. The launcher notes the
# monotonic clock (system-wide on Linux) just before it spawns, so its own start-up is not timed.
_LAUNCHER = """
import resource, subprocess, sys, time
t0 = time.monotonic()
code = subprocess.call(sys.argv[1:], stderr=subprocess.DEVNULL)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(t0, rss, code, file=sys.stderr)
"""


def run_process(command: list[str]) -> tuple[float, float, int]:
    """(seconds from spawn to the first byte on stdout, peak RSS in MB, exit code) of one
    process, both measured around the process itself (see _LAUNCHER)."""
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", _LAUNCHER, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.monotonic()
    proc.stdout.read()
    _, report = proc.communicate()
    try:
        t0, rss_kib, code = report.decode().split()[-3:]
        elapsed, peak, status = first_at - float(t0), int(rss_kib) / 1024, int(code)
    except ValueError:
        return 0.0, 0.0, proc.returncode or 1
    return elapsed, peak, status if first else (status or 1)  # ru_maxrss: KiB on Linux


def measure_process(name: str, command: list[str], repeats: int) -> ProcessFigures:
    """Median first-character time and largest peak RSS over ``repeats`` runs of ``command``."""
    firsts, peaks = [], []
    for _ in range(repeats):
        first, peak, code = run_process(command)
        if code != 0:
            return ProcessFigures(name, None, None, f"exited with status {code}")
        firsts.append(first)
        peaks.append(peak)
    return ProcessFigures(name, statistics.median(firsts), max(peaks))


@dataclass
class PeerFiles:
    """What the workers read, written once into a scratch folder."""

    folder: Path
    vocab: Path
    npz: Path
    tflite: Path | None
    litert_note: str = ""


def prepare_peers(run_dir: Path, vocab: Path) -> PeerFiles:
    """The run's weights as an .npz and (with TensorFlow's converter) the LiteRT twin, beside
    ``vocab`` (the vocabulary as a JSON array)."""
    from gru_edge.trainer.keras_files import load_best_model
    from gru_edge.trainer.model import grus_and_dense
    from gru_edge.trainer.rundir import load_run

    folder = vocab.parent
    run = load_run(run_dir)
    model = load_best_model(
        run, "pass --run-dir only for a run directory written by gru-edge train"
    )
    grus, dense = grus_and_dense(model)
    arrays: dict[str, np.ndarray] = {"layers": np.array(len(grus))}
    for i, gru in enumerate(grus):
        kernel, recurrent, bias = gru.get_weights()
        arrays |= {f"kernel{i}": kernel, f"recurrent{i}": recurrent, f"bias{i}": bias}
    arrays["dense"], arrays["dense_bias"] = dense.get_weights()
    npz = folder / "weights.npz"
    np.savez(npz, **arrays)
    files = PeerFiles(folder, vocab, npz, None)
    try:
        import ai_edge_litert.interpreter  # noqa: F401  (only to say early that it is missing)
    except ImportError:
        files.litert_note = (
            "LiteRT rows skipped: ai-edge-litert is not installed; pip install 'gru-edge[bench]'"
        )
        return files
    try:
        converted = litert_twin(model)
    except Exception as exc:  # an optional row: any converter failure only skips it
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        files.litert_note = f"LiteRT rows skipped: the TFLite converter failed: {reason}"
        return files
    files.tflite = folder / "twin.tflite"
    files.tflite.write_bytes(converted)
    return files


def litert_twin(model) -> bytes:
    """The stateful one-step twin of ``model`` as a .tflite file's bytes."""
    from gru_edge.trainer.model import build_stepper
    from gru_edge.trainer.tf_env import load_tf

    tf, _ = load_tf()
    twin = build_stepper(model, one_step=True)
    return tf.lite.TFLiteConverter.from_keras_model(twin).convert()


def worker_command(kind: str, model: Path, vocab: Path, *args: object) -> list[str]:
    """The command line of one bench_worker run."""
    return [
        sys.executable,
        str(WORKER),
        kind,
        str(model),
        str(randomness.__file__),
        str(vocab),
        *(str(a) for a in args),
    ]


def peer_rates(
    kind: str, model: Path, vocab: Path, threads: int, repeats: int, batches: list[int]
) -> dict[int, float]:
    """batch -> chars/s of one contender, measured in its own warmed-up process."""
    command = worker_command(kind, model, vocab, threads, "rate", 20000, repeats, *batches)
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=_env(threads))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MissingExtraError(f"{kind} worker failed: {last}")
    return {int(k): float(v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def _env(threads: int) -> dict[str, str]:
    """The environment with numpy's BLAS held to ``threads`` threads, as the runtimes are."""
    limit = str(threads)
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {**os.environ, **dict.fromkeys(names, limit)}


# The in-graph generator in the peers' own harness (a loop of session.run calls, no decoding),
# interleaved with them: the figure the peers' ratios are taken against.
RECIPE_LABEL = "in-graph, README recipe loop, interleaved with the peers"
NUMPY_LABEL = "numpy float32 GRU loop"
LITERT_LABEL = "LiteRT (ai-edge-litert, unrolled twin)"
# Not a contender: the float32 matrix products of a step alone (numpy), no gates, noise or pick:
# what those products cost through OpenBLAS. Not a bound: onnxruntime's kernels ran version 4's
# whole greedy step faster at batch 256 (docs/benchmarks.md).
PRODUCTS_LABEL = "numpy: a step's float32 matrix products alone"
BATCHES = [1, 64, 256]


def _row_name(label: str, batch: int) -> str:
    return f"{label}, 1 stream" if batch == 1 else f"{label}, batch {batch}, aggregate"


def peer_section(
    model_path: Path,
    run_dir: Path | None,
    vocab: list[str],
    folder: Path,
    *,
    threads: int,
    repeats: int,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, int, float]], list[ProcessFigures], list[str]]:
    """The peers' rows (name, batch, chars/s), every contender's process figures (the plain
    onnxruntime recipe always; the peers with ``run_dir``), and a note per peer that cannot run."""
    vocab_path = folder / "vocab.json"
    vocab_path.write_text(json.dumps(vocab), encoding="utf-8")
    log("measuring the plain onnxruntime recipe's start-up in fresh processes")
    recipe = worker_command("onnx", model_path, vocab_path, threads, "first", FIRST_CHARS)
    processes = [measure_process("plain onnxruntime recipe (README)", recipe, repeats)]
    if run_dir is None:
        return [], processes, ["LiteRT and numpy rows skipped: pass --run-dir RUN_DIR"]
    log("building the peers from the run's Keras model")
    try:
        files = prepare_peers(run_dir, vocab_path)
    except MissingExtraError as exc:
        return [], processes, [f"LiteRT and numpy rows skipped: {exc}"]
    notes = [files.litert_note] if files.litert_note else []
    contenders = [("onnx", RECIPE_LABEL, model_path), ("numpy", NUMPY_LABEL, files.npz)]
    if files.tflite is not None:
        contenders.append(("litert", LITERT_LABEL, files.tflite))
    contenders.append(("gemm", PRODUCTS_LABEL, files.npz))
    # Rounds interleaved: each round runs every contender once, in its own warmed-up process,
    # so a change in the machine's other work hits them alike; medians over the rounds.
    rates: dict[str, dict[int, list[float]]] = {}
    for round_ in range(repeats):
        log(f"measuring the peers, round {round_ + 1} of {repeats}")
        for kind, label, model in list(contenders):
            try:
                measured = peer_rates(kind, model, vocab_path, threads, 1, BATCHES)
            except MissingExtraError as exc:
                notes.append(f"{label} rows skipped: {exc}")
                contenders.remove((kind, label, model))
                rates.pop(label, None)
                continue
            for batch, rate in measured.items():
                rates.setdefault(label, {}).setdefault(batch, []).append(rate)
    rows = [
        (_row_name(label, b), b, statistics.median(rate[b]))
        for label, rate in rates.items()
        for b in BATCHES
    ]
    for kind, label, model in contenders[1:]:
        if kind == "gemm":
            continue  # no text, no start-up: a rate only
        command = worker_command(kind, model, vocab_path, threads, "first", FIRST_CHARS)
        processes.append(measure_process(label, command, repeats))
    return rows, processes, notes
