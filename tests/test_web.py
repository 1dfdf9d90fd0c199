"""`gru-edge web` without a browser: the site it writes, every input it refuses (one line, no
traceback, nothing half-written), and the read-only server it starts (tests/test_web_browser.py
runs the page itself in Chromium)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from hostile_models import write_ort_twin
from onnx_models import make_model, write_model
from typer.testing import CliRunner

from gru_edge import site_server, web
from gru_edge.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def ort_dist(tmp_path_factory) -> Path:
    """A stand-in for onnxruntime-web's dist/: the writer only copies the files."""
    folder = tmp_path_factory.mktemp("dist")
    for name in web.ORT_FILES:
        (folder / name).write_bytes(f"// {name}\n".encode())
    (folder / "ort.webgpu.min.mjs").write_text("// not needed by the page\n")
    return folder


def _web(*args) -> object:
    return runner.invoke(app, ["web", *map(str, args)])


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_writes_the_page_the_model_and_a_cdn_reference(small_model, tmp_path):
    out = tmp_path / "site"
    result = _web(small_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*web.PAGE_FILES, web.MODEL_NAME, web.MARKER]
    )
    assert (out / web.MODEL_NAME).read_bytes() == small_model.read_bytes()
    page = (out / "index.html").read_text()
    assert 'data-model="model.onnx"' in page and 'data-ort-base=""' in page
    assert "__" not in page.split("<body", 1)[1].split(">", 1)[0]  # both filled in
    for element in ('id="output"', 'id="status"', 'id="error"', 'src="protocol.js"'):
        assert element in page
    # the CDN fallback names one pinned version, in one place
    app_js = (out / "app.js").read_text()
    assert app_js.count("const ORT_VERSION = '1.30.0';") == 1
    assert "onnxruntime-web@${ORT_VERSION}" in app_js
    assert str(out) in result.stderr and result.stdout == ""


def test_ort_dist_copies_only_the_files_the_page_loads(small_model, tmp_path, ort_dist):
    out = tmp_path / "site"
    result = _web(small_model, "--out", out, "--ort-dist", ort_dist)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "ort").iterdir()) == sorted(web.ORT_FILES)
    assert 'data-ort-base="ort/"' in (out / "index.html").read_text()


def test_the_node_client_and_the_page_share_one_protocol_module():
    root = Path(__file__).resolve().parents[1]
    client = (root / "examples" / "node" / "generate.js").read_text()
    assert "require('gru-edge')" in client  # the package in js/, whose copy the page loads
    for duplicate in (
        "function varint",
        "function parseVocabulary",
        "function withFeedableInputs",
        "async function* generate",
    ):
        assert duplicate not in client
        assert duplicate not in (root / "gru_edge" / "webpage" / "app.js").read_text()


def test_force_replaces_only_the_files_it_wrote(small_model, bench_model, tmp_path, ort_dist):
    out = tmp_path / "site"
    assert _web(small_model, "--out", out, "--ort-dist", ort_dist).exit_code == 0
    (out / "notes.txt").write_text("the user's")
    (out / "ort" / "mine.js").write_text("the user's too")
    result = _web(bench_model, "--out", out, "--force")  # this time without --ort-dist
    assert result.exit_code == 0, result.output
    assert (out / web.MODEL_NAME).read_bytes() == bench_model.read_bytes()
    # the files web wrote before and not now are gone; the user's stay, and it says so
    assert _listing(out) == sorted(
        [*web.PAGE_FILES, web.MODEL_NAME, web.MARKER, "notes.txt", "ort", "ort/mine.js"]
    )
    assert (out / "notes.txt").read_text() == "the user's"
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("Kept")]
    assert "Kept 2 file(s)" in line and "notes.txt, ort/mine.js" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary folders left


