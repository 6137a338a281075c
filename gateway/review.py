"""A code review: deterministic checks and the model's opinion, merged, cached, with a fallback chain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.cache import CachedReview, ReviewCache, context_digest, review_key
from gateway.checks import LINE_END, ChecksFailedError, RuffChecker, context_checks
from gateway.errors import (
    UNDECODABLE,
    InvalidInputError,
    UpstreamError,
    UpstreamTimeoutError,
    status_words,
)
from gateway.findings import findings_of
from gateway.metrics import record_review, record_tokens
from gateway.prompt import asks_the_model, response_format, review_messages
from gateway.suggestions import Suggestion, merged, model_suggestions, parse_model_output
from gateway.upstream import Provider, Upstream
from review_contract import Finding, ReviewContext
from servicekit.redact import excerpt

log = logging.getLogger("gateway.review")


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    usage: Usage | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)


@dataclass(frozen=True)
class Review:
    """The suggestions and where they came from (provider, model, cache)."""

    suggestions: list[str]
    provider: str
    model: str
    cached: bool
    usage: Usage
    # Why the review is incomplete (never cached), e.g. "the model answered nothing usable"; None: complete.
    degraded: str | None = None
    # Each finding as data (rule, line, severity, fingerprint): the checks' all, the model's kept.
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewLimits:
    max_suggestions: int
    max_code_bytes: int
    max_tokens: int
    temperature: float


def validate_code(code: str, max_bytes: int) -> None:
    """Raise InvalidInputError when the code is blank or larger than `max_bytes` (UTF-8)."""
    if not code.strip():
        raise InvalidInputError("function_code is empty: send the source of one Python function")
    size = len(code.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidInputError(
            f"function_code is {size} bytes; the limit is {max_bytes} (REVIEW_MAX_CODE_BYTES)"
        )


def validate_context(context: ReviewContext) -> None:
    """Raise InvalidInputError when the function's lines do not lie in the module sent."""
    lines = len(LINE_END.split(context.module))
    if not context.start_line <= context.end_line <= lines:
        raise InvalidInputError(
            f"review_context: lines {context.start_line}-{context.end_line} are not in the module's "
            f"{lines} lines"
        )


