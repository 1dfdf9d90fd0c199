"""Multi-worker training (TF_CONFIG, MultiWorkerMirroredStrategy): who is the chief, how long a
worker waits for the others, and how the chief hands its run to the other workers.

Every worker must issue the same collective operations in the same order, or TensorFlow fails
with "Collective instance N expected type ..." (or waits forever). So every worker runs the same
code: the same steps, the same ``model.save`` calls, the same samples. Only the folder differs:
the chief's is the run directory, every other worker's a private temporary one, removed at the
end. Decisions (best epoch, learning-rate cut) are taken on the chief's metrics, broadcast to all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_edge.runtime.errors import GruEdgeError, UsageError

# How long a worker waits for the others: to join at the start, and in any one collective
# operation (a step's gradient all-reduce, a broadcast). Long enough for a slow first start
# (importing TensorFlow, reading the corpus) and a slow epoch end on the chief (saving, samples).
DEFAULT_WORKER_TIMEOUT = 120.0


class ClusterError(GruEdgeError):
    """A multi-worker cluster that is misconfigured, did not form, or lost a worker."""


@dataclass(frozen=True)
class Worker:
    """This process's place in the TF_CONFIG cluster."""

    task: str  # "worker 1", "chief 0"
    workers: int  # tasks in the cluster
    chief: bool  # the one that writes the run directory


def this_worker(environ: dict[str, str] | None = None) -> Worker | None:
    """This process's task from TF_CONFIG, or None without TF_CONFIG; UsageError if garbled.

    The chief is the "chief" task, or worker 0 when the cluster has no "chief" job (as
    TensorFlow's multi_worker_util.is_chief decides).
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        return None
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], task["index"]
        jobs = {name: list(addresses) for name, addresses in cluster.items()}
        if not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
            raise KeyError("index")
    except (ValueError, TypeError, KeyError, AttributeError):
        raise UsageError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            f'"task": {{"type": "worker", "index": 0}}}}, got {raw[:80]!r}'
        ) from None
    chief = (kind == "chief") if "chief" in jobs else (kind == "worker" and index == 0)
    return Worker(f"{kind} {index}", sum(len(a) for a in jobs.values()), chief)


def check_timeout(seconds: float) -> None:
    """UsageError unless ``seconds`` is a usable --worker-timeout."""
    if not (np.isfinite(seconds) and 1 <= seconds <= 86_400):
        raise UsageError(f"--worker-timeout must be between 1 and 86400 seconds, got {seconds:g}")


def make_strategy(tf: Any, timeout: float) -> Any:
    """A MultiWorkerMirroredStrategy whose workers give up on each other after ``timeout`` s.

    Its constructor waits for every worker (an all-reduce as barrier), then a thread checks the
    peers' health and aborts the collectives when one is gone. Both settings are class
    attributes TensorFlow reads in the constructor (its own tests set them the same way); the
    CommunicationOptions timeout bounds every collective, for a peer that hangs without dying.
    """
    from tensorflow.python.distribute import collective_all_reduce_strategy as collective

    extended = collective.CollectiveAllReduceExtended
    extended._check_health_initial_timeout = int(timeout)
    extended._check_health_interval = max(1, min(30, int(timeout) // 4))
    extended._check_health_timeout = max(1, min(10, int(timeout) // 4))
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    message = (
        f"not every worker in TF_CONFIG joined within {timeout:g} s; start the same "
        "gru-edge train on every machine of the cluster, or raise --worker-timeout"
    )
    # The barrier's own timeout does not cover the wait for a peer that never connects, and
    # that wait holds the interpreter (a Python thread never runs): a watchdog process ends this
    # one then, after writing the CLI's one-line error.
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(timeout + 5), str(os.getpid()), message],
        stdin=subprocess.DEVNULL,
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "Timeout waiting for the cluster" not in str(exc):
            raise
        raise ClusterError(message) from None
    finally:
        watchdog.kill()
        watchdog.wait()


_WATCHDOG = """
import os, signal, sys, time
time.sleep(float(sys.argv[1]))
sys.stderr.write("Error: " + sys.argv[3] + chr(10))
sys.stderr.flush()
os.kill(int(sys.argv[2]), signal.SIGKILL)
"""


@contextmanager
def collective_errors(tf: Any, timeout: float) -> Iterator[None]:
    """Turn TensorFlow's errors for a lost or stalled worker into one ClusterError line."""
    lost = (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.CancelledError,
        tf.errors.AbortedError,
        tf.errors.InternalError,
    )
    try:
        yield
    except lost as exc:
        reason = " ".join(str(getattr(exc, "message", exc)).split())[:160]
        raise ClusterError(
            f"multi-worker training stopped: a worker is gone or stalled ({reason}); each "
            f"worker waits {timeout:g} s (--worker-timeout); restart every worker with --resume"
        ) from None


class Sync:
    """The collectives our own code issues: broadcasts from the chief to every worker."""

    def __init__(self, tf: Any, strategy: Any, chief: bool) -> None:
        self._tf, self._strategy, self._chief = tf, strategy, chief

    @property
    def chief(self) -> bool:
        return self._chief

    def array(self, values: np.ndarray) -> np.ndarray:
        """The chief's ``values`` (float64 or int64) on every worker: a sum where every other
        worker adds zeros, so every worker gets the same bits."""
        tf, strategy = self._tf, self._strategy
        mine = values if self._chief else np.zeros_like(values)
        local = strategy.run(lambda: tf.identity(tf.constant(mine)))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None)
        return np.asarray(total.numpy(), dtype=values.dtype)

    def data(self, data: bytes | None) -> bytes:
        """The chief's bytes on every worker (others pass None): the length, then the bytes."""
        size = int(self.array(np.array([len(data or b"")], dtype=np.int64))[0])
        if size == 0:
            return b""
        mine = np.frombuffer(data, dtype=np.uint8) if self._chief else np.zeros(size, np.uint8)
        return self.array(mine.astype(np.int64)).astype(np.uint8).tobytes()

    def files(self, source: Path, target: Path, names: list[str]) -> None:
        """Copy the chief's files ``names`` from its ``source`` into every other worker's
        ``target`` (the chief keeps its own)."""
        for name in names:
            mine = (source / name).read_bytes() if self._chief else None
            data = self.data(mine)
            if not self._chief:
                (target / name).write_bytes(data)

    def metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The chief's epoch metrics on every worker, so that every worker takes the same
        best-epoch and learning-rate decisions (the keys are the same on every worker)."""
        keys = sorted(metrics)
        values = self.array(np.array([metrics[k] for k in keys], dtype=np.float64))
        return dict(zip(keys, (float(v) for v in values), strict=True))
