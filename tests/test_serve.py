"""`gru-edge serve` through the official openai client and plain HTTP: the same text as
`gru-edge sample` for the same seed and settings (stop, n, top_p included), OpenAI-style errors
with their status for every bad request, and rows that leave the batch when their client goes.

The promise (docs/serve.md): choice i of a request seeded s is sample i + 1 of `gru-edge sample
-n N --seed s` for any N >= 2, bit for bit, whatever else shares the batch (the scheduler never
steps one row alone; onnxruntime rounds a batch of 1 differently). So a single choice is checked
against `sample -n 2`'s first sample (`first_of_two`)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from onnx_models import make_model, write_model
from serve_fixtures import config, rows, wait_for
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.exporter.generator_graph import add_generator
from gru_edge.runtime.generator import Generator
from gru_edge.runtime.generator_build import VERSION_1
from gru_edge.runtime.randomness import gumbel, gumbel_rows
from gru_edge.serve.server import serving_in_thread

openai = pytest.importorskip("openai")
runner = CliRunner()


@pytest.fixture(scope="module")
def served(small_model, models_dir):
    """Base URL of a service with the small model, a gru-edge/1 file without a generator, and a
    model whose logits are NaN."""
    old = write_model(models_dir / "served_old.onnx", units=16, seed=1, generator=False)
    nan = write_model(models_dir / "served_nan.onnx", units=8, seed=6, edit_weights=_nan_bias)
    with serving_in_thread(config(small_model, old, nan)) as base:
        yield base


def _nan_bias(weights) -> None:
    weights["dense_b"].fill(np.nan)


def first_of_two(gen, prime, length, **settings) -> str:
    """What the service writes for one choice: `gru-edge sample -n 2`'s first sample."""
    return gen.generate_batch(2, prime, length, **settings)[0]


