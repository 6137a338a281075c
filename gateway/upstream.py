"""The providers the gateway can call, and the one HTTP client (aiohttp) that calls them.

One retry policy for provider calls (stamina: 429, 5xx, refused or dropped connections, with
exponential backoff and jitter; a `Retry-After` replaces the backoff), separate connect and read
timeouts, a deadline for the whole call (`LLM_TOTAL_TIMEOUT`) and a cap on the answer's size
(`LLM_MAX_RESPONSE_BYTES`), whichever way its bytes arrive. A provider's API key is only ever put
on requests to that provider's own base URL, and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import msgspec
import stamina
from multidict import CIMultiDictProxy

from gateway.errors import UNDECODABLE, ConfigError, UpstreamError, UpstreamTimeoutError
from gateway.settings import Settings
from gateway.tunnel import SshTunnel
from servicekit.redact import escaped
from servicekit.request_id import current_request_id
from servicekit.retry_after import retry_after_seconds

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
    # The local host reached through SSH: requests go to the tunnel's loopback end, known once it is open.
    tunnel: SshTunnel | None = None

    def url(self, path: str) -> str:
        base = self.tunnel.base_url if self.tunnel is not None else self.base_url
        return f"{base}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def build_providers(settings: Settings, tunnel: SshTunnel | None = None) -> list[Provider]:
    """The providers of the settings' chain, in order; `local` goes through `tunnel` when given."""

    def secret(value: object) -> str | None:
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else None
        return raw.strip() if isinstance(raw, str) and raw.strip() else None

    providers: list[Provider] = []
    for name in settings.provider_chain:
        if name == "openai":
            provider = Provider(
                name=name,
                base_url=settings.openai_base_url.rstrip("/"),
                api_key=secret(settings.openai_api_key),
                model=settings.openai_model,
                structured="json_schema",
            )
        elif name == "deepseek":
            provider = Provider(
                name=name,
                base_url=settings.deepseek_base_url.rstrip("/"),
                api_key=secret(settings.deepseek_api_key),
                model=settings.deepseek_model,
                structured="json_object",
            )
        elif name == "local":
            provider = Provider(
                name=name,
                base_url=settings.local_llm_base_url.rstrip("/"),
                api_key=secret(settings.local_llm_api_key),
                model=settings.local_llm_model,
                structured="json_schema_bounded",
                tunnel=tunnel,
            )
        else:  # pragma: no cover - Settings validates the chain
            raise ConfigError(f"unknown provider {name!r}")
        providers.append(provider)
    return providers


class _ModelList(msgspec.Struct):
    data: list[_ModelEntry]


class _ModelEntry(msgspec.Struct):
    id: str


