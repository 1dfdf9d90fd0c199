"""The HTTP side: OpenAI's legacy completions API, /v1/models and /health on Starlette.

Errors are OpenAI-style JSON bodies with their status; the service keeps serving the other
clients whatever one sends. A streaming client that goes away cancels its rows at once (Starlette
cancels the response's generator, whose ``finally`` frees them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gru_edge.runtime.errors import PrimeError
from gru_edge.runtime.generator import Generator
from gru_edge.serve.requests import ApiError, Completion, ServeLimits, parse_completion
from gru_edge.serve.scheduler import BatchScheduler, QueueFull, Row, RowSpec, ShuttingDown

DISCONNECT_CHECK_S = 0.25  # how often a non-streaming request checks that its client is there


@dataclass
class Served:
    """One served model file."""

    name: str
    generator: Generator
    scheduler: BatchScheduler
    created: int


def create_app(generators: dict[str, Generator], limits: ServeLimits) -> Starlette:
    """The service for already loaded (and so already checked) model files, by name."""
    started = int(time.time())
    served = {
        name: Served(
            name,
            generator,
            BatchScheduler(
                generator.model.session,
                generator.vocab,
                generator.state_width,
                max_batch=limits.max_batch,
                max_queue=limits.max_queue,
                in_graph=generator.model.takes_row_settings,
            ),
            started,
        )
        for name, generator in generators.items()
    }
    names = list(served)

    async def completions(request: Request) -> Response:
        _authorize(request, limits)
        completion = parse_completion(await _json_body(request, limits), names, limits)
        model = served[completion.model]
        seed, prime_ids, fed = _prepare(model, completion)
        options = completion.options
        specs = [
            RowSpec(prime_ids, options.length, options.sampling, seed + i, options.stop)
            for i in range(completion.n)
        ]
        try:
            rows = model.scheduler.submit(specs)
        except QueueFull:
            raise ApiError(
                429,
                f"the queue for {model.name} is full ({limits.max_queue} rows wait beyond a "
                f"batch of {limits.max_batch}); retry later",
                kind="rate_limit_error",
                code="queue_full",
            ) from None
        except ShuttingDown:
            raise ApiError(503, "the server is shutting down", kind="server_error") from None
        head = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model.name,
            "system_fingerprint": None,
            "seed": seed,  # gru-edge's: the seed used (drawn when none was given)
        }
        if completion.stream:
            return StreamingResponse(
                _events(rows, head, len(fed), completion),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return await _whole(request, rows, head, len(fed))

    async def models(request: Request) -> Response:
        _authorize(request, limits)
        data = [
            {"id": m.name, "object": "model", "created": m.created, "owned_by": "gru-edge"}
            for m in served.values()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        rows = {
            m.name: {"rows": m.scheduler.active, "queued": m.scheduler.queued}
            for m in served.values()
        }
        return JSONResponse({"status": "ok", "models": rows})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(m.scheduler.run()) for m in served.values()]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    app = Starlette(
        routes=[
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.served = served
    return app


def drain(app: Starlette, grace: float) -> None:
    """Stop taking requests; end the open rows after ``grace`` seconds (server shutdown)."""
    loop = asyncio.get_running_loop()
    for model in app.state.served.values():
        model.scheduler.close()
        loop.call_later(grace, model.scheduler.end_all, "the server is shutting down")


def _prepare(model: Served, completion: Completion) -> tuple[int, Any, str]:
    """(seed, prime ids, prime fed); a prime the vocabulary cannot encode is a 400."""
    seed = completion.options.seed
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    try:
        prime_ids, fed, _ = model.generator.encode_prime(completion.prompt)
    except PrimeError as exc:
        message = str(exc).replace("; remove them or pass --unknown skip", "; remove them")
        raise ApiError(400, message, param="prompt") from None
    return seed, prime_ids, fed


async def _whole(request: Request, rows: list[Row], head: dict, prompt_chars: int) -> Response:
    texts = [[] for _ in rows]
    finish: list[str | None] = [None] * len(rows)
    queue = rows[0].queue
    try:
        check = time.monotonic() + DISCONNECT_CHECK_S
        while None in finish:
            try:
                index, text, reason = await asyncio.wait_for(queue.get(), DISCONNECT_CHECK_S)
                texts[index].append(text)
                finish[index] = reason
            except asyncio.TimeoutError:
                pass
            if time.monotonic() >= check:
                if await request.is_disconnected():
                    return Response(status_code=499)  # nobody reads it; the rows are freed
                check = time.monotonic() + DISCONNECT_CHECK_S
    finally:
        for row in rows:
            row.cancel()
    failed = [reason for reason in finish if reason and reason.startswith("error: ")]
    if failed:
        raise ApiError(503, failed[0].removeprefix("error: "), kind="server_error")
    choices = [
        {"text": "".join(t), "index": i, "logprobs": None, "finish_reason": finish[i]}
        for i, t in enumerate(texts)
    ]
    completion_chars = sum(len(c["text"]) for c in choices)
    return JSONResponse(
        {**head, "choices": choices, "usage": _usage(prompt_chars, completion_chars)}
    )


async def _events(
    rows: list[Row], head: dict, prompt_chars: int, completion: Completion
) -> AsyncIterator[str]:
    """Server-sent events: a chunk per piece of a choice, its last with finish_reason, then
    (with stream_options.include_usage) the usage, then [DONE]."""
    queue = rows[0].queue
    open_rows, written = len(rows), 0
    try:
        while open_rows:
            pieces = await _ready(queue)
            failed = [r for _, _, r in pieces if r and r.startswith("error: ")]
            if failed:
                error = ApiError(503, failed[0].removeprefix("error: "), kind="server_error")
                yield _event(error.body())
                break
            for index, text, reason in pieces:
                written += len(text)
                choice = {"text": text, "index": index, "logprobs": None, "finish_reason": reason}
                yield _event({**head, "choices": [choice]})
                open_rows -= reason is not None
        else:
            if completion.include_usage:
                yield _event({**head, "choices": [], "usage": _usage(prompt_chars, written)})
        yield "data: [DONE]\n\n"
    finally:
        for row in rows:  # finished rows ignore it; a gone client's rows leave the batch
            row.cancel()


async def _ready(queue: asyncio.Queue) -> list[tuple[int, str, str | None]]:
    """The next piece and every one already waiting, merged per choice (in order): a client
    that reads slower than the batch writes gets fewer, larger events, not a backlog."""
    merged: dict[int, tuple[str, str | None]] = {}
    item = await queue.get()
    while True:
        index, text, reason = item
        held, _ = merged.get(index, ("", None))
        merged[index] = (held + text, reason)
        if queue.empty():
            return [(index, text, reason) for index, (text, reason) in merged.items()]
        item = queue.get_nowait()


def _event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    """Counted in characters, the model's tokens."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _authorize(request: Request, limits: ServeLimits) -> None:
    if limits.api_key is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), limits.api_key.encode()
    ):
        what = "is wrong" if given else "is missing"
        raise ApiError(
            401,
            f"the API key {what}: send 'Authorization: Bearer <key>' with the server's --api-key",
            code="invalid_api_key",
        )


async def _json_body(request: Request, limits: ServeLimits) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body:
        raise _too_large(int(declared), limits)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body:
            raise _too_large(len(body), limits)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


def _too_large(size: int, limits: ServeLimits) -> ApiError:
    return ApiError(
        413,
        f"the request body has {size:,} bytes or more, above the server's --max-body "
        f"{limits.max_body:,}",
        code="request_too_large",
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = f"{request.method} {request.url.path}: {exc.detail}"
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return JSONResponse(ApiError(exc.status_code, message, kind=kind).body(), exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    error = ApiError(500, f"internal error: {type(exc).__name__}: {exc}", kind="server_error")
    return JSONResponse(error.body(), status_code=500)
