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
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gru_edge.runtime.errors import GruEdgeError, UsageError, shown
from gru_edge.trainer import rundir


class ClusterError(GruEdgeError):
    """A multi-worker cluster that is misconfigured, did not form, or lost a worker."""


@dataclass(frozen=True)
class Worker:
    """This process's place in the TF_CONFIG cluster."""

    task: str  # "worker 1", "chief 0"
    workers: int  # tasks in the cluster
    chief: bool  # the one that writes the run directory
    address: str = ""  # this task's "host:port" in TF_CONFIG
    others: tuple[str, ...] = ()  # every other task's "host:port"
    leader: str = ""  # the chief's "host:port"

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


_JOBS = ("chief", "worker")  # what MultiWorkerMirroredStrategy trains with
_EXAMPLE = (
    'e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, '
    '"task": {"type": "worker", "index": 0}}'
)


def this_worker(environ: dict[str, str] | None = None) -> Worker | None:
    """This process's task from TF_CONFIG, or None without TF_CONFIG; UsageError naming the
    field that is wrong otherwise.

    The chief is the "chief" task, or worker 0 when the cluster has no "chief" job (as
    TensorFlow's multi_worker_util.is_chief decides).
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        return None

    def bad(what: str) -> UsageError:
        return UsageError(f"TF_CONFIG {what}; {_EXAMPLE}")

    try:
        spec = json.loads(raw)
    except ValueError:
        raise bad(f"is not JSON: {shown(raw, 60)}") from None
    if not isinstance(spec, dict):
        raise bad(f"must be a JSON object, got {shown(raw, 60)}")
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad(f'"cluster" must be an object of jobs, got {shown(cluster)}')
    for name, addresses in cluster.items():
        if name not in _JOBS:
            raise bad(
                f'"cluster" has a {shown(name)} job; --strategy multi-worker trains with '
                '"worker" tasks (and at most one "chief"), no parameter servers or evaluators'
            )
        if not isinstance(addresses, list) or not addresses:
            raise bad(
                f'"cluster" "{name}" must be a list of "host:port" strings, got {shown(addresses)}'
            )
        for address in addresses:
            if not _is_address(address):
                raise bad(f'"cluster" "{name}" holds {shown(address)}, not a "host:port" string')
    if len(cluster.get("chief", [])) > 1:
        raise bad(f'"cluster" "chief" must list one task, got {len(cluster["chief"])}')
    if not isinstance(task, dict):
        raise bad(f'"task" must be an object with "type" and "index", got {shown(task)}')
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise bad(f'"task" "type" {shown(kind)} is not a job of "cluster" ({", ".join(cluster)})')
    if isinstance(index, bool) or not isinstance(index, int):
        raise bad(f'"task" "index" must be an integer, got {shown(index)}')
    if not 0 <= index < len(cluster[kind]):
        raise bad(f'"task" "index" {index} is not one of the {len(cluster[kind])} "{kind}" tasks')
    chief = (kind == "chief") if "chief" in cluster else (kind == "worker" and index == 0)
    leader = cluster["chief"][0] if "chief" in cluster else cluster["worker"][0]
    address = cluster[kind][index]
    everyone = [(name, i, a) for name in _JOBS for i, a in enumerate(cluster.get(name, []))]
    others = tuple(a for name, i, a in everyone if (name, i) != (kind, index))
    return Worker(f"{kind} {index}", len(everyone), chief, address, others, leader)


def _is_address(value: Any) -> bool:
    """A "host:port" string with a port in 1..65535."""
    if not isinstance(value, str) or ":" not in value:
        return False
    host, port = value.rsplit(":", 1)
    return bool(host) and port.isdigit() and 1 <= int(port) <= 65535


def joins_cluster(worker: Worker, strategy: str | None, resume: bool, out: Path) -> bool:
    """Whether this process will join TF_CONFIG's cluster: every non-chief does; the chief
    with --strategy multi-worker, or resuming a run that was trained so."""
    if not worker.chief or strategy is not None:
        return not worker.chief or strategy == "multi-worker"
    if not resume:
        return False
    try:
        return rundir.read_info(out, "")["config"]["strategy"] == "multi-worker"
    except (GruEdgeError, KeyError, TypeError):
        return False  # load_for_resume says what is wrong with the run


def check_timeout(seconds: float) -> None:
    """UsageError unless ``seconds`` is a usable --worker-timeout."""
    if not (np.isfinite(seconds) and 1 <= seconds <= 86_400):
        raise UsageError(f"--worker-timeout must be between 1 and 86400 seconds, got {seconds:g}")


def check_open_port(worker: Worker, allow: bool) -> str:
    """The one-line warning about TensorFlow's port, or UsageError without ``allow``.

    TensorFlow's gRPC server binds "0.0.0.0:PORT" whatever host TF_CONFIG names (its
    grpc_server_lib.cc; neither ServerDef nor RPCOptions has a bind address) and has no
    authentication: whoever reaches the port can run operations in this process.
    """
    risk = (
        f"TensorFlow's multi-worker port {worker.port} listens on every network interface "
        f"(not only {worker.address.rsplit(':', 1)[0]}) and runs unauthenticated commands "
        "from anyone who can reach it"
    )
    if not allow:
        raise UsageError(
            f"{risk}; keep it private (firewall, private network or SSH tunnel: see "
            "docs/several-machines.md), then pass --allow-open-port to train"
        )
    return f"warning: {risk}; keep it private (docs/several-machines.md)"


def make_strategy(
    tf: Any, timeout: float, worker: Worker, say: Callable[[str], None] = lambda _m: None
) -> Any:
    """A MultiWorkerMirroredStrategy whose workers give up on each other after ``timeout`` s.

    First the workers find each other in Python (wait_for_peers), where a timeout, Ctrl-C and
    SIGTERM work; TensorFlow's own wait, which none of them can end, then only lasts while the
    workers connect. Its constructor waits for every worker (an all-reduce as barrier), then a
    thread checks the peers' health and aborts the collectives when one is gone. Both settings
    are class attributes TensorFlow reads in the constructor (its own tests set them the same
    way); the CommunicationOptions timeout bounds every collective, for a peer that hangs
    without dying.
    """
    from tensorflow.python.distribute import collective_all_reduce_strategy as collective

    from gru_edge.trainer.rendezvous import wait_for_peers

    wait_for_peers(worker, timeout, say)
    extended = collective.CollectiveAllReduceExtended
    extended._check_health_initial_timeout = int(timeout)
    extended._check_health_interval = max(1, min(30, int(timeout) // 4))
    extended._check_health_timeout = max(1, min(10, int(timeout) // 4))
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    message = not_joined(timeout, "")
    # The barrier's own timeout does not cover the wait for a peer that never connects, and
    # that wait holds the interpreter (a Python thread never runs): a watchdog process ends this
    # one then, after writing the CLI's one-line error. Only a peer that vanishes between
    # wait_for_peers and the barrier gets this far.
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(timeout + 5), str(os.getpid()), message],
        stdin=subprocess.DEVNULL,
    )
    terminate = signal.getsignal(signal.SIGTERM)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "Timeout waiting for the cluster" not in str(exc):
            raise
        raise ClusterError(message) from None
    finally:
        watchdog.kill()
        watchdog.wait()
        # TensorFlow's preemption notifier took SIGTERM over (it only records it, and the run
        # went on): give it back, so that SIGTERM ends a worker as it ends any process.
        signal.signal(signal.SIGTERM, terminate if terminate is not None else signal.SIG_DFL)


def not_joined(timeout: float, silent: str) -> str:
    """The message for a cluster that did not form; ``silent`` names who never answered."""
    return (
        f"not every worker in TF_CONFIG joined within {timeout:g} s{silent}; start the same "
        "gru-edge train on every machine of the cluster, or raise --worker-timeout"
    )


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

    def metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The chief's epoch metrics on every worker, so that every worker takes the same
        best-epoch and learning-rate decisions (the keys are the same on every worker)."""
        keys = sorted(metrics)
        values = self.array(np.array([metrics[k] for k in keys], dtype=np.float64))
        return dict(zip(keys, (float(v) for v in values), strict=True))


def local_strategy(tf: Any, name: str) -> Any:
    """The tf.distribute strategy named by --strategy (multi-worker: see make_strategy)."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy(devices=None if gpus else ["/cpu:0"])
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
