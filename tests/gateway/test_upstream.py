"""The provider client (aiohttp) against raw servers that send exactly the bytes each case needs.

Connection reuse, chunked and connection-ended bodies, truncation, dropped pooled connections,
garbage, silence, TLS with a private CA, gzip, proxies from the environment, the pool's limit,
and the two bounds every provider call has: LLM_TOTAL_TIMEOUT and LLM_MAX_RESPONSE_BYTES.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import UpstreamError, UpstreamTimeoutError
from gateway.upstream import Provider, Upstream, build_providers
from tests.gateway.conftest import ADD, gateway_client, make_settings, streamed_chat
from tests.gateway.raw_http import Handler, raw_server, read_request

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
COMPLETION = json.dumps(
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": '{"suggestions": ["Trickled."]}'}}]}
).encode()


@asynccontextmanager
async def upstream_for(
    port: int, scheme: str = "http", **values: Any
) -> AsyncIterator[tuple[Upstream, Provider]]:
    """An open Upstream and the `openai` provider pointed at the raw server on `port`."""
    settings = make_settings(
        llm_provider="openai",
        openai_api_key="sk-raw",
        openai_base_url=f"{scheme}://127.0.0.1:{port}/v1",
        **values,
    )
    upstream = Upstream(settings, build_providers(settings))
    await upstream.open()
    try:
        yield upstream, upstream.providers[0]
    finally:
        await upstream.aclose()


def raw_settings(port: int, **values: Any) -> Any:
    return make_settings(
        llm_provider="openai",
        openai_api_key="sk-raw",
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        **values,
    )


def answer_once(body: bytes, head: bytes = b"") -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head + body)
        await writer.drain()

    return handler


async def test_keep_alive_reuses_one_connection_and_sends_a_proper_request() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            seen.append(await read_request(reader))
            writer.write(OK)

    async with raw_server(handler) as (port, connections), upstream_for(port) as (upstream, provider):
        for _ in range(3):
            answer = await upstream.request(provider, "POST", "chat/completions", b'{"a": 1}')
            assert (answer.status_code, answer.content, answer.headers["content-type"]) == (
                200,
                b"{}",
                "application/json",
            )
    assert len(connections) == 1
    head, body = seen[0].split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{port}"
    assert headers["authorization"] == "Bearer sk-raw"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "8"
    assert "gzip" in headers["accept-encoding"]
    assert body == b'{"a": 1}'


async def test_a_chunked_body_is_decoded_and_streams_as_it_arrives() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as (port, _), upstream_for(port) as (upstream, provider):
        stream = await upstream.open_stream(provider, "chat/completions", b"{}")
        pieces = aiter(stream)
        assert await anext(pieces) == b"hello"  # before the server sends the rest
        release.set()
        assert [piece async for piece in pieces] == [b" world"]
        await stream.aclose()


async def test_a_gzipped_body_is_decompressed() -> None:
    packed = gzip.compress(b'{"data": []}')
    head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)
    async with raw_server(answer_once(packed, head)) as (port, _), upstream_for(port) as (upstream, provider):
        answer = await upstream.request(provider, "GET", "models")
    assert answer.content == b'{"data": []}'


async def test_a_body_ended_by_closing_the_connection_is_read_whole() -> None:
    handler = answer_once(b"all of it", b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
    async with raw_server(handler) as (port, _), upstream_for(port) as (upstream, provider):
        answer = await upstream.request(provider, "GET", "models")
    assert answer.content == b"all of it"


async def test_a_truncated_body_is_an_error_naming_the_provider() -> None:
    handler = answer_once(b"short", b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
    async with raw_server(handler) as (port, _), upstream_for(port) as (upstream, provider):
        with pytest.raises(
            UpstreamError, match="openai broke off its answer: Response payload is not completed"
        ):
            await upstream.request(provider, "GET", "models")


async def test_a_pooled_connection_the_server_dropped_is_replaced() -> None:
    # Answer, then close without saying so in the headers: the client pools a dead connection.
    async with raw_server(answer_once(OK)) as (port, connections), upstream_for(port) as (upstream, provider):
        first = await upstream.request(provider, "POST", "chat/completions", b"{}")
        await asyncio.sleep(0.05)
        second = await upstream.request(provider, "POST", "chat/completions", b"{}")
    assert first.status_code == second.status_code == 200
    assert len(connections) == 2


async def test_garbage_is_a_502_and_silence_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    garbage = answer_once(b"SMTP READY\r\n\r\n")
    async with (
        raw_server(garbage) as (port, _),
        upstream_for(port, llm_max_retries=0) as (upstream, provider),
    ):
        with pytest.raises(
            UpstreamError, match=r"^openai answered something that is not HTTP: Bad status line"
        ):
            await upstream.request(provider, "GET", "models")
    async with (
        raw_server(silent) as (port, _),
        upstream_for(port, llm_read_timeout=0.2) as (upstream, provider),
    ):
        with pytest.raises(UpstreamTimeoutError, match=r"openai did not answer within 0\.2s"):
            await upstream.request(provider, "GET", "models")


async def test_retry_after_is_waited_for_before_the_retry() -> None:
    arrivals: list[float] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            writer.write(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n")
        else:
            writer.write(OK)
        await writer.drain()

    async with (
        raw_server(handler) as (port, _),
        upstream_for(port, llm_retry_backoff=0.01) as (upstream, provider),
    ):
        answer = await upstream.request(provider, "GET", "models")
    assert answer.status_code == 200
    assert len(arrivals) == 2
    # The provider's wish, not the 10 ms backoff: a correctness bound, not a speed measurement.
    assert arrivals[1] - arrivals[0] >= 0.95


async def test_the_pool_never_opens_more_than_llm_max_connections() -> None:
    busy, most = 0, 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy, most
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            busy += 1
            most = max(most, busy)
            await asyncio.sleep(0.05)
            busy -= 1
            writer.write(OK)
            await writer.drain()

    async with (
        raw_server(handler) as (port, connections),
        upstream_for(port, llm_max_connections=2) as (
            upstream,
            provider,
        ),
    ):
        answers = await asyncio.gather(*(upstream.request(provider, "GET", "models") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert most == 2
    assert len(connections) == 2


async def test_a_proxy_named_in_the_environment_is_used_and_no_proxy_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(OK)
        await writer.drain()

    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    async with raw_server(proxy) as (port, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        settings = make_settings(
            llm_provider="openai", openai_api_key="sk-raw", openai_base_url="http://provider.invalid/v1"
        )
        upstream = Upstream(settings, build_providers(settings))
        await upstream.open()
        try:
            answer = await upstream.request(upstream.providers[0], "GET", "models")
        finally:
            await upstream.aclose()
        assert answer.content == b"{}"
        assert seen[0].startswith(b"GET http://provider.invalid/v1/models HTTP/1.1\r\n")
        monkeypatch.setenv("NO_PROXY", "provider.invalid")
        upstream = Upstream(settings, build_providers(settings))
        await upstream.open()
        try:
            with pytest.raises(UpstreamError, match="unreachable"):
                await upstream.request(upstream.providers[0], "GET", "models", retry=False)
        finally:
            await upstream.aclose()
    assert len(seen) == 1


# -- the bounds of a provider call, through the gateway as callers see them ----------------------


def trickling(head: bytes, body: bytes, every: float) -> Handler:
    """A server that sends the head, then the body one byte every `every` seconds."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        try:
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)
        except ConnectionError:
            pass  # the gateway gave up: what the deadline is for

    return handler


