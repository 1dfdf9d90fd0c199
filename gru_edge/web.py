"""`gru-edge web`: a static web page that generates text from a model with onnxruntime-web.

The site is the page (gru_edge/webpage/: index.html, app.js, protocol.js), the model file, and
optionally onnxruntime-web's files copied from an npm install's ``dist/`` folder so that the site
works offline (without them the page loads onnxruntime-web from a CDN at a pinned version, see
app.js). The page writes exactly what ``gru-edge sample`` writes for the same settings: the model
file generates the text itself (gru-edge/2), the page only feeds it.

--force touches only the files the marker lists; --serve answers every failure with an HTTP
status and at most one stderr line, and removes its temporary site on Ctrl-C and SIGTERM.

Runtime layer only: the model is checked with gru_edge.runtime.loader; nothing here imports
TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import html
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from gru_edge.runtime.contract import FORMAT
from gru_edge.runtime.errors import GruEdgeError, ModelFileError, UsageError
from gru_edge.runtime.files import signals_raise

# The JavaScript files are copies of the package in js/ (tests/test_js_package.py checks them).
PAGE_FILES = ("index.html", "app.js", "onnx-reader.js", "vocabulary.js", "protocol.js")
MODEL_NAME = "model.onnx"  # the model's name inside the site, whatever it was called outside
ORT_FOLDER = "ort"
# What the page loads from onnxruntime-web's dist/: the WASM-only ES module and, since the
# module imports the Emscripten glue at run time, the glue and its .wasm (one build serves one
# thread and many).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# Marks a folder this module wrote and lists the files it wrote there: --force replaces only such
# a folder, and only those files (what a user added stays).
MARKER = ".gru-edge-web"
_MARKER_HEAD = "written by gru-edge web; the files it wrote:"
# What a site can hold, so a marker file (which may have been edited) never names anything else.
SITE_FILES = frozenset(
    (*PAGE_FILES, MODEL_NAME, MARKER, *(f"{ORT_FOLDER}/{name}" for name in ORT_FILES))
)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class WebError(GruEdgeError):
    """The site cannot be written or served."""


def check_model(model: Path) -> None:
    """Refuse anything but a gru-edge/2 .onnx file: the page needs the in-graph generator, and
    its reader understands the ONNX protobuf, not the ORT format."""
    from gru_edge.runtime.loader import load_model  # onnxruntime: only when a site is written
    from gru_edge.runtime.ort_format import is_ort_format

    loaded = load_model(Path(model), device="cpu", threads=1)
    with open(model, "rb") as handle:
        head = handle.read(8)
    if is_ort_format(head):
        raise ModelFileError(
            f"{model} is an ORT-format file, and the web page reads .onnx files only; pass the "
            ".onnx file that gru-edge export wrote beside it"
        )
    if not loaded.has_generator:
        raise ModelFileError(
            f"{model} is a {loaded.metadata.get('format', 'gru-edge/1')} file without the in-graph "
            f"generator, and the web page needs {FORMAT}; re-export it with gru-edge export"
        )


def check_ort_dist(ort_dist: Path) -> None:
    """The onnxruntime-web files the page needs must all be in ``ort_dist``."""
    if not ort_dist.is_dir():
        raise UsageError(
            f"--ort-dist {ort_dist} is not a folder; give onnxruntime-web's dist/ folder "
            "(npm install onnxruntime-web, then node_modules/onnxruntime-web/dist)"
        )
    missing = [name for name in ORT_FILES if not (ort_dist / name).is_file()]
    if missing:
        raise UsageError(
            f"--ort-dist {ort_dist} lacks onnxruntime-web's {', '.join(missing)}; give the dist/ "
            "folder of npm install onnxruntime-web"
        )


def _fill_in(page: str, title: str, ort_base: str) -> str:
    for marker, value in (
        ("__MODEL__", MODEL_NAME),
        ("__TITLE__", title),
        ("__ORT_BASE__", ort_base),
    ):
        page = page.replace(marker, html.escape(value, quote=True))
    return page


def _build(folder: Path, model: Path, ort_dist: Path | None) -> list[str]:
    """Write the site's files into the (empty) ``folder``; return their relative paths."""
    assets = resources.files("gru_edge") / "webpage"
    for name in PAGE_FILES:
        text = (assets / name).read_text(encoding="utf-8")
        if name == "index.html":
            text = _fill_in(text, model.name, f"{ORT_FOLDER}/" if ort_dist is not None else "")
        (folder / name).write_text(text, encoding="utf-8")
    shutil.copyfile(model, folder / MODEL_NAME)
    written = [*PAGE_FILES, MODEL_NAME]
    if ort_dist is not None:
        (folder / ORT_FOLDER).mkdir()
        for name in ORT_FILES:
            shutil.copyfile(ort_dist / name, folder / ORT_FOLDER / name)
            written.append(f"{ORT_FOLDER}/{name}")
    written.append(MARKER)
    (folder / MARKER).write_text("\n".join([_MARKER_HEAD, *written]) + "\n", encoding="utf-8")
    return written


