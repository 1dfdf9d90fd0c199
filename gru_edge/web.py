"""`gru-edge web`: a static web page that generates text from a model with onnxruntime-web.

The site is the page (gru_edge/webpage/: index.html, app.js, protocol.js), the model file, and
optionally onnxruntime-web's files copied from an npm install's ``dist/`` folder so that the site
works offline (without them the page loads onnxruntime-web from a CDN at a pinned version, see
app.js). The page writes exactly what ``gru-edge sample`` writes for the same settings: the model
file generates the text itself (gru-edge/2), the page only feeds it.

Runtime layer only: the model is checked with gru_edge.runtime.loader; nothing here imports
TensorFlow.
"""

from __future__ import annotations

import errno
import functools
import html
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from gru_edge.runtime.contract import FORMAT
from gru_edge.runtime.errors import GruEdgeError, ModelFileError, UsageError

# The JavaScript files are copies of the package in js/ (tests/test_js_package.py checks them).
PAGE_FILES = ("index.html", "app.js", "onnx-reader.js", "vocabulary.js", "protocol.js")
MODEL_NAME = "model.onnx"  # the model's name inside the site, whatever it was called outside
ORT_FOLDER = "ort"
# What the page loads from onnxruntime-web's dist/: the WASM-only ES module and, since the
# module imports the Emscripten glue at run time, the glue and its .wasm (one build serves one
# thread and many).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MARKER = ".gru-edge-web"  # marks a folder this module wrote: --force replaces only such a folder
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class WebError(GruEdgeError):
    """The site cannot be written or served."""


def check_model(model: Path) -> None:
    """Refuse anything but a gru-edge/2 file: the page needs the in-graph generator."""
    from gru_edge.runtime.loader import load_model  # onnxruntime: only when a site is written

    loaded = load_model(Path(model), device="cpu", threads=1)
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


def _build(folder: Path, model: Path, ort_dist: Path | None) -> None:
    """Write the site's files into the (empty) ``folder``."""
    assets = resources.files("gru_edge") / "webpage"
    for name in PAGE_FILES:
        text = (assets / name).read_text(encoding="utf-8")
        if name == "index.html":
            text = _fill_in(text, model.name, f"{ORT_FOLDER}/" if ort_dist is not None else "")
        (folder / name).write_text(text, encoding="utf-8")
    shutil.copyfile(model, folder / MODEL_NAME)
    if ort_dist is not None:
        (folder / ORT_FOLDER).mkdir()
        for name in ORT_FILES:
            shutil.copyfile(ort_dist / name, folder / ORT_FOLDER / name)
    (folder / MARKER).write_text("written by gru-edge web\n", encoding="utf-8")


def write_site(
    model: Path, out: Path, *, ort_dist: Path | None = None, force: bool = False
) -> Path:
    """Check the inputs, build the site beside ``out`` and rename it into place; return ``out``.

    Nothing is left half-written: a failure removes the temporary folder, and ``out`` changes
    only by renames. With ``force`` an existing ``out`` is replaced, but only a folder this
    function wrote (it holds the marker file), so a mistyped --out cannot delete other files.
    """
    model, out = Path(model), Path(out)
    if ort_dist is not None:
        check_ort_dist(Path(ort_dist))
    check_model(model)
    if out.exists() or out.is_symlink():
        if not force:
            raise WebError(f"--out {out} already exists; add --force to replace it")
        if out.is_symlink() or not out.is_dir() or not (out / MARKER).is_file():
            raise WebError(
                f"--out {out} exists and is not a site written by gru-edge web, so --force "
                "will not replace it; choose another --out"
            )
    if not out.parent.is_dir():
        raise WebError(f"--out {out}: its folder {out.parent} does not exist")
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old: Path | None = None
    try:
        _build(building, model, Path(ort_dist) if ort_dist is not None else None)
        os.chmod(building, 0o755)  # mkdtemp makes it 0700: a site is for others to read
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "site")
        os.replace(building, out)
    except OSError as exc:
        if old is not None and not out.exists():
            os.replace(old / "site", out)  # put the previous site back
        raise WebError(f"cannot write the site to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


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


def make_server(
    site: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A read-only HTTP server for ``site``, bound (port 0 = any free port) but not yet serving."""
    handler = functools.partial(_ReadOnlyHandler, directory=str(site))
    try:
        return ThreadingHTTPServer((host, port), handler)
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
    """Write the site to a temporary folder and serve it until Ctrl-C (KeyboardInterrupt)."""
    with temporary_site(model, ort_dist) as site:
        server = make_server(site, host, port)
        with server:
            announce(url_of(server))
            server.serve_forever()