async def test_a_trickling_provider_is_cut_off_by_the_total_timeout() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(
        COMPLETION
    )
    # Every byte comes well within the read timeout: only the total deadline can end this.
    handler = trickling(head, COMPLETION, every=0.05)
    async with raw_server(handler) as (port, _):
        settings = raw_settings(port, llm_read_timeout=5, llm_total_timeout=0.5, openai_model="m")
        async with gateway_client(settings) as client:
            review = await client.post("/analyze", json={"function_code": ADD})
            passthrough = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
    for response in (review, passthrough):
        assert response.status_code == 504
        assert response.json()["error"] == {
            "message": "openai did not finish its answer within 0.5s (LLM_TOTAL_TIMEOUT)",
            "type": "upstream_timeout",
            "provider": "openai",
        }


async def test_a_trickling_stream_ends_with_an_error_event_at_the_total_timeout() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    handler = trickling(head, b'data: {"choices": []}\n\n' * 10, every=0.05)
    async with raw_server(handler) as (port, _):
        settings = raw_settings(port, llm_read_timeout=5, llm_total_timeout=0.5)
        status, body = await streamed_chat(settings)
    assert status == 200
    # The error is an event of its own, even when the deadline fell in the middle of one.
    assert json.loads(body.rsplit(b"\n\ndata: ", 1)[1])["error"] == {
        "message": "openai did not finish its answer within 0.5s (LLM_TOTAL_TIMEOUT)",
        "type": "upstream_timeout",
        "provider": "openai",
    }