class _RetryableError(Exception):
    """One failed attempt worth another: `wait` is the provider's `Retry-After`, if it sent one."""

    def __init__(self, failure: str, wait: float | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.wait = wait


def _backoff(exc: Exception) -> bool | float:
    """stamina's hook: retry only `_RetryableError`, after the provider's `Retry-After` when it gave one."""
    if not isinstance(exc, _RetryableError):
        return False
    return True if exc.wait is None else exc.wait


@dataclass(frozen=True)
class Answer:
    """A provider's whole answer: status, headers and body (at most LLM_MAX_RESPONSE_BYTES)."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Stream:
    """A provider's answer whose headers are in; the body is read by iterating, then `aclose()`.

    The body is bounded like a whole answer: past LLM_MAX_RESPONSE_BYTES, or past the call's
    deadline, iterating raises UpstreamError / UpstreamTimeoutError.
    """

    def __init__(
        self, upstream: Upstream, provider: Provider, response: aiohttp.ClientResponse, deadline: float
    ) -> None:
        self._upstream = upstream
        self._provider = provider
        self._response = response
        self._deadline = deadline
        self.status_code = response.status
        self.headers = response.headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._upstream._body(self._provider, self._response, self._deadline):
            yield chunk

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        self._response.release()


class Upstream:
    """The gateway's HTTP client for its providers: one aiohttp session, opened in the lifespan.

    `providers` is the chain, in order; the first is the one passthrough calls go to.
    """

    def __init__(self, settings: Settings, providers: list[Provider]) -> None:
        self.providers = providers
        self.max_retries = settings.llm_max_retries
        self.backoff = settings.llm_retry_backoff
        self.retry_after_max = settings.llm_retry_after_max
        self.read_timeout = settings.llm_read_timeout
        self.connect_timeout = settings.llm_connect_timeout
        self.total_timeout = settings.llm_total_timeout
        self.max_bytes = settings.llm_max_response_bytes
        self.max_connections = settings.llm_max_connections
        self.ssl_context: ssl.SSLContext | None = None
        if settings.llm_ca_bundle is not None:
            self.ssl_context = ssl.create_default_context(cafile=str(settings.llm_ca_bundle))
        self._session: aiohttp.ClientSession | None = None
        self._models: dict[str, str] = {}
        self._proxies: dict[str, str | None] = {}

    async def open(self) -> None:
        """Open the connection pool (in the running loop, as aiohttp needs)."""
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, ssl=self.ssl_context if self.ssl_context is not None else True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Not trust_env: with it aiohttp looks up the proxy and ~/.netrc in a thread on every
            # request, 3-4 ms each on the bench's machine (the whole budget is 1 ms); `_proxy_for`
            # reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY once per provider origin instead.
            trust_env=False,
            # Cookies a provider sets must never ride along on another caller's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
            ),
            headers={"user-agent": "codereview-gateway"},
            # The body goes out as the caller sent it; aiohttp must not add a charset or re-quote.
            skip_auto_headers=("content-type",),
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, provider: Provider, method: str, path: str, body: bytes | None = None, *, retry: bool = True
    ) -> Answer:
        """Send (with retries unless `retry` is False) and read the whole answer.

        Returns the provider's answer when it is a success or a client error the caller should
        see (400, 404, 422...). Raises UpstreamTimeoutError when the provider does not answer in
        time (a read timeout, or LLM_TOTAL_TIMEOUT for the call and its retries), UpstreamError
        when it keeps failing (429/5xx/unreachable), rejects the gateway's key, or answers more
        than LLM_MAX_RESPONSE_BYTES.
        """
        deadline = asyncio.get_running_loop().time() + self.total_timeout
        async with self._within(provider, deadline):
            response = await self._send(provider, method, path, body, retry=retry)
            try:
                content = await self._read_all(provider, response)
            finally:
                response.release()
        return Answer(response.status, response.headers, content)

    async def open_stream(self, provider: Provider, path: str, body: bytes) -> Stream:
        """Like `request` for POST, but the body is left unread; the caller must `aclose()` it.

        Retries happen before the first byte, so a stream never restarts halfway. The deadline
        (LLM_TOTAL_TIMEOUT) runs from here to the stream's last byte.
        """
        deadline = asyncio.get_running_loop().time() + self.total_timeout
        async with self._within(provider, deadline):
            response = await self._send(provider, "POST", path, body, retry=True)
        return Stream(self, provider, response, deadline)

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
        except UNDECODABLE as exc:
            raise UpstreamError(
                f"{provider.name}: /models answered HTTP {response.status_code} without a model list",
                provider=provider.name,
            ) from exc
        if response.status_code != 200 or not models.data:
            raise UpstreamError(f"{provider.name}: no model listed at /models", provider=provider.name)
        self._models[provider.base_url] = models.data[0].id
        return models.data[0].id

    @asynccontextmanager
    async def _within(self, provider: Provider, deadline: float) -> AsyncIterator[None]:
        """The block runs until `deadline` (LLM_TOTAL_TIMEOUT); errors name the provider."""
        try:
            async with asyncio.timeout_at(deadline):
                yield
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise self._read_timeout(provider) from exc
            raise self._total_timeout(provider) from exc

    async def _read_all(self, provider: Provider, response: aiohttp.ClientResponse) -> bytes:
        """The whole body (decompressed), within the size cap; the caller holds the deadline."""
        self._check_announced(provider, response)
        if response.content_length is not None and "content-encoding" not in response.headers:
            # Its size is known and under the cap (a compressed one may inflate past it: read below).
            try:
                return await response.read()
            except aiohttp.ClientError as exc:
                raise self._broken(provider, exc) from exc
        chunks: list[bytes] = []
        received = 0
        while True:
            try:
                chunk = await response.content.readany()
            except aiohttp.ClientError as exc:
                raise self._broken(provider, exc) from exc
            if not chunk:
                return b"".join(chunks)
            received += len(chunk)
            if received > self.max_bytes:
                raise self._too_large(provider, f"sent more than {self.max_bytes} bytes")
            chunks.append(chunk)

    async def _body(
        self, provider: Provider, response: aiohttp.ClientResponse, deadline: float
    ) -> AsyncIterator[bytes]:
        """The body as it arrives (decompressed), within the deadline and the size cap."""
        self._check_announced(provider, response)
        received = 0
        while True:
            try:
                # Per read, never across a yield: the deadline must not cancel the consumer's work.
                async with self._within(provider, deadline):
                    chunk = await response.content.readany()
            except aiohttp.ClientError as exc:
                raise self._broken(provider, exc) from exc
            if not chunk:
                return
            received += len(chunk)
            if received > self.max_bytes:
                raise self._too_large(provider, f"sent more than {self.max_bytes} bytes")
            yield chunk

    async def _send(
        self, provider: Provider, method: str, path: str, body: bytes | None, *, retry: bool
    ) -> aiohttp.ClientResponse:
        """The provider's response once its headers are in (the body unread), after retries."""
        if self._session is None:
            raise RuntimeError("Upstream.open() was not awaited")
        session = self._session
        headers = provider.headers()
        rid = current_request_id()
        if rid is not None:
            headers["x-request-id"] = rid  # the provider's logs can be matched with ours
        if body is not None:
            headers["content-type"] = "application/json"
        url = provider.url(path)
        attempts = self.max_retries + 1 if retry else 1
        try:
            # The common case, an answer at the first try, costs no retry machinery (~0.1 ms).
            return await self._attempt(session, provider, method, url, headers, body)
        except _RetryableError as exc:
            failed: _RetryableError | None = exc
        try:
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=attempts,
                timeout=None,  # LLM_TOTAL_TIMEOUT bounds the whole call instead
                wait_initial=self.backoff,
                wait_max=max(self.backoff, self.retry_after_max),
                wait_jitter=self.backoff,
            ):
                with attempt:
                    try:
                        if failed is not None:
                            # The try above is stamina's first attempt: its failure sets the wait.
                            first, failed = failed, None
                            raise first
                        return await self._attempt(session, provider, method, url, headers, body)
                    except _RetryableError as exc:
                        if attempt.num < attempts:
                            wait = "" if exc.wait is None else f", Retry-After {exc.wait:g}s"
                            log.info(
                                "%s %s: %s, retry %d/%d%s",
                                provider.name,
                                path,
                                exc.failure,
                                attempt.num,
                                attempts - 1,
                                wait,
                            )
                        raise
        except _RetryableError as exc:
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
            raise UpstreamError(
                f"{provider.name} failed: {exc.failure} (after {tries})", provider=provider.name
            ) from exc
        raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        provider: Provider,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
    ) -> aiohttp.ClientResponse:
        try:
            response = await session.request(
                method, url, headers=headers, data=body, allow_redirects=False, proxy=self._proxy_for(url)
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise _RetryableError("connection timed out") from exc
        except aiohttp.ServerTimeoutError as exc:
            raise self._read_timeout(provider) from exc
        except aiohttp.ClientSSLError as exc:
            # A certificate that does not verify will not verify on the next try either.
            raise UpstreamError(
                f"{provider.name}: TLS failed: {_describe(exc)}", provider=provider.name
            ) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise _RetryableError(f"unreachable ({_describe(exc)})") from exc
        except aiohttp.ClientResponseError as exc:
            # What aiohttp's parser refused, e.g. a status line that is not HTTP: its words, not
            # the provider's bytes it quotes.
            reason = _own_words(exc.message) or type(exc).__name__
            raise UpstreamError(
                f"{provider.name} answered something that is not HTTP: {reason}", provider=provider.name
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{provider.name} failed: {_describe(exc)}", provider=provider.name) from exc
        status = response.status
        if status in (401, 403):
            response.release()
            raise UpstreamError(
                f"{provider.name} rejected the gateway's API key (HTTP {status})", provider=provider.name
            )
        if status not in RETRYABLE_STATUS:
            return response
        response.release()
        wait = retry_after_seconds(response.headers.get("retry-after"))
        if wait is not None and wait > self.retry_after_max:
            raise UpstreamError(
                f"{provider.name} answered HTTP {status} and asks to retry after {wait:.0f}s",
                provider=provider.name,
            )
        raise _RetryableError(f"HTTP {status}", wait)

    def _proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), looked up once."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._proxies:
            proxy = urllib.request.getproxies().get(parts.scheme)
            if proxy and parts.hostname and urllib.request.proxy_bypass(parts.netloc):
                proxy = None
            self._proxies[origin] = proxy or None
        return self._proxies[origin]

    def _read_timeout(self, provider: Provider) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"{provider.name} did not answer within {self.read_timeout:g}s", provider=provider.name
        )

    def _total_timeout(self, provider: Provider) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"{provider.name} did not finish its answer within {self.total_timeout:g}s (LLM_TOTAL_TIMEOUT)",
            provider=provider.name,
        )

    def _check_announced(self, provider: Provider, response: aiohttp.ClientResponse) -> None:
        announced = response.content_length
        if announced is not None and announced > self.max_bytes:
            raise self._too_large(provider, f"announces {announced} bytes")

    def _broken(self, provider: Provider, exc: aiohttp.ClientError) -> UpstreamError:
        # aiohttp's words for what went wrong, without the provider's bytes its parser may quote.
        reason = _own_words(_describe(exc)) or type(exc).__name__
        return UpstreamError(f"{provider.name} broke off its answer: {reason}", provider=provider.name)

    def _too_large(self, provider: Provider, what: str) -> UpstreamError:
        return UpstreamError(
            f"{provider.name}'s answer {what}: over the limit LLM_MAX_RESPONSE_BYTES={self.max_bytes}",
            provider=provider.name,
        )


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# Where a library's message starts quoting what the provider sent: a quote, a bytes repr, a repr.
_QUOTED = re.compile(r"""\bb['"]|['"<]""")
# aiohttp's HttpProcessingError writes itself as "400, message:" and the message on the next lines.
_CODE_PREFIX = re.compile(r"^\d{3}, message:")


def _own_words(message: str, limit: int = 120) -> str:
    """A library's message up to where it quotes the provider's bytes, on one line, at most `limit`
    characters (`Bad status line 'SMTP READY'` -> `Bad status line`)."""
    words = " ".join(_QUOTED.split(message, maxsplit=1)[0].split())
    return escaped(_CODE_PREFIX.sub("", words).strip(" :,;=-")[:limit])