def client(base: str, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def test_rows_noise_is_the_streams_noise():
    keys = np.array([0, 7, 2**64 - 1, 123456789], dtype=np.uint64)
    positions = np.array([0, 5, 1000, 3], dtype=np.uint64)
    got = gumbel_rows(keys, positions, 70, 5)
    for r, (key, position) in enumerate(zip(keys, positions, strict=True)):
        assert np.array_equal(got[r], gumbel(int(key), 1, int(position), 5, 70)[:, 0])


SETTINGS = [
    {"temperature": 1.0},
    {"temperature": 0.0},
    {"temperature": 0.8, "top_p": 0.9},
    {"temperature": 1.2, "top_k": 20, "top_p": 0.7},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_openai_client_gets_samples_text(served, gen, settings):
    oa = client(served)
    extra = {"top_k": settings.pop("top_k")} if "top_k" in settings else None
    for seed in (1, 7):
        got = oa.completions.create(
            model="small",
            prompt="The ",
            max_tokens=300,
            seed=seed,
            n=3,
            extra_body=extra,
            **settings,
        )
        want = gen.generate_batch(
            3, "The ", 300, seed=seed, top_k=(extra or {}).get("top_k"), **settings
        )
        assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
        assert {c.finish_reason for c in got.choices} == {"length"}
        assert got.usage.completion_tokens == 900 and got.usage.prompt_tokens == 4


def test_streaming_and_stop_match_sample(served, gen):
    text = first_of_two(gen, "Fire ", 500, seed=4, top_p=0.9)
    stop = text[200:203]
    expected = text[: text.index(stop)]
    oa = client(served)
    pieces = oa.completions.create(
        model="small", prompt="Fire ", max_tokens=500, seed=4, top_p=0.9, stop=[stop], stream=True
    )
    chunks = list(pieces)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"
    whole = oa.completions.create(
        model="small", prompt="Fire ", max_tokens=500, seed=4, top_p=0.9, stop=stop
    )
    assert whole.choices[0].text == expected and whole.choices[0].finish_reason == "stop"
    # gru-edge sample itself, with --stop (the first of two samples)
    result = runner.invoke(
        app,
        [
            "sample",
            str(gen.model.path),
            "-n",
            "2",
            "--prime",
            "Fire ",
            "-l",
            "500",
            "--seed",
            "4",
            "--top-p",
            "0.9",
            "--stop",
            stop,
        ],
    )
    assert result.stdout.startswith(f"----- sample 1/2\nFire {expected}\n----- sample 2/2\n")


def test_streamed_choices_interleave_and_each_ends(served, gen):
    oa = client(served)
    stream = oa.completions.create(
        model="small",
        prompt="A",
        max_tokens=200,
        seed=2,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, ends, usage = ["", ""], [None, None], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            ends[choice.index] = choice.finish_reason or ends[choice.index]
    assert texts == gen.generate_batch(2, "A", 200, seed=2) and ends == ["length", "length"]
    assert usage.completion_tokens == 400


def test_a_gru_edge_1_file_serves_the_same_text(served, gen):
    got = client(served).completions.create(
        model="served_old", prompt="The ", max_tokens=100, seed=5
    )
    assert got.choices[0].text == first_of_two(gen, "The ", 100, seed=5)


def test_a_file_whose_generator_takes_one_setting_for_all_rows_serves_the_same_text(models_dir):
    # Exported before generator version 2: the service steps it on the host, same text.
    model = make_model(units=16, seed=1, generator=False, metadata={"format": "gru-edge/2"})
    add_generator(model, 70, 16, VERSION_1)
    path = write_model(models_dir / "first_version.onnx", model)
    old = Generator.load(path, device="cpu", threads=1)
    assert old.model.has_generator and not old.model.takes_row_settings
    with serving_in_thread(config(path)) as base:
        got = client(base).completions.create(
            model="first_version", prompt="The ", max_tokens=300, seed=8, n=3, top_p=0.9
        )
    texts = [c.text for c in sorted(got.choices, key=lambda c: c.index)]
    assert texts == [first_of_two(old, "The ", 300, seed=8 + i, top_p=0.9) for i in range(3)]


def test_models_health_and_a_drawn_seed(served, gen):
    assert [m.id for m in client(served).models.list()] == ["small", "served_old", "served_nan"]
    assert httpx.get(f"{served}/health").json()["status"] == "ok"
    body = httpx.post(f"{served}/v1/completions", json={"model": "small", "max_tokens": 30}).json()
    assert body["choices"][0]["text"] == first_of_two(gen, None, 30, seed=body["seed"])


BAD = [
    ({"model": "nope"}, 404, "model 'nope' is not served here", "model"),
    (
        {"model": "small", "max_tokens": -1},
        400,
        "max_tokens must be a whole number from 0",
        "max_tokens",
    ),
    ({"model": "small", "max_tokens": 200_001}, 400, "--max-tokens", "max_tokens"),
    ({"model": "small", "n": 5}, 400, "n must be a whole number from 1 to 4", "n"),
    (
        {"model": "small", "temperature": -1},
        400,
        "temperature must be a finite number",
        "temperature",
    ),
    ({"model": "small", "top_p": 1.5}, 400, "top-p must be in (0, 1]", "top_p"),
    ({"model": "small", "top_k": 0}, 400, "top-k must be at least 1", "top_k"),
    ({"model": "small", "top_k": "x"}, 400, "top_k must be a whole number", "top_k"),
    ({"model": "small", "seed": -3}, 400, "--seed must be a whole number", "seed"),
    ({"model": "small", "stop": ""}, 400, "--stop must be a non-empty string", "stop"),
    ({"model": "small", "stop": ["a"] * 5}, 400, "stop takes at most 4", "stop"),
    ({"model": "small", "prompt": "x" * 101}, 400, "more than --max-prime 100", "prompt"),
    ({"model": "small", "prompt": "日本"}, 400, "'日', '本'", "prompt"),
    ({"model": "small", "prompt": 5}, 400, "prompt must be a string", "prompt"),
    ({"model": "small", "stream": "yes"}, 400, "stream must be true or false", "stream"),
    ({"model": "small", "logprobs": 3}, 400, "logprobs 3 is not supported", "logprobs"),
    ({"model": "small", "colour": 1}, 400, "unknown field(s) colour", "colour"),
    ([1, 2], 400, "must be a JSON object", None),
]


@pytest.mark.parametrize("body, status, needle, param", BAD, ids=lambda v: str(v)[:30])
def test_bad_requests_get_their_status_and_one_line(served, body, status, needle, param):
    response = httpx.post(f"{served}/v1/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"] and "\n" not in error["message"]
    assert error["param"] == param and error["type"]


def test_bad_bodies_unknown_routes_and_size(served):
    bad_json = httpx.post(f"{served}/v1/completions", content=b"{nope")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    big = httpx.post(f"{served}/v1/completions", content=b" " * 5000)
    assert big.status_code == 413 and "--max-body 4,096" in big.json()["error"]["message"]
    assert httpx.get(f"{served}/v2/nothing").status_code == 404
    assert httpx.get(f"{served}/v1/completions").status_code == 405
    with pytest.raises(openai.NotFoundError):
        client(served).completions.create(model="nope", prompt="a")
    # and it keeps serving
    assert httpx.post(f"{served}/v1/completions", json={"model": "small"}).status_code == 200


def test_a_broken_model_is_a_one_line_503_and_the_others_go_on(served, gen):
    body = {"model": "served_nan", "prompt": "a", "max_tokens": 20, "n": 2}
    response = httpx.post(f"{served}/v1/completions", json=body)
    assert response.status_code == 503
    assert "computed NaN logits" in response.json()["error"]["message"]
    with httpx.stream("POST", f"{served}/v1/completions", json={**body, "stream": True}) as sse:
        lines = [line for line in sse.iter_lines() if line]
    assert "computed NaN logits" in lines[-2] and lines[-1] == "data: [DONE]"
    got = client(served).completions.create(model="small", prompt="A", max_tokens=50, seed=1)
    assert got.choices[0].text == first_of_two(gen, "A", 50, seed=1)


def test_a_disconnect_frees_its_row_at_once(served):
    body = {"model": "small", "prompt": "a", "max_tokens": 200_000, "stream": True}
    with httpx.Client(timeout=30) as one, httpx.Client(timeout=30) as two:
        with one.stream("POST", f"{served}/v1/completions", json=body) as first:
            lines_one = first.iter_lines()  # kept: a dropped iterator closes the response
            next(lines_one)
            with two.stream("POST", f"{served}/v1/completions", json=body) as second:
                lines_two = second.iter_lines()
                next(lines_two)
                wait_for(lambda: rows(served, "small") == 2)
            wait_for(lambda: rows(served, "small") == 1)  # the batch shrank
        wait_for(lambda: rows(served, "small") == 0)


def test_a_non_streaming_client_that_leaves_frees_its_rows(served):
    body = {"model": "small", "prompt": "a", "max_tokens": 200_000, "n": 2}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{served}/v1/completions", json=body, timeout=0.5)
    wait_for(lambda: rows(served, "small") == 0)


def test_api_key_and_queue_limit(small_model):
    with serving_in_thread(config(small_model, api_key="s3cret", max_batch=1, max_queue=1)) as base:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.post(
                f"{base}/v1/completions", json={"model": "small"}, headers=headers
            )
            assert response.status_code == 401
            assert "API key" in response.json()["error"]["message"]
        with pytest.raises(openai.AuthenticationError):
            client(base, "wrong").models.list()
        assert (
            client(base, "s3cret")
            .completions.create(model="small", prompt="a", max_tokens=5)
            .choices
        )
        body = {"model": "small", "max_tokens": 200_000, "stream": True}
        auth = {"Authorization": "Bearer s3cret"}
        with (
            httpx.Client(timeout=30, headers=auth) as a,
            httpx.Client(timeout=30, headers=auth) as b,
            a.stream("POST", f"{base}/v1/completions", json=body) as first,
        ):
            lines = first.iter_lines()
            next(lines)  # in the batch of 1
            with b.stream("POST", f"{base}/v1/completions", json=body):  # in the queue of 1
                full = httpx.post(f"{base}/v1/completions", json=body, headers=auth)
                assert full.status_code == 429
                assert "queue for small is full" in full.json()["error"]["message"]


def test_curl_streams_too(served, gen):
    import shutil
    import subprocess

    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    body = json.dumps(
        {"model": "small", "prompt": "The ", "max_tokens": 80, "seed": 3, "stream": True}
    )
    out = subprocess.run(
        [
            "curl",
            "-sN",
            f"{served}/v1/completions",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    events = [line.removeprefix("data: ") for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert text == first_of_two(gen, "The ", 80, seed=3)