def huge(announce: bool, size: int) -> Handler:
    """A server answering `size` bytes of JSON-ish filler, with or without a Content-Length."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        length = b"content-length: %d\r\n" % size if announce else b"connection: close\r\n"
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + length + b"\r\n")
        block = b" " * 65536
        try:
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()
        except ConnectionError:
            pass  # the gateway hung up: what the cap is for

    return handler


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "unannounced"])
async def test_an_answer_over_the_size_cap_is_a_502(announce: bool) -> None:
    async with raw_server(huge(announce, 64 * 1024 * 1024)) as (port, _):
        settings = raw_settings(port, llm_max_response_bytes=1024 * 1024, openai_model="m")
        async with gateway_client(settings) as client:
            review = await client.post("/analyze", json={"function_code": ADD})
            passthrough = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
    what = "announces 67108864 bytes" if announce else "sent more than 1048576 bytes"
    for response in (review, passthrough):
        assert response.status_code == 502
        assert response.json()["error"] == {
            "message": f"openai's answer {what}: over the limit LLM_MAX_RESPONSE_BYTES=1048576",
            "type": "upstream_error",
            "provider": "openai",
        }


async def test_a_stream_over_the_size_cap_ends_with_an_error_event() -> None:
    async with raw_server(huge(False, 64 * 1024 * 1024)) as (port, _):
        settings = raw_settings(port, llm_max_response_bytes=1024 * 1024)
        status, body = await streamed_chat(settings)
    assert status == 200
    assert len(body) < 2 * 1024 * 1024
    error = json.loads(body.rsplit(b"data: ", 1)[1])
    assert error["error"]["message"] == (
        "openai's answer sent more than 1048576 bytes: over the limit LLM_MAX_RESPONSE_BYTES=1048576"
    )


def make_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A CA, a certificate for 127.0.0.1 signed by it; the server's context and the CA's PEM file."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ca_path


async def test_https_verifies_the_certificate_against_llm_ca_bundle(tmp_path: Path) -> None:
    server_context, ca_path = make_tls(tmp_path)
    handler = answer_once(OK)
    async with raw_server(handler, server_context) as (port, _):
        async with upstream_for(port, "https", llm_ca_bundle=ca_path) as (upstream, provider):
            answer = await upstream.request(provider, "GET", "models")
        assert answer.content == b"{}"
        async with upstream_for(port, "https") as (upstream, provider):
            with pytest.raises(UpstreamError, match=r"openai: TLS failed: .*CERTIFICATE_VERIFY_FAILED"):
                await upstream.request(provider, "GET", "models")