def _written_before(out: Path) -> list[str]:
    """The files an earlier run wrote into ``out``, from its marker; a marker from before the
    list existed stands for every file a site can hold."""
    lines = (out / MARKER).read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0] != _MARKER_HEAD:
        return sorted(SITE_FILES)
    return [line for line in lines[1:] if line in SITE_FILES]


def _user_files(out: Path, ours: set[str]) -> list[str]:
    """What ``out`` holds that gru-edge web did not write (relative paths, sorted)."""
    found = []
    for root, dirs, files in os.walk(out):
        base = Path(root).relative_to(out)
        for name in [*files, *(d for d in dirs if (Path(root) / d).is_symlink())]:
            relative = (base / name).as_posix()
            if relative not in ours:
                found.append(relative)
    return sorted(found)


def _replace_in_place(building: Path, out: Path, written: list[str]) -> list[str]:
    """Move the new site's files into the existing site ``out``, remove the files the earlier
    run wrote that this one did not, and keep everything else; return what was kept."""
    before = set(_written_before(out))
    for relative in written:
        if relative == MARKER:
            continue
        target = out / relative
        if target.parent.is_symlink():
            raise OSError(errno.EEXIST, f"{target.parent} is a symlink, not the site's folder")
        target.parent.mkdir(exist_ok=True)
        os.replace(building / relative, target)
    for relative in sorted(before - set(written)):
        target = out / relative
        if not target.parent.is_symlink() and (target.is_file() or target.is_symlink()):
            target.unlink()
    ort_folder = out / ORT_FOLDER
    if ort_folder.is_dir() and not ort_folder.is_symlink() and not any(ort_folder.iterdir()):
        ort_folder.rmdir()
    os.replace(building / MARKER, out / MARKER)  # last: it lists what is now in place
    return _user_files(out, set(written))


def write_site(
    model: Path,
    out: Path,
    *,
    ort_dist: Path | None = None,
    force: bool = False,
    note: Callable[[str], None] = lambda _line: None,
) -> Path:
    """Check the inputs, build the site beside ``out`` and rename it into place; return ``out``.

    Nothing is left half-written: a failure removes the temporary folder. A new ``out`` appears
    by one rename. With ``force`` an existing ``out`` is updated, but only a folder this function
    wrote (it holds the marker file), and only the files it wrote there: each is replaced by a
    rename, and files a user added stay (``note`` gets one line naming them).
    """
    model, out = Path(model), Path(out)
    if ort_dist is not None:
        check_ort_dist(Path(ort_dist))
    check_model(model)
    existing = out.exists() or out.is_symlink()
    if existing:
        if not force:
            raise WebError(f"--out {out} already exists; add --force to replace it")
        if out.is_symlink() or not out.is_dir() or not (out / MARKER).is_file():
            raise WebError(
                f"--out {out} exists and is not a site written by gru-edge web, so --force "
                "will not replace it; choose another --out"
            )
    if not out.parent.is_dir():
        raise WebError(f"--out {out}: its folder {out.parent} does not exist")
    try:
        building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise WebError(
            f"cannot write the site to {out}: {exc.strerror or exc} in {out.parent}; "
            "choose an --out in a folder you can write"
        ) from None
    try:
        written = _build(building, model, Path(ort_dist) if ort_dist is not None else None)
        os.chmod(building, 0o755)  # mkdtemp makes it 0700: a site is for others to read
        if existing:
            kept = _replace_in_place(building, out, written)
            if kept:
                more = f" and {len(kept) - 5} more" if len(kept) > 5 else ""
                note(
                    f"Kept {len(kept)} file(s) in {out} that gru-edge web did not write: "
                    f"{', '.join(kept[:5])}{more}"
                )
        else:
            os.replace(building, out)
    except OSError as exc:
        raise WebError(f"cannot write the site to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out


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


@contextmanager
def temporary_site(model: Path, ort_dist: Path | None = None) -> Iterator[Path]:
    """The site written to a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gru-edge-web-") as folder:
        yield write_site(model, Path(folder) / "site", ort_dist=ort_dist)


def serve(
    model: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    ort_dist: Path | None = None,
    announce=print,  # type: ignore[no-untyped-def]
) -> None:
    """Write the site to a temporary folder and serve it until Ctrl-C (KeyboardInterrupt) or
    SIGTERM/SIGHUP (Terminated); the folder is removed either way (SIGTERM used to leave it:
    14 MB with --ort-dist)."""
    with signals_raise(Terminated), temporary_site(model, ort_dist) as site:
        server = make_server(site, host, port)
        with server:
            announce(url_of(server))
            server.serve_forever()
