"""Loads the model files, binds the socket and runs the app on uvicorn until SIGTERM or Ctrl-C.

Everything that can fail does so before the first request, as a one-line GruEdgeError: a model
file that does not load, two files with one name, a port already taken. A stop signal makes the
server take no new requests, lets the open ones finish for ``grace`` seconds, ends the rest with
an error event, and returns normally, so the process exits 0 (uvicorn itself re-raises the
signal after its shutdown).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gru_edge.runtime.errors import MissingExtraError, UsageError
from gru_edge.runtime.generator import Generator
from gru_edge.serve.requests import ServeLimits

DEFAULT_GRACE = 10.0  # seconds open requests get to finish after a stop signal


@dataclass(frozen=True)
class ServeConfig:
    models: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    limits: ServeLimits = ServeLimits()
    threads: int | None = 1  # onnxruntime intra-op threads per model
    grace: float = DEFAULT_GRACE
    verbose: bool = False  # uvicorn's access log


def served_name(path: Path) -> str:
    """The name clients pass as ``model``: the file name without .onnx / .ort."""
    return path.name.removesuffix(".onnx").removesuffix(".ort")


def load_models(config: ServeConfig) -> dict[str, Generator]:
    """Every model file loaded and checked, by name; the first failure raises."""
    if not config.models:
        raise UsageError("serve needs at least one model file")
    generators: dict[str, Generator] = {}
    for path in config.models:
        name = served_name(path)
        if name in generators:
            raise UsageError(
                f"two model files are named {name!r}; clients pick a model by its file name, "
                "so rename one"
            )
        generators[name] = Generator.load(path, device="cpu", threads=config.threads)
    return generators


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; a port in use or a bad address is a UsageError."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {port}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot listen on {host}:{port}: {reason}; pick another --port") from None
    sock.setblocking(False)
    return sock


def build_server(config: ServeConfig, generators: dict[str, Generator]) -> Any:
    """A uvicorn server for the app (not started)."""
    try:
        import uvicorn

        from gru_edge.serve.app import create_app, drain
    except ImportError:
        raise MissingExtraError(
            "gru-edge serve needs Starlette and uvicorn, which this install lacks; "
            "install the service extra: pip install 'gru-edge[serve]'"
        ) from None

    app = create_app(generators, config.limits)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Not recorded in _captured_signals: uvicorn would re-raise it after shutdown.
            if self.should_exit:
                self.force_exit = True
                return
            self.should_exit = True
            self.started_loop.call_soon_threadsafe(drain, app, config.grace)

        async def startup(self, sockets: Any = None) -> None:
            import asyncio

            self.started_loop = asyncio.get_running_loop()
            await super().startup(sockets)

    uv_config = uvicorn.Config(
        app,
        log_level="info" if config.verbose else "warning",
        access_log=config.verbose,
        timeout_graceful_shutdown=int(config.grace) + 5,
        lifespan="on",
        log_config=None,
    )
    _log_to_current_streams(uvicorn)
    return Server(uv_config)


class CurrentStream(logging.StreamHandler):
    """A StreamHandler that writes to ``sys.stderr`` or ``sys.stdout`` as they are when a record
    comes, not when logging was configured: a caller that swaps them (a test runner, a host
    program) and closes its stream later gets no writes to a closed file."""

    def __init__(self, name: str = "stderr"):
        self._stream_name = name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_to_current_streams(uvicorn: Any) -> None:
    """uvicorn's log lines as its own configuration writes them, but through CurrentStream
    handlers added to its loggers: its own configuration (logging.config.dictConfig) would
    close every logging handler the host process has (a test runner's, TensorFlow's)."""
    formats = {
        "uvicorn": (uvicorn.logging.DefaultFormatter, "%(levelprefix)s %(message)s", "stderr"),
        "uvicorn.access": (
            uvicorn.logging.AccessFormatter,
            '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            "stdout",
        ),
    }
    for name, (formatter, fmt, stream) in formats.items():
        logger = logging.getLogger(name)
        if not any(isinstance(h, CurrentStream) for h in logger.handlers):
            handler = CurrentStream(stream)
            handler.setFormatter(formatter(fmt, use_colors=False))
            logger.addHandler(handler)
        logger.propagate = False


def serve(config: ServeConfig, log: Callable[[str], None]) -> None:
    """Load, bind and serve until a stop signal; returns after a clean shutdown."""
    generators = load_models(config)
    server = build_server(config, generators)
    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    shown = f"[{config.host}]" if ":" in config.host else config.host
    if not is_loopback(config.host):
        key = "" if config.limits.api_key else "; set --api-key to require a key"
        log(f"Warning: serving on {config.host}, reachable from other machines{key}")
    for name, generator in generators.items():
        log(f"serving {name} ({generator.model.path})")
    log(f"OpenAI-compatible API at http://{shown}:{port}/v1 (Ctrl-C or SIGTERM stops)")
    with sock:
        server.run(sockets=[sock])
    log("stopped")


@contextlib.contextmanager
def serving_in_thread(config: ServeConfig) -> Iterator[str]:
    """The service in a background thread (port 0: a free one); yields its base URL (for tests and
    the load test). Leaving the block stops it."""
    generators = load_models(config)
    server = build_server(config, generators)
    sock = bind(config.host, config.port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the service did not start")
            threading.Event().wait(0.01)
        yield f"http://{config.host}:{sock.getsockname()[1]}"
    finally:
        server.handle_exit(signal.SIGTERM, None)  # what a stop signal does
        thread.join(timeout=30)
        sock.close()
