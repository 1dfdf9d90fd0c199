"""The read-only HTTP server of `gru-edge web --serve`: GET and HEAD of a site's files, every
failure an HTTP status and at most one stderr line, a client that leaves mid-file no error."""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
from collections.abc import Callable
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gru_edge.runtime.errors import GruEdgeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class WebError(GruEdgeError):
    """The site cannot be written or served."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP while serving: unwinds like Ctrl-C, so the temporary site is removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _ReadOnlyHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of the site's files; no directory listings; every other method 405."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        # module scripts must come as JavaScript, or the browser refuses to run them
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",  # lets the browser compile it while it downloads
        ".onnx": "application/octet-stream",
    }

    def list_directory(self, path):  # type: ignore[no-untyped-def]
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def do_GET(self) -> None:  # noqa: N802
        self._answer(super().do_GET)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(super().do_HEAD)

    def _answer(self, respond: Callable[[], None]) -> None:
        """``respond()``, with every failure an HTTP status: a path the file system cannot take
        (a NUL byte: ValueError) is 400, anything else 500 and one line on stderr; a client
        that goes away mid-file is not an error at all."""
        self._started = False
        try:
            respond()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away: nothing to answer, or to log
        except ValueError:
            self._fail(HTTPStatus.BAD_REQUEST, "bad path")
        except Exception as exc:  # noqa: BLE001  # one line, not a traceback per request
            _log_line(f"gru-edge web: error serving {self.path!r}: {type(exc).__name__}: {exc}")
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, "server error")

    def _fail(self, status: HTTPStatus, message: str) -> None:
        self.close_connection = True
        if self._started:
            return  # part of a response went out: closing the connection is the only signal
        with contextlib.suppress(OSError):  # the client is gone too
            self.send_error(status, message)

    def send_response(self, code, message=None):  # type: ignore[no-untyped-def]
        self._started = True
        super().send_response(code, message)

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a rewritten site is never served stale
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):  # type: ignore[no-untyped-def]  # noqa: A002
        pass  # the terminal shows the URL and errors, not a line per file


def _log_line(line: str) -> None:
    print(" ".join(line.split())[:300], file=sys.stderr, flush=True)


class _Server(ThreadingHTTPServer):
    """The server, whose last-resort error hook writes one line, and nothing for a client
    that disconnected (socketserver's default prints a traceback for each)."""

    daemon_threads = True  # a stalled client never keeps the process alive at exit

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        _log_line(f"gru-edge web: error serving {client_address[0]}: {type(exc).__name__}: {exc}")


def make_server(
    site: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A read-only HTTP server for ``site``, bound (port 0 = any free port) but not yet serving."""
    handler = functools.partial(_ReadOnlyHandler, directory=str(site))
    try:
        return _Server((host, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise WebError(
                f"port {port} on {host} is already in use; choose another with --port"
            ) from None
        raise WebError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"
