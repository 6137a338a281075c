"""The gateway's HTTP routes: health, models, chat completions (routed or reviewed), /analyze."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody
from litestar.response import Stream

from gateway.batch import ModuleChecks
from gateway.errors import UNDECODABLE, InvalidInputError, UpstreamError
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
    Health,
    ModelCard,
    ModelList,
    Readiness,
)
from gateway.upstream import Provider, Upstream
from gateway.upstream import Stream as UpstreamStream
from review_contract import ReviewContent
from review_contract.checks import ChecksRequest, ChecksResponse

log = logging.getLogger("gateway.routes")

JSON = "application/json"
_ENCODER = msgspec.json.Encoder()


@get("/health", sync_to_thread=False)
def health() -> Health:
    """Alive: the process serves requests (readiness of the provider is /health/ready)."""
    return Health(status="ok")


@get("/health/ready")
async def ready(upstream: NamedDependency[Upstream]) -> Response[Readiness]:
    """200 when at least one provider of the chain answers GET /models (costs no tokens), else 503."""

    async def probe(provider: Provider) -> str:
        try:
            response = await upstream.request(provider, "GET", "models", retry=False)
        except UpstreamError as exc:
            return exc.message
        return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"

    providers = upstream.providers
    results = await asyncio.gather(*(probe(provider) for provider in providers))
    states = {provider.name: result for provider, result in zip(providers, results, strict=True)}
    is_ready = "ok" in results
    return Response(
        Readiness(status="ready" if is_ready else "unavailable", providers=states),
        status_code=200 if is_ready else 503,
    )


@get("/v1/models")
async def models(upstream: NamedDependency[Upstream]) -> ModelList:
    """The virtual `code-review` model, then the chosen provider's own models."""
    provider = upstream.providers[0]
    response = await upstream.request(provider, "GET", "models")
    if response.status_code != 200:
        raise UpstreamError(
            f"{provider.name} /models answered HTTP {response.status_code}", provider=provider.name
        )
    try:
        listed = UPSTREAM_MODELS.decode(response.content).data
    except UNDECODABLE as exc:
        raise UpstreamError(
            f"{provider.name} /models answered no model list", provider=provider.name
        ) from exc
    cards = [ModelCard(id=CODE_REVIEW_MODEL, owned_by="codereview-gateway")]
    cards += [card for card in listed if card.id != CODE_REVIEW_MODEL]
    return ModelList(data=cards)


@post("/analyze", status_code=200)
async def analyze(data: JSONBody[AnalyzeRequest], reviewer: NamedDependency[Reviewer]) -> AnalyzeResponse:
    """Review one function: `{"function_code": str}` -> `{"suggestions": [str, ...]}`."""
    review = await reviewer.review(data.function_code)
    _log_review(review)
    return AnalyzeResponse(suggestions=review.suggestions)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    data: JSONBody[ChatRequest],
    request: Request[Any, Any, Any],
    reviewer: NamedDependency[Reviewer],
) -> ChatCompletion | Response[bytes] | Stream:
    """OpenAI chat completions: `code-review` is answered here, any other model goes to the provider.

    Other models get the caller's bytes as they came (Litestar keeps the body it decoded), so any
    OpenAI parameter, known to the gateway or not, reaches the provider untouched, through the
    same client the reviews use.
    """
    chat = data
    if chat.model == CODE_REVIEW_MODEL:
        review = await reviewer.review(_function_code(chat.messages), chat.review_context)
        _log_review(review)
        content = _ENCODER.encode(
            ReviewContent(suggestions=review.suggestions, findings=review.findings)
        ).decode()
        if chat.stream:
            return Stream(_review_chunks(content), media_type="text/event-stream", headers=_SSE_HEADERS)
        return ChatCompletion(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model=CODE_REVIEW_MODEL,
            choices=[Choice(message=AssistantMessage(content=content))],
            usage=review.usage,
        )
    raw = await request.body()
    upstream = reviewer.upstream
    provider = upstream.providers[0]
    log.debug("passthrough of model %s to %s (stream=%s)", chat.model, provider.name, chat.stream)
    if not chat.stream:
        answer = await upstream.request(provider, "POST", "chat/completions", raw)
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type", JSON),
        )
    stream = await upstream.open_stream(provider, "chat/completions", raw)
    if stream.status_code != 200:
        try:
            refusal = await stream.aread()
        finally:
            await stream.aclose()
        return Response(
            refusal, status_code=stream.status_code, media_type=stream.headers.get("content-type", JSON)
        )
    return Stream(_relay(stream), media_type="text/event-stream", headers=_SSE_HEADERS)


_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _relay(stream: UpstreamStream) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield chunk
    except UpstreamError as exc:
        # Headers are gone already: all that is left is to end the stream with an error event.
        log.warning("passthrough stream ended early: %s", exc.message)
        error = {"error": {"message": exc.message, "type": exc.error_type, "provider": exc.provider}}
        # The blank line first ends an event the provider left half-sent, so this one stands alone.
        yield b"\n\ndata: " + _ENCODER.encode(error) + b"\n\n"
    finally:
        await stream.aclose()


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
    if review.degraded is not None:
        log.warning(
            "review: %d suggestions via %s/%s, DEGRADED (not cached): %s",
            len(review.suggestions),
            review.provider,
            review.model,
            review.degraded,
        )
        return
    log.info(
        "review: %d suggestions via %s/%s%s",
        len(review.suggestions),
        review.provider,
        review.model,
        " (cached)" if review.cached else "",
    )


def checks_route(max_body_bytes: int) -> HTTPRouteHandler:
    """`POST /checks` with its own body limit (GATEWAY_CHECKS_MAX_BYTES; larger bodies get 413)."""

    @post("/checks", status_code=200, request_max_body_size=max_body_bytes)
    async def checks(data: JSONBody[ChecksRequest], reviewer: NamedDependency[Reviewer]) -> ChecksResponse:
        """The deterministic checks of whole modules at once: each function's findings, as a
        review in context gives them (gateway/batch.py)."""
        return await ModuleChecks(reviewer.checker).check(data)

    return checks


ROUTES = [health, ready, models, analyze, chat_completions]
