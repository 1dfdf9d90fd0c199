"""The web page of `gru-edge web`, run in headless Chromium, writes exactly what `gru-edge sample`
writes (its stdout without the final newline): greedy and sampled, with top-k and top-p, for
a GRU(16) and a GRU(128) model; a bad model file gets a message in #error.

The page is served by gru_edge.web's own read-only server on a free port of 127.0.0.1, with
onnxruntime-web copied in from tests/browser/node_modules (--ort-dist), and driven by
tests/browser/drive.js (puppeteer-core). Needs /usr/bin/chromium, node and tests/browser's npm
packages (`bash .ci/install-js`); without them the tests are skipped, except under CI (CI set),
where they fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from onnx_models import write_model
from tool_checks import INSTALL, require
from typer.testing import CliRunner

from gru_edge import web
from gru_edge.cli import app

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
DRIVER = BROWSER_DIR / "drive.js"
ORT_DIST = BROWSER_DIR / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 120  # one driver run, all its pages together

runner = CliRunner()


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable; skip (fail under CI) without it, Chromium or the npm packages."""
    exe = shutil.which("node")
    problem = None
    if exe is None:
        problem = "node is not on PATH"
    elif not CHROMIUM.is_file():
        problem = f"{CHROMIUM} is missing"
    elif not (BROWSER_DIR / "node_modules" / "puppeteer-core" / "package.json").is_file():
        problem = "tests/browser/node_modules lacks puppeteer-core"
    elif not ORT_DIST.is_dir():
        problem = "tests/browser/node_modules lacks onnxruntime-web"
    require(problem, INSTALL, "the browser test")
    return exe


