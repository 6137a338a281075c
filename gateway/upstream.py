"""The providers the gateway can call, and the one HTTP client that calls them.

Retries (429, 5xx, refused connections) with exponential backoff that honours `Retry-After`,
separate connect and read timeouts, and errors that name the provider. A provider's API key is
only ever put on requests to that provider's own base URL, and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import msgspec

from gateway.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from gateway.http1 import (
    ConnectTimeoutError,
    Http1Client,
    ReadTimeoutError,
    Response,
    TransportError,
)
from gateway.logs import request_id
from gateway.settings import Settings

log = logging.getLogger("gateway.upstream")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Provider:
    """One OpenAI-compatible provider: where it is, its key, its model, its structured-output mode."""

    name: str
    base_url: str
    api_key: str | None
    model: str
    # "json_schema" (OpenAI, strict) | "json_schema_bounded" (model_host's grammar) | "json_object" (DeepSeek)
    structured: str

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def build_providers(settings: Settings, local_base_url: str | None = None) -> dict[str, Provider]:
    """Every provider in the settings' chain, keyed by name; `local_base_url` overrides (SSH tunnel)."""

    def secret(value: object) -> str | None:
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else None
        return raw.strip() if isinstance(raw, str) and raw.strip() else None

    providers: dict[str, Provider] = {}
    for name in settings.provider_chain:
        if name == "openai":
            providers[name] = Provider(
                name=name,
                base_url=settings.openai_base_url.rstrip("/"),
                api_key=secret(settings.openai_api_key),
                model=settings.openai_model,
                structured="json_schema",
            )
        elif name == "deepseek":
            providers[name] = Provider(
                name=name,
                base_url=settings.deepseek_base_url.rstrip("/"),
                api_key=secret(settings.deepseek_api_key),
                model=settings.deepseek_model,
                structured="json_object",
            )
        elif name == "local":
            providers[name] = Provider(
                name=name,
                base_url=(local_base_url or settings.local_llm_base_url).rstrip("/"),
                api_key=secret(settings.local_llm_api_key),
                model=settings.local_llm_model,
                structured="json_schema_bounded",
            )
        else:  # pragma: no cover - Settings validates the chain
            raise ConfigError(f"unknown provider {name!r}")
    return providers


class _ModelList(msgspec.Struct):
    data: list[_ModelEntry]


class _ModelEntry(msgspec.Struct):
    id: str


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Upstream:
    """The gateway's HTTP client for every provider (one connection pool, opened in the lifespan)."""

    def __init__(self, settings: Settings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_retries = settings.llm_max_retries
        self.backoff = settings.llm_retry_backoff
        self.retry_after_max = settings.llm_retry_after_max
        self.read_timeout = settings.llm_read_timeout
        if ssl_context is None and settings.llm_ca_bundle is not None:
            ssl_context = ssl.create_default_context(cafile=str(settings.llm_ca_bundle))
        self.http = Http1Client(
            connect_timeout=settings.llm_connect_timeout,
            read_timeout=settings.llm_read_timeout,
            ssl_context=ssl_context,
        )
        self._models: dict[str, str] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self, provider: Provider, method: str, path: str, body: bytes | None = None, *, retry: bool = True
    ) -> Response:
        """Send (with retries unless `retry` is False) and read the whole answer.

        Returns the provider's response when it is a success or a client error the caller should
        see (400, 404, 422...). Raises UpstreamTimeoutError when the provider does not answer in time,
        UpstreamError when it keeps failing (429/5xx/unreachable) or rejects the gateway's key.
        """
        return await self._send(provider, method, path, body, stream=False, retry=retry)

    async def open_stream(self, provider: Provider, path: str, body: bytes) -> Response:
        """Like `request` for POST, but the body is left unread; the caller must `aclose()` it.

        Retries happen before the first byte, so a stream never restarts halfway.
        """
        return await self._send(provider, "POST", path, body, stream=True)

    async def model_for(self, provider: Provider) -> str:
        """The provider's configured model, or for the local host without one, the model it serves."""
        if provider.model:
            return provider.model
        cached = self._models.get(provider.base_url)
        if cached:
            return cached
        response = await self.request(provider, "GET", "models")
        try:
            models = msgspec.json.decode(response.content, type=_ModelList)
        except msgspec.DecodeError as exc:
            raise UpstreamError(
                f"{provider.name}: /models answered HTTP {response.status_code} without a model list",
                provider=provider.name,
            ) from exc
        if response.status_code != 200 or not models.data:
            raise UpstreamError(f"{provider.name}: no model listed at /models", provider=provider.name)
        self._models[provider.base_url] = models.data[0].id
        return models.data[0].id

    async def _send(
        self,
        provider: Provider,
        method: str,
        path: str,
        body: bytes | None,
        *,
        stream: bool,
        retry: bool = True,
    ) -> Response:
        headers = provider.headers()
        rid = request_id.get()
        if rid != "-":
            headers["x-request-id"] = rid  # the provider's logs can be matched with ours
        if body is not None:
            headers["content-type"] = "application/json"
        url = provider.url(path)
        attempts = self.max_retries + 1 if retry else 1
        failure = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                response = await self.http.send(method, url, headers=headers, body=body, stream=stream)
            except ConnectTimeoutError:
                failure = "connection timed out"
            except ReadTimeoutError as exc:
                raise UpstreamTimeoutError(
                    f"{provider.name} did not answer within {self.read_timeout:g}s", provider=provider.name
                ) from exc
            except TransportError as exc:
                failure = f"unreachable ({exc})"
            else:
                status = response.status_code
                if status in (401, 403):
                    await response.aclose()
                    raise UpstreamError(
                        f"{provider.name} rejected the gateway's API key (HTTP {status})",
                        provider=provider.name,
                    )
                if status not in RETRYABLE_STATUS:
                    return response
                wait = retry_after_seconds(response.headers.get("retry-after"))
                await response.aclose()
                failure = f"HTTP {status}"
                if wait is not None and wait > self.retry_after_max:
                    raise UpstreamError(
                        f"{provider.name} answered {failure} and asks to retry after {wait:.0f}s",
                        provider=provider.name,
                    )
            if attempt + 1 < attempts:
                delay = wait if wait is not None else self.backoff * (2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
                log.info(
                    "%s %s: %s, retry %d/%d in %.2fs",
                    provider.name,
                    path,
                    failure,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        raise UpstreamError(
            f"{provider.name} failed: {failure} (after {attempts} attempt{'s' if attempts > 1 else ''})",
            provider=provider.name,
        )
