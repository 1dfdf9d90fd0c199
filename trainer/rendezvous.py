"""Before TensorFlow's cluster forms: the workers find each other in Python.

TensorFlow's own wait for the other workers (MultiWorkerMirroredStrategy's constructor) holds
the interpreter: no timeout of ours, no Ctrl-C and no SIGTERM ends it (TensorFlow's preemption
notifier takes SIGTERM over and only records it). So the workers first wait here, where all
three work, until every one is up; TensorFlow's wait then only lasts while they connect.
"""

from __future__ import annotations

import errno
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gru_edge.trainer.cluster import ClusterError, Worker, not_joined


def wait_for_peers(
    worker: Worker, timeout: float, say: Callable[[str], None], poll: float = 0.2
) -> None:
    """Wait until the cluster's tasks are up, at most ``timeout`` s; ClusterError otherwise.

    The chief waits until every other task's port answers; every other task holds its own port
    open meanwhile (a listener that answers nothing) and waits until the chief's port answers,
    which TensorFlow opens as the chief enters its own wait. Ctrl-C and SIGTERM end the wait.
    """
    deadline = time.monotonic() + timeout
    whom = ", ".join(worker.others if worker.chief else [worker.leader])
    with _signals_end_the_wait():
        if whom:
            say(f"{worker.task} of {worker.workers}: waiting up to {timeout:g} s for {whom}")
        if worker.chief:
            _check_port_free(worker)
            pending = list(worker.others)
            while pending := [a for a in pending if not _answers(a)]:
                _sleep(deadline, poll, timeout, pending)
            return
        placeholder = _listen(worker)
        try:
            while not _answers(worker.leader):
                _drain(placeholder)
                _sleep(deadline, poll, timeout, [worker.leader])
        finally:
            placeholder.close()


def _sleep(deadline: float, poll: float, timeout: float, pending: list[str]) -> None:
    if time.monotonic() >= deadline:
        raise ClusterError(not_joined(timeout, f" (no answer from {', '.join(pending)})"))
    time.sleep(poll)


def _answers(address: str) -> bool:
    """Whether a TCP connection to "host:port" succeeds now."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
            return True
    except OSError:
        return False


def _bind(worker: Worker) -> socket.socket:
    """A socket bound to this task's port on every interface, as TensorFlow will bind it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
    try:
        sock.bind(("", worker.port))
    except OSError as exc:
        sock.close()
        why = "is in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ClusterError(
            f"{worker.task}: port {worker.port} (TF_CONFIG's {worker.address}) {why}; "
            "stop what holds it or give this task another port in TF_CONFIG on every worker"
        ) from None
    return sock


def _check_port_free(worker: Worker) -> None:
    _bind(worker).close()


def _listen(worker: Worker) -> socket.socket:
    sock = _bind(worker)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> None:
    """Close the connections the chief's probes made, so that the backlog never fills."""
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.close()


class _Stopped(BaseException):
    """SIGTERM during the wait for the other workers."""


@contextmanager
def _signals_end_the_wait() -> Iterator[None]:
    """Ctrl-C and SIGTERM end the wait for the other workers with one line."""

    def stop(_signum: int, _frame: Any) -> None:
        raise _Stopped

    previous: Callable[..., Any] | int | None = None
    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        previous = None
    try:
        yield
    except (KeyboardInterrupt, _Stopped) as exc:
        name = "SIGTERM" if isinstance(exc, _Stopped) else "Ctrl-C"
        error = ClusterError(
            f"stopped by {name} while waiting for the other workers to join; nothing was trained"
        )
        error.exit_code = 143 if name == "SIGTERM" else 130
        raise error from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