@pytest.fixture(scope="module")
def served(node, tmp_path_factory):
    """Sites for a GRU(16), a GRU(128) and two bad model files, served on one free port."""
    folder = tmp_path_factory.mktemp("web")
    models = {
        "small": write_model(folder / "small.onnx", units=16, seed=1),
        # Weights of a trained model's size (std 0.08, recurrent gain about 1): onnxruntime-web's
        # WASM matrix kernels round differently from the native ones in the last bits, and the
        # default std 0.5 makes a GRU(128) chaotic enough to turn that into another character
        # after some 60 characters; at a trained model's scale the texts agree (5,000 characters
        # times 6 settings, and 20,000 on a 3-epoch poems.txt model, when this was written).
        "big": write_model(folder / "gru128.onnx", units=128, seed=2, scale=0.08),
    }
    root = folder / "root"
    root.mkdir()
    for name, model in models.items():
        web.write_site(model, root / name, ort_dist=ORT_DIST)
    # Bad files, put in place of a good site's model: the writer itself refuses them.
    web.write_site(models["small"], root / "garbage", ort_dist=ORT_DIST)
    (root / "garbage" / web.MODEL_NAME).write_bytes(b"\x08\x07not an onnx file")
    web.write_site(models["small"], root / "v1", ort_dist=ORT_DIST)
    write_model(root / "v1" / web.MODEL_NAME, units=16, seed=1, generator=False)

    httpd = web.make_server(root, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield models, web.url_of(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _drive(node: str, urls: list[str], screenshot: Path | None = None) -> list[dict]:
    args = [node, str(DRIVER), *urls, "--timeout", str(TIMEOUT_S * 1000)]
    if screenshot is not None:
        args += ["--screenshot", str(screenshot)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S + 30)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _page_url(base: str, site: str, settings: dict) -> str:
    return f"{base}{site}/index.html?{urlencode({**settings, 'autostart': 1}, quote_via=quote)}"


# (model, URL settings); the same settings go to `gru-edge sample` as options.
CASES = {
    "greedy": ("small", {"prime": "The rose ", "length": 300, "seed": 1, "temperature": 0}),
    "sampled-seed-3": ("small", {"prime": "The rose ", "length": 300, "seed": 3, "temperature": 1}),
    "sampled-seed-7-t0.6": ("small", {"prime": "a", "length": 200, "seed": 7, "temperature": 0.6}),
    "no-prime-t1.5": ("small", {"length": 200, "seed": 11, "temperature": 1.5}),
    "top-k": ("small", {"prime": "Is ", "length": 250, "seed": 5, "temperature": 1, "top_k": 5}),
    "top-p": (
        "small",
        {"prime": "Is ", "length": 250, "seed": 6, "temperature": 0.9, "top_p": 0.8},
    ),
    "non-ascii-prime": ("small", {"prime": "“é🙂”\r\n", "length": 100, "seed": 2}),
    "gru128-long": ("big", {"prime": "Wild ", "length": 5000, "seed": 9, "temperature": 0.8}),
    "gru128-top-k-top-p": (
        "big",
        {"prime": "x", "length": 800, "seed": 4, "temperature": 1.2, "top_k": 20, "top_p": 0.95},
    ),
}


def _sample(model: Path, settings: dict) -> str:
    options = {"top_k": "--top-k", "top_p": "--top-p"}
    args = ["sample", str(model)]
    for key, value in settings.items():
        args += [options.get(key, f"--{key}"), str(value)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n")
    return result.stdout[:-1]


@pytest.fixture(scope="module")
def pages(node, served, tmp_path_factory) -> dict[str, dict]:
    """Every case's page, run in one browser; the last one's screenshot kept."""
    _, base = served
    screenshot = tmp_path_factory.mktemp("shot") / "page.png"
    urls = [_page_url(base, site, settings) for site, settings in CASES.values()]
    results = _drive(node, urls, screenshot)
    assert len(results) == len(CASES)
    return {"screenshot": screenshot, **dict(zip(CASES, results, strict=True))}


@pytest.mark.parametrize("case", list(CASES))
def test_the_page_writes_what_gru_edge_sample_writes(case, pages, served):
    models, _ = served
    site, settings = CASES[case]
    page = pages[case]
    assert page["state"] == "done", (page["status"], page["error"], page["logs"])
    assert page["error"] is None
    expected = _sample(models[site], settings)
    got = page["output"]
    if got != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
            min(len(got), len(expected)),
        )
        pytest.fail(
            f"the page differs from gru-edge sample at character {at}: "
            f"page {got[max(0, at - 20) : at + 20]!r}, "
            f"sample {expected[max(0, at - 20) : at + 20]!r}"
        )
    # the page measured its own speed: a positive rate, shown in the status line
    assert page["charsPerSecond"] > 0
    assert "chars/s" in page["status"]
    assert not [line for line in page["logs"] if line.startswith(("error", "pageerror"))]


def test_the_page_shows_the_models_facts(pages):
    facts = pages["gru128-long"]["facts"]
    for fact in (
        "vocabulary70 characters",
        "units128",
        "layers1",
        "training bits/char2.160",
        "formatgru-edge/2",
    ):
        assert fact in facts, facts


def test_the_screenshot_is_a_png(pages):
    assert pages["screenshot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("site", "needles"),
    [
        ("garbage", ["not an ONNX model (truncated or corrupt"]),
        ("v1", ["gru-edge/1", "gru-edge/2", "re-export"]),
    ],
)
def test_a_bad_model_file_gets_a_message_in_the_page(site, needles, node, served):
    _, base = served
    (page,) = _drive(node, [_page_url(base, site, {"length": 10})])
    assert page["state"] == "error"
    assert page["output"] == ""
    for needle in needles:
        assert needle in page["error"], page["error"]


def test_bad_settings_get_a_message_in_the_page(node, served):
    _, base = served
    (page,) = _drive(node, [_page_url(base, "small", {"top_p": "2", "length": 10})])
    assert page["state"] == "error"
    assert "top_p must be in (0, 1]" in page["error"]


def test_the_page_caps_its_length(node, served):
    _, base = served
    (page,) = _drive(node, [_page_url(base, "small", {"length": 10**12})])
    assert page["state"] == "error" and page["output"] == ""
    assert "length must be at most 1,000,000 on this page" in page["error"], page["error"]
