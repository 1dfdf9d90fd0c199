"""The service's limits and a completion request's fields, checked before any work.

Every bad field is an ApiError: the HTTP status, the one-line message (the CLI's own for the
settings `gru-edge sample` shares), the field, and OpenAI's error type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gru_edge.runtime.errors import GruEdgeError, UsageError
from gru_edge.runtime.options import GenerationOptions

MAX_STOPS = 4  # OpenAI's limit on stop strings


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for, and how much the service holds; each a `serve` option."""

    max_body: int = 1 << 20  # bytes of a request body (413 beyond)
    max_tokens: int = 4096  # characters of one choice
    max_n: int = 16  # choices of one request
    max_prime: int = 8192  # characters of a prompt
    max_batch: int = 256  # rows one model generates together
    max_queue: int = 256  # rows waiting to join a model's batch (429 beyond)
    api_key: str | None = None  # when set, /v1/* needs "Authorization: Bearer <key>"

    def __post_init__(self) -> None:
        for name in ("max_body", "max_tokens", "max_n", "max_prime", "max_batch", "max_queue"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} must be a whole number >= 1, got {value!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise UsageError("--api-key must not be empty; omit it to serve without a key")


class ApiError(Exception):
    """An OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = (
            status,
            message,
            param,
            kind,
            code,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class Completion:
    """A checked completion request."""

    model: str
    prompt: str
    options: GenerationOptions  # length = max_tokens; stop; seed (None: drawn)
    n: int
    stream: bool
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the usage


# Fields OpenAI defines that change nothing here at these values (clients send them).
_NEUTRAL = {
    "user": None,
    "echo": False,
    "logprobs": None,
    "best_of": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "suffix": None,
    "logit_bias": None,
    "stream_options": None,
}
_OURS = {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop"}
_OURS |= {"n", "stream"}
# The CLI flag a GenerationOptions message names -> the request's field.
_PARAMS = {
    "--length": "max_tokens",
    "temperature": "temperature",
    "top-k": "top_k",
    "top-p": "top_p",
    "--seed": "seed",
    "--stop": "stop",
}


def parse_completion(body: Any, served: list[str], limits: ServeLimits) -> Completion:
    """The request ``body`` (parsed JSON) checked; ApiError 400 or 404."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - _OURS - set(_NEUTRAL))
    if unknown:
        raise ApiError(
            400,
            f"unknown field(s) {', '.join(unknown)}; see docs/serve.md for the fields",
            param=unknown[0],
        )
    for name, neutral in _NEUTRAL.items():
        value = body.get(name, neutral)
        if name not in ("user", "stream_options") and value not in (neutral, None, {}):
            raise ApiError(
                400, f"{name} {value!r} is not supported by gru-edge; omit it", param=name
            )
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(400, f"model must be a string, one of {', '.join(served)}", param="model")
    if model not in served:
        raise ApiError(
            404,
            f"model {model!r} is not served here; the models are {', '.join(served)}",
            param="model",
            code="model_not_found",
        )
    prompt = _prompt(body.get("prompt", ""), limits)
    max_tokens = _whole(body, "max_tokens", 16, limits.max_tokens)
    n = _whole(body, "n", 1, limits.max_n, least=1)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false, got {stream!r}", param="stream")
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise ApiError(400, f"top_k must be a whole number, got {top_k!r}", param="top_k")
    try:
        options = GenerationOptions(
            length=max_tokens,
            temperature=_number(body, "temperature", 1.0),
            top_k=top_k,
            top_p=_number(body, "top_p", None),
            seed=body.get("seed"),
            stop=_stops(body.get("stop")),
        )
    except GruEdgeError as exc:
        raise ApiError(400, str(exc), param=_param(str(exc))) from None
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict) or set(stream_options) - {"include_usage"}:
        raise ApiError(400, "stream_options takes only include_usage", param="stream_options")
    include_usage = stream_options.get("include_usage", False) is True
    return Completion(model, prompt, options, n, stream, include_usage)


def _prompt(prompt: Any, limits: ServeLimits) -> str:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]  # the client libraries' list form, one prompt
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string (or a list of one string)", param="prompt")
    if len(prompt) > limits.max_prime:
        raise ApiError(
            400,
            f"prompt has {len(prompt):,} characters, more than --max-prime {limits.max_prime:,}",
            param="prompt",
        )
    return prompt


def _whole(body: dict, name: str, default: int, most: int, least: int = 0) -> int:
    value = body.get(name)
    if value is None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise ApiError(
            400,
            f"{name} must be a whole number from {least} to {most:,} (the server's "
            f"--{name.replace('_', '-')}), got {value!r}",
            param=name,
        )
    return value


def _number(body: dict, name: str, default: float | None) -> float | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ApiError(400, f"{name} must be a number, got {value!r}", param=name)
    return float(value)


def _stops(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "stop must be a string or a list of strings", param="stop")
    if len(stops) > MAX_STOPS:
        raise ApiError(
            400, f"stop takes at most {MAX_STOPS} strings, got {len(stops)}", param="stop"
        )
    return tuple(stops)


def _param(message: str) -> str | None:
    for flag, param in _PARAMS.items():
        if message.startswith(flag):
            return param
    return None