@pytest.mark.parametrize(
    "marker",
    ["written by gru-edge web\n", "written by gru-edge web; the files it wrote:\n../outside\n"],
    ids=["before-the-list", "edited"],
)
def test_force_never_removes_what_no_site_holds(small_model, tmp_path, marker):
    out = tmp_path / "site"
    assert _web(small_model, "--out", out).exit_code == 0
    (out / web.MARKER).write_text(marker)  # an older marker, or one a user edited
    (out / "mine.txt").write_text("keep")
    (tmp_path / "outside").write_text("keep too")
    result = _web(small_model, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "mine.txt").read_text() == "keep" and (tmp_path / "outside").exists()
    assert "Kept 1 file(s)" in result.stderr and web.MARKER in _listing(out)


def test_an_out_in_a_folder_it_cannot_write_is_one_line(small_model, tmp_path, monkeypatch):
    def refused(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(web.tempfile, "mkdtemp", refused)
    result = _web(small_model, "--out", tmp_path / "site")
    assert_one_line_error(result, "cannot write the site", "Permission denied", "--out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_out_in_a_read_only_folder_is_one_line(small_model, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = _web(small_model, "--out", folder / "site")
    finally:
        folder.chmod(0o755)
    assert_one_line_error(result, "cannot write the site", "Permission denied")


def test_an_ort_file_is_refused_with_the_onnx_to_use(tmp_path, small_model):
    model = write_ort_twin(small_model.read_bytes(), tmp_path / "m.ort")
    result = _web(model, "--out", tmp_path / "site")
    assert_one_line_error(result, "m.ort is an ORT-format file", "pass the .onnx file")
    assert not (tmp_path / "site").exists()


def _no_garbage_model(path: Path) -> Path:
    path.write_bytes(b"this is not an ONNX file at all")
    return path


def _v1_model(path: Path) -> Path:
    return write_model(path, units=16, seed=1, generator=False)


def _no_vocabulary_model(path: Path) -> Path:
    model = make_model(units=16, seed=1)
    kept = [p for p in model.metadata_props if p.key != "vocabulary"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return write_model(path, model)


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p, ["not found"]),
        (_no_garbage_model, ["bad.onnx"]),
        (_v1_model, ["gru-edge/2", "re-export"]),
        (_no_vocabulary_model, ["vocabulary"]),
    ],
    ids=["missing", "not-onnx", "gru-edge-1", "no-vocabulary"],
)
def test_refuses_a_model_it_cannot_use(make, needles, tmp_path):
    model = make(tmp_path / "bad.onnx")
    result = _web(model, "--out", tmp_path / "site")
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "site").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_refuses_an_ort_dist_without_the_files(small_model, tmp_path, ort_dist):
    partial = tmp_path / "dist"
    partial.mkdir()
    (partial / "ort.wasm.min.mjs").write_text("//")
    result = _web(small_model, "--out", tmp_path / "site", "--ort-dist", partial)
    line = assert_one_line_error(
        result, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"
    )
    assert "ort.wasm.min.mjs" not in line.split("lacks", 1)[1].split(";")[0]  # only the missing
    assert not (tmp_path / "site").exists()
    result = _web(small_model, "--out", tmp_path / "site", "--ort-dist", tmp_path / "nowhere")
    assert_one_line_error(result, "is not a folder")


