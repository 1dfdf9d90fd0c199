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

import errno
import html
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from gru_edge.runtime.contract import FORMAT
from gru_edge.runtime.errors import ModelFileError, UsageError
from gru_edge.runtime.files import signals_raise
from gru_edge.site_server import (  # the server's names, as `gru_edge.web` always had them
    DEFAULT_HOST,
    DEFAULT_PORT,
    Terminated,
    WebError,
    _ReadOnlyHandler,  # noqa: F401
    make_server,
    url_of,
)

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
