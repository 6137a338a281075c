"""The gateway's HTTP routes: health, models, chat completions (routed or reviewed), /analyze."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.response import Stream

from gateway.errors import InvalidInputError, MalformedBodyError, UpstreamError
from gateway.http1 import Response as UpstreamResponse
from gateway.http1 import TransportError
from gateway.review import Review, Reviewer
from gateway.schemas import (
    CODE_REVIEW_MODEL,
    UPSTREAM_MODELS,
    AnalyzeRequest,
    AnalyzeResponse,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    ReviewContent,
)
from gateway.upstream import Provider, Upstream

log = logging.getLogger("gateway.routes")

T = TypeVar("T")
JSON = "application/json"
_ENCODER = msgspec.json.Encoder()


@dataclass
class Gateway:
    """What the routes need, built in the app's lifespan and kept in `app.state.gateway`."""

    upstream: Upstream
    providers: dict[str, Provider]
    chain: list[str]
    reviewer: Reviewer

    @property
    def primary(self) -> Provider:
        return self.providers[self.chain[0]]


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _decode(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body; 400 when it is not JSON, 422 naming the field when it has the wrong shape."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidInputError(f"invalid request body: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise MalformedBodyError(f"request body is not valid JSON: {exc}") from exc


def _json(value: object, status_code: int = 200) -> Response[bytes]:
    return Response(_ENCODER.encode(value), status_code=status_code, media_type=JSON)


@get("/health", sync_to_thread=False)
def health() -> Response[bytes]:
    """Alive: the process serves requests (readiness of the provider is /health/ready)."""
    return _json({"status": "ok"})


@get("/health/ready")
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    """200 when at least one provider of the chain answers GET /models (costs no tokens), else 503."""
    gateway = _gateway(request)

    async def probe(provider: Provider) -> str:
        try:
            response = await gateway.upstream.request(provider, "GET", "models", retry=False)
        except UpstreamError as exc:
            return exc.message
        return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"

    results = await asyncio.gather(*(probe(gateway.providers[name]) for name in gateway.chain))
    states = dict(zip(gateway.chain, results, strict=True))
    is_ready = "ok" in results
    return _json(
        {"status": "ready" if is_ready else "unavailable", "providers": states}, 200 if is_ready else 503
    )


@get("/v1/models")
async def models(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The virtual `code-review` model, then the chosen provider's own models."""
    gateway = _gateway(request)
    provider = gateway.primary
    response = await gateway.upstream.request(provider, "GET", "models")
    if response.status_code != 200:
        raise UpstreamError(
            f"{provider.name} /models answered HTTP {response.status_code}", provider=provider.name
        )
    try:
        listed = UPSTREAM_MODELS.decode(response.content).data
    except msgspec.DecodeError as exc:
        raise UpstreamError(
            f"{provider.name} /models answered no model list", provider=provider.name
        ) from exc
    cards = [ModelCard(id=CODE_REVIEW_MODEL, owned_by="codereview-gateway")]
    cards += [card for card in listed if card.id != CODE_REVIEW_MODEL]
    return _json(ModelList(data=cards))


@post("/analyze", status_code=200)
async def analyze(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Review one function: `{"function_code": str}` -> `{"suggestions": [str, ...]}`."""
    body = _decode(await request.body(), AnalyzeRequest)
    review = await _gateway(request).reviewer.review(body.function_code)
    _log_review(review)
    return _json(AnalyzeResponse(suggestions=review.suggestions))


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    """OpenAI chat completions: `code-review` is answered here, any other model goes to the provider."""
    raw = await request.body()
    chat = _decode(raw, ChatRequest)
    gateway = _gateway(request)
    if chat.model == CODE_REVIEW_MODEL:
        review = await gateway.reviewer.review(_function_code(chat.messages))
        _log_review(review)
        content = _ENCODER.encode(ReviewContent(suggestions=review.suggestions)).decode()
        if chat.stream:
            return Stream(_review_chunks(content), media_type="text/event-stream", headers=_SSE_HEADERS)
        completion = ChatCompletion(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=CODE_REVIEW_MODEL,
            choices=[Choice(message=AssistantMessage(content=content))],
            usage=review.usage,
        )
        return _json(completion)
    provider = gateway.primary
    log.debug("passthrough of model %s to %s (stream=%s)", chat.model, provider.name, chat.stream)
    if not chat.stream:
        response = await gateway.upstream.request(provider, "POST", "chat/completions", raw)
        return Response(
            response.content,
            status_code=response.status_code,
            media_type=response.headers.get("content-type", JSON),
        )
    upstream = await gateway.upstream.open_stream(provider, "chat/completions", raw)
    if upstream.status_code != 200:
        try:
            content_bytes = await upstream.aread()
        except TransportError as exc:
            raise UpstreamError(f"{provider.name} failed: {exc}", provider=provider.name) from exc
        finally:
            await upstream.aclose()
        return Response(
            content_bytes,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", JSON),
        )
    return Stream(_relay(upstream, provider), media_type="text/event-stream", headers=_SSE_HEADERS)


_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _relay(upstream: UpstreamResponse, provider: Provider) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except TransportError as exc:
        # Headers are gone already: all that is left is to end the stream with an error event.
        log.warning("%s stream broke: %s", provider.name, exc)
        error = {"error": {"message": f"{provider.name} stream broke: {exc}", "type": "upstream_error"}}
        yield b"data: " + _ENCODER.encode(error) + b"\n\n"
    finally:
        await upstream.aclose()


async def _review_chunks(content: str) -> AsyncIterator[bytes]:
    """A finished review as an OpenAI stream: role, the content, the stop, then [DONE]."""
    ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    deltas = [
        (Delta(role="assistant", content=""), None),
        (Delta(content=content), None),
        (Delta(), "stop"),
    ]
    for delta, finish in deltas:
        chunk = ChatCompletionChunk(
            id=ident,
            created=created,
            model=CODE_REVIEW_MODEL,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )
        yield b"data: " + _ENCODER.encode(chunk) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _function_code(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message: the function to review (string or text parts)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if texts and all(isinstance(t, str) for t in texts):
                return "\n".join(t for t in texts if isinstance(t, str))
        raise InvalidInputError("the last user message must hold the function code as text")
    raise InvalidInputError(f"model {CODE_REVIEW_MODEL!r} needs a user message holding the function code")


def _log_review(review: Review) -> None:
    log.info(
        "review: %d suggestions via %s/%s%s",
        len(review.suggestions),
        review.provider,
        review.model,
        " (cached)" if review.cached else "",
    )


ROUTES = [health, ready, models, analyze, chat_completions]