def test_refuses_an_existing_out_without_force(small_model, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert_one_line_error(_web(small_model, "--out", out), "already exists", "--force")
    # --force replaces only a folder gru-edge web wrote: this one is the user's
    assert_one_line_error(_web(small_model, "--out", out, "--force"), "not a site")
    assert _listing(out) == ["mine.txt"]
    file_out = tmp_path / "file"
    file_out.write_text("x")
    assert_one_line_error(_web(small_model, "--out", file_out, "--force"), "not a site")
    assert file_out.read_text() == "x"


def test_refuses_an_out_in_a_missing_folder(small_model, tmp_path):
    assert_one_line_error(_web(small_model, "--out", tmp_path / "no" / "site"), "does not exist")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ([], ["--out", "--serve"]),
        (["--serve", "--out", "x"], ["not both"]),
        (["--serve", "--force"], ["--force goes with --out"]),
        (["--serve", "--port", "70000"], ["--port", "70000"]),
    ],
)
def test_refuses_option_mixes(small_model, args, needles, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(_web(small_model, *args), *needles)
    assert list(tmp_path.iterdir()) == []


def test_a_port_in_use_is_one_line_naming_it(small_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _web(small_model, "--serve", "--port", port)
    assert_one_line_error(result, f"port {port}", "--port")


def test_serve_binds_localhost_by_default_and_stops_on_ctrl_c(small_model, monkeypatch):
    seen = {}

    def serve_forever(self, poll_interval=0.5):
        seen["address"] = self.server_address
        seen["site"] = Path(self.RequestHandlerClass.keywords["directory"])
        seen["files"] = sorted(p.name for p in seen["site"].iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(site_server.ThreadingHTTPServer, "serve_forever", serve_forever)
    result = _web(small_model, "--serve", "--port", 0)
    assert result.exit_code == 0, result.output
    host, port = seen["address"][:2]
    assert host == "127.0.0.1" and port > 0
    assert f"http://127.0.0.1:{port}/" in result.stdout
    assert "index.html" in seen["files"] and web.MODEL_NAME in seen["files"]
    assert not seen["site"].exists()  # the temporary site is gone once the server stops
    assert "Stopped." in result.stderr


@pytest.fixture
def server(small_model, tmp_path):
    site = web.write_site(small_model, tmp_path / "site")
    httpd = web.make_server(site, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _request(httpd, method: str, path: str, body: bytes | None = None):
    connection = http.client.HTTPConnection(*httpd.server_address[:2], timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_the_server_serves_the_site_read_only(server, small_model):
    assert server.server_address[0] == "127.0.0.1"
    status, headers, body = _request(server, "GET", "/model.onnx")
    assert status == 200 and body == small_model.read_bytes()
    status, headers, _ = _request(server, "GET", "/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, headers, body = _request(server, "HEAD", "/index.html")
    assert status == 200 and body == b""
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = _request(server, method, "/model.onnx", body=b"overwrite")
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
    assert _request(server, "GET", "/model.onnx")[2] == small_model.read_bytes()
    assert _request(server, "GET", "/")[0] == 200  # index.html
    assert _request(server, "GET", "/ort/")[0] == 404  # no listings
    assert _request(server, "GET", "/../../etc/passwd")[0] == 404


def test_a_nul_in_the_path_is_a_400_and_no_traceback(server, capsys):
    assert _request(server, "GET", "/%00")[0] == 400
    assert _request(server, "HEAD", "/a%00b.js")[0] == 400
    assert _request(server, "GET", "/index.html")[0] == 200  # still serving
    assert capsys.readouterr().err == ""


def test_a_server_error_is_a_500_and_one_line(server, capsys, monkeypatch):
    def broken(self):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(web._ReadOnlyHandler, "send_head", broken)
    assert _request(server, "GET", "/index.html")[0] == 500
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: disk on fire second line" in err, err


def test_a_client_leaving_mid_file_is_not_an_error(server, capsys):
    site = Path(server.RequestHandlerClass.keywords["directory"])
    (site / "big.bin").write_bytes(bytes(32 * 1024 * 1024))
    for _ in range(5):
        with socket.create_connection(server.server_address[:2], timeout=10) as client:
            client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.0 200")
            # close with a reset, as a browser tab that is closed does
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.5)  # the handler threads meet the reset
    assert _request(server, "GET", "/index.html")[0] == 200
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_ends_serve_and_removes_the_temporary_site(small_model, tmp_path, signum):
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = Path(sys.executable).with_name("gru-edge")
    proc = subprocess.Popen(
        [str(script), "web", str(small_model), "--serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        line = proc.stdout.readline()  # "Serving ... at URL": the site is written
        assert "Serving" in line, proc.stderr.read()
        assert list(temp.glob("gru-edge-web-*"))
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr
    assert stderr.strip() == f"Stopped by {signum.name}."
    assert list(temp.glob("gru-edge-web-*")) == []  # (other libraries leave files of their own)