class Reviewer:
    """Reviews one function: ruff and the provider chain run at the same time, then merge."""

    def __init__(
        self,
        upstream: Upstream,
        providers: list[Provider],
        cache: ReviewCache,
        checker: RuffChecker,
        limits: ReviewLimits,
    ) -> None:
        self.upstream = upstream
        self.providers = providers
        self.cache = cache
        self.checker = checker
        self.limits = limits
        self._inflight: dict[str, asyncio.Task[Review]] = {}

    async def review(self, code: str, context: ReviewContext | None = None) -> Review:
        """Review `code`, in its module when `context` says where it stands in its repository.

        Raises InvalidInputError for blank or oversized code, or a context whose lines are not in
        its module; UpstreamError (502) or UpstreamTimeoutError (504) naming the providers when
        every provider in the chain failed for good. A model that answers nothing usable still
        yields the deterministic checks' suggestions.
        The same request asked for again while its review runs waits for that review (one model call).
        """
        validate_code(code, self.limits.max_code_bytes)
        if context is not None:
            validate_context(context)
        digest = context_digest(context)
        request = code if digest is None else f"{code}\0{digest}"
        task = self._inflight.get(request)
        if task is None:
            task = asyncio.create_task(self._review(code, context, digest))
            self._inflight[request] = task
            task.add_done_callback(lambda done: self._finished(request, done))
        # Shielded: a caller that goes away does not cancel the review the others wait for.
        try:
            review = await asyncio.shield(task)
        except UpstreamError as exc:
            record_review(exc.provider or "none", "failed", cached=False)
            raise
        record_review(review.provider, "ok" if review.degraded is None else "degraded", cached=review.cached)
        return review

    def _finished(self, request: str, task: asyncio.Task[Review]) -> None:
        self._inflight.pop(request, None)
        if not task.cancelled():
            task.exception()  # retrieved, so a review nobody waits for any more is not reported as lost

    async def _checks(self, code: str, context: ReviewContext | None) -> list[Suggestion]:
        if context is None:
            return await self.checker.check(code)
        return context_checks(await self.checker.check_in_context(code, context), code, context)

    async def _review(self, code: str, context: ReviewContext | None, digest: str | None) -> Review:
        checks: asyncio.Task[list[Suggestion]] | None = None
        failures: list[UpstreamError] = []
        try:
            for provider in self.providers:
                name = provider.name
                try:
                    model = await self.upstream.model_for(provider)
                    key = review_key(code, name, model, self.limits.max_suggestions, digest)
                    hit = await self.cache.get(key)
                    if hit is not None:
                        log.info("review cache hit (%s, %s)", name, model)
                        return Review(
                            hit.suggestions, name, model, cached=True, usage=Usage(), findings=hit.findings
                        )
                    if checks is None:
                        # ruff runs while the model thinks.
                        checks = asyncio.create_task(self._checks(code, context))
                    # A model too small to add anything is not asked (prompt.asks_the_model).
                    raw, usage = (
                        await self._ask(provider, model, code, context)
                        if asks_the_model(model)
                        else ([], Usage())
                    )
                except UpstreamError as exc:
                    log.warning("review via %s failed: %s", name, exc.message)
                    failures.append(exc)
                    continue
                degraded = None if raw is not None else "the model answered nothing usable"
                try:
                    found = await checks
                except ChecksFailedError as exc:
                    found, degraded = [], f"no checks: {exc}"
                if context is not None and context.types is None and degraded is None:
                    degraded = "no type check (it failed or did not finish in time)"
                from_model = model_suggestions(raw or [], code)
                kept = merged(found, from_model, self.limits.max_suggestions)
                suggestions = [s.text for s in kept]
                findings = findings_of(found, [s for s in kept if s in from_model], code, context)
                # Only a complete review is kept: a degraded one would be served long after the cause is gone.
                # Stored after the answer: a slow or absent cache never delays a review.
                if degraded is None:
                    self.cache.put_later(
                        key,
                        CachedReview(suggestions=suggestions, provider=name, model=model, findings=findings),
                    )
                return Review(
                    suggestions, name, model, cached=False, usage=usage, degraded=degraded, findings=findings
                )
        finally:
            if checks is not None and not checks.done():
                checks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checks
        raise _combined(failures)

    async def _ask(
        self, provider: Provider, model: str, code: str, context: ReviewContext | None
    ) -> tuple[list[str] | None, Usage]:
        """The model's suggestions; one retry when the answer is empty or unreadable, then None."""
        usage = Usage()
        for attempt in (1, 2):
            body = self._request_body(provider, model, code, context.uses if context else "")
            response = await self.upstream.request(provider, "POST", "chat/completions", body)
            if response.status_code != 200:
                # The provider's body is its own text and may echo the key it was sent: the caller
                # and the log get our words; a DEBUG line gets a short excerpt, keys masked.
                status = response.status_code
                log.debug(
                    "%s answered the review request HTTP %d: %s",
                    provider.name,
                    status,
                    excerpt(response.text, [provider.api_key]),
                )
                raise UpstreamError(
                    f"{provider.name} refused the review request: HTTP {status} ({status_words(status)})",
                    provider=provider.name,
                )
            try:
                completion = _COMPLETION.decode(response.content)
            except UNDECODABLE as exc:
                raise UpstreamError(
                    f"{provider.name} answered something that is not a chat completion",
                    provider=provider.name,
                ) from exc
            usage = _add(usage, completion.usage)
            if completion.usage is not None:
                record_tokens(
                    provider.name, completion.usage.prompt_tokens, completion.usage.completion_tokens
                )
            content = completion.choices[0].message.content if completion.choices else None
            parsed = parse_model_output(content)
            if parsed is not None:
                return parsed, usage
            log.warning(
                "%s answered no readable suggestions (attempt %d, %d characters)",
                provider.name,
                attempt,
                len(content or ""),
            )
            log.debug("%s answered: %s", provider.name, excerpt(content or "", [provider.api_key]))
        return None, usage

    def _request_body(self, provider: Provider, model: str, code: str, uses: str) -> bytes:
        body: dict[str, Any] = {
            "model": model,
            "messages": review_messages(code, self.limits.max_suggestions, uses=uses),
            "response_format": response_format(provider.structured, self.limits.max_suggestions),
            "temperature": self.limits.temperature,
        }
        # OpenAI's newer models only take max_completion_tokens; DeepSeek and llama.cpp hosts take max_tokens.
        body["max_completion_tokens" if provider.name == "openai" else "max_tokens"] = self.limits.max_tokens
        return msgspec.json.encode(body)


def _add(total: Usage, more: Usage | None) -> Usage:
    if more is None:
        return total
    return Usage(
        prompt_tokens=total.prompt_tokens + more.prompt_tokens,
        completion_tokens=total.completion_tokens + more.completion_tokens,
        total_tokens=total.total_tokens + more.total_tokens,
    )


def _combined(failures: list[UpstreamError]) -> UpstreamError:
    """One error for a failed chain: the last provider's kind (502/504), every provider's reason."""
    last = failures[-1]
    message = "; ".join(f.message for f in failures)
    if isinstance(last, UpstreamTimeoutError):
        return UpstreamTimeoutError(message, provider=last.provider)
    return UpstreamError(message, provider=last.provider)
