"""The JavaScript package in js/: one source for the page and for Node apps, the Python loader's
refusals with the Python loader's words, one pin for onnxruntime-web, and the package packed and
installed into an empty folder outside the repository writing what `gru-edge sample` writes.

The tests that run node skip without it (and fail under CI, which must run them); the one that
installs the packed package needs the npm cache that `bash .ci/install-js` fills.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hostile_models import PLACES, with_raw_metadata, write_external_in
from onnx_models import DEFAULT_VOCAB, write_model
from tool_checks import INSTALL, require
from typer.testing import CliRunner

from gru_edge import web
from gru_edge.cli import app
from gru_edge.runtime.errors import ModelFileError
from gru_edge.runtime.loader import load_model

REPO = Path(__file__).resolve().parents[1]
JS = REPO / "js"
PAGE = REPO / "gru_edge" / "webpage"
NODE_EXAMPLE = REPO / "examples" / "node"
# Prints, for each file named after the package's folder, JSON of the message that the
# package's inspectModel refuses it with, or null.
INSPECT = """
const P = require(process.argv[1]);
const fs = require('fs');
for (const file of process.argv.slice(2)) {
  let message = null;
  try { P.inspectModel(fs.readFileSync(file), file); } catch (e) { message = e.message; }
  console.log(JSON.stringify(message));
}
"""
runner = CliRunner()


def _package() -> dict:
    return json.loads((JS / "package.json").read_text(encoding="utf-8"))


def _ort_web_pin() -> str:
    (pin,) = re.findall(r"const ORT_VERSION = '([^']+)';", (PAGE / "app.js").read_text())
    return pin


@pytest.fixture(scope="module")
def node() -> str:
    exe = shutil.which("node")
    require(None if exe else "node is not on PATH", INSTALL, "the JavaScript package's tests")
    return exe


# --- one source ---------------------------------------------------------------------------------


def test_the_page_ships_the_packages_files_unchanged():
    shipped = _package()["files"]
    assert set(shipped) <= set(web.PAGE_FILES)
    for name in shipped:
        assert (PAGE / name).read_bytes() == (JS / name).read_bytes(), (
            f"gru_edge/webpage/{name} differs from js/{name}, its source: edit js/ and run "
            "`npm run sync-page` in js/"
        )


def test_the_package_names_its_entry_points_and_tests():
    package = _package()
    assert package["name"] == "gru-edge" and package["main"] == "protocol.js"
    assert package["exports"]["."] == "./protocol.js"
    assert package["scripts"]["test"] == "node --test"
    assert sorted(package["files"]) == sorted(p.name for p in JS.glob("*.js"))
    assert list((JS / "test").glob("*.test.js")), "node --test finds no tests in js/test"
    # the Node example is an app on the package, not on a path inside the repository
    example = json.loads((NODE_EXAMPLE / "package.json").read_text(encoding="utf-8"))
    assert example["dependencies"]["gru-edge"] == "file:../../js"
    client = (NODE_EXAMPLE / "generate.js").read_text(encoding="utf-8")
    assert "require('gru-edge')" in client and "gru_edge/webpage" not in client


def test_the_package_version_is_gru_edges():
    from gru_edge import __version__

    assert _package()["version"] == __version__


# --- one pin for onnxruntime-web ----------------------------------------------------------------


def test_onnxruntime_web_is_pinned_once_and_read_from_there():
    pin = _ort_web_pin()
    browser = json.loads((REPO / "tests" / "browser" / "package.json").read_text())
    assert "onnxruntime-web" not in browser["dependencies"]  # .ci/install-js reads app.js
    assert "ORT_VERSION" in (REPO / ".ci" / "install-js").read_text()
    shown = runner.invoke(app, ["web", "--help"], env={"COLUMNS": "200"}).stdout
    assert f"onnxruntime-web {pin}" in " ".join(shown.split())
    for page in ("javascript.md", "browser.md"):
        docs = (REPO / "docs" / page).read_text(encoding="utf-8")
        assert set(re.findall(r"onnxruntime-web@([0-9][\w.\-]*)", docs)) == {pin}, page


def test_the_docs_install_the_onnxruntime_node_the_example_pins():
    example = json.loads((NODE_EXAMPLE / "package.json").read_text(encoding="utf-8"))
    pin = example["dependencies"]["onnxruntime-node"]
    for page in (REPO / "docs" / "javascript.md", JS / "README.md"):
        named = set(re.findall(r"onnxruntime-node@([0-9][\w.\-]*)", page.read_text("utf-8")))
        assert named == {pin}, page


def test_the_installed_onnxruntime_web_is_the_pinned_one():
    installed = REPO / "tests" / "browser" / "node_modules" / "onnxruntime-web" / "package.json"
    require(
        None if installed.is_file() else "tests/browser lacks onnxruntime-web",
        INSTALL,
        "the onnxruntime-web pin's test",
    )
    assert json.loads(installed.read_text())["version"] == _ort_web_pin()


# --- the Python loader's refusals, in the same words -------------------------------------------


def _vocab_model(folder: Path, name: str, vocabulary: list | str) -> Path:
    raw = vocabulary if isinstance(vocabulary, str) else json.dumps(vocabulary)
    return write_model(folder / f"{name}.onnx", units=8, metadata={"vocabulary": raw})


def _with_entry(char) -> list:
    return [*DEFAULT_VOCAB[:5], char, *DEFAULT_VOCAB[6:]]


VOCABULARIES = {
    "escape": _with_entry("\x1b"),
    "csi (C1)": _with_entry("\x9b"),
    "delete": _with_entry("\x7f"),
    "nul": _with_entry("\x00"),
    "carriage return": _with_entry("\r"),
    "lone surrogate": _with_entry("\ud800"),
    "two characters": _with_entry("ab"),
    "a number": _with_entry(5),
    "a float": _with_entry(1.5e-7),
    "null": _with_entry(None),
    "true": _with_entry(True),
    "a list": _with_entry(["a"]),
    "an object": _with_entry({"a": 1}),
    "long entry": _with_entry("\x1b" * 30),
    "quote": _with_entry("it's"),
    "repeats": [*DEFAULT_VOCAB, "a", "é", "é", "\u00a0", "\u00a0"],
    "not JSON": '["a", "\x1b',
    "a byte order mark first": '\ufeff["a"]',
    "empty": "[]",
    "an object, not a list": '{"a": 1}',
    "nested": "[" * 40 + "]" * 40,
    "nested strings": '[["[[["]]]' + "[" * 33 + "]" * 33,
}


def _raw(folder: Path, name: str, data: bytes) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    """Files both loaders refuse before onnxruntime sees them."""
    folder = tmp_path_factory.mktemp("hostile_js")
    files = {
        f"vocabulary {k}": _vocab_model(folder, f"v{i}", v)
        for i, (k, v) in enumerate(VOCABULARIES.items())
    }
    files["no vocabulary"] = write_model(
        folder / "novocab.onnx", units=8, metadata={"vocabulary": None}
    )
    for i, where in enumerate(PLACES):
        sub = folder / f"external{i}"
        sub.mkdir()
        files[f"external data: {where}"] = write_external_in(sub, where, units=8)[0]
    good = write_model(folder / "good.onnx", units=8).read_bytes()
    files["repeated metadata key"] = _raw(folder, "dup", with_raw_metadata(good, b"units", b"8"))
    files["metadata key not UTF-8"] = _raw(folder, "key", with_raw_metadata(good, b"k\xffey", b"v"))
    bad_value = with_raw_metadata(good, b"note", "caf\u00e9 ".encode() + b"\xe2\x82 \xc0\xafend")
    files["metadata value not UTF-8"] = _raw(folder, "value", bad_value)
    files["metadata over 1 MiB"] = _raw(
        folder, "big", with_raw_metadata(good, b"pad", b"x" * 2**20)
    )
    entries = b"".join(with_raw_metadata(b"", f"k{i}".encode(), b"") for i in range(4097))
    files["4,097 metadata entries"] = _raw(folder, "many", good + entries)
    files["truncated"] = _raw(folder, "truncated", good[: len(good) // 2])
    files["garbage"] = _raw(folder, "garbage", b"\x08\x07not an onnx file")
    files["field number 0"] = _raw(folder, "zero", b"\x08\x07\x00\x01")
    files["wire type 7"] = _raw(folder, "wire7", b"\x08\x07\x0f")
    files["no graph"] = _raw(folder, "nograph", b"\x08\x08")
    files["keras zip"] = _raw(folder, "model.keras", b"PK\x03\x04" + b"\x00" * 40)
    files["keras hdf5"] = _raw(folder, "model.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    return files


def _python_message(path: Path) -> str:
    with pytest.raises(ModelFileError) as refused:
        load_model(path, device="cpu", threads=1)
    return str(refused.value)


def _js_messages(node: str, paths: list[Path]) -> list[str | None]:
    done = subprocess.run(
        [node, "-e", INSPECT, str(JS / "protocol.js"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_package_refuses_what_the_python_loader_refuses_in_its_words(node, hostile):
    names = list(hostile)
    js = dict(zip(names, _js_messages(node, [hostile[n] for n in names]), strict=True))
    differ = []
    for name in names:
        python = _python_message(hostile[name])
        if js[name] != python:
            differ.append(f"{name}:\n  python {python!r}\n  js     {js[name]!r}")
    assert not differ, "\n".join(differ)


def test_what_the_python_loader_accepts_the_package_accepts(node, tmp_path):
    allowed = {
        "tab and newline": DEFAULT_VOCAB,  # holds both
        "zero-width joiner": _with_entry("\u200d"),
        "no-break space": _with_entry("\u00a0"),
        "private use": _with_entry("\ue000"),
        "astral": _with_entry("\U0001f680"),
        "right-to-left override": _with_entry("\u202e"),
        "byte order mark": _with_entry("\ufeff"),
    }
    paths = [_vocab_model(tmp_path, f"ok{i}", v) for i, v in enumerate(allowed.values())]
    for path in paths:
        load_model(path, device="cpu", threads=1)
    assert _js_messages(node, paths) == [None] * len(paths)


# --- the package, packed, installed outside the repository -------------------------------------


@pytest.fixture(scope="module")
def installed_app(node, tmp_path_factory) -> Path:
    """An empty folder outside the repository with the packed package and onnxruntime-node
    installed (from npm's cache where .ci/install-js filled it), and the Node example copied in."""
    npm = shutil.which("npm")
    cached = (NODE_EXAMPLE / "node_modules" / "onnxruntime-node" / "package.json").is_file()
    problem = "npm is not on PATH" if npm is None else None
    problem = problem or (None if cached else "examples/node lacks onnxruntime-node")
    require(problem, INSTALL, "the packed package's test")
    packs = tmp_path_factory.mktemp("npm_pack")
    done = subprocess.run(
        [npm, "pack", "--json", "--pack-destination", str(packs)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (packed,) = json.loads(done.stdout)
    assert sorted(f["path"] for f in packed["files"]) == sorted(
        ["package.json", "README.md", *_package()["files"]]
    )
    folder = tmp_path_factory.mktemp("js_app")
    assert REPO not in folder.parents
    ort_pin = json.loads((NODE_EXAMPLE / "package.json").read_text())["dependencies"][
        "onnxruntime-node"
    ]
    dependencies = {"gru-edge": f"file:{packs / packed['filename']}", "onnxruntime-node": ort_pin}
    (folder / "package.json").write_text(
        json.dumps({"name": "app", "private": True, "dependencies": dependencies})
    )
    shutil.copy(NODE_EXAMPLE / "generate.js", folder / "generate.js")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefer-offline"]
        + ["--onnxruntime-node-install=skip"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    package = folder / "node_modules" / "gru-edge"
    assert package.is_dir() and not package.is_symlink()  # a copy of the tarball, not a link
    return folder


@pytest.mark.parametrize(
    "args",
    [
        ["--prime", "The ", "-l", "300", "--seed", "7"],
        ["-l", "500", "--seed", "3", "-t", "0.6", "--top-k", "12", "--top-p", "0.9"],
        ["--prime", "Once", "-l", "200", "-t", "0"],
    ],
    ids=["sampled", "filtered", "greedy"],
)
def test_the_installed_package_writes_what_gru_edge_sample_writes(installed_app, node, args):
    model = write_model(installed_app / "model.onnx", units=32, seed=4)
    python = runner.invoke(app, ["sample", str(model), *args])
    assert python.exit_code == 0, python.output
    js = subprocess.run(
        [node, "generate.js", str(model), *args],
        cwd=installed_app,
        capture_output=True,
        timeout=120,
    )
    assert js.returncode == 0, js.stderr.decode()
    assert js.stdout == python.stdout_bytes and js.stderr == b""
