"""The gateway's HTTP/1.1 client against raw servers that send exactly the bytes each case needs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.http1 import (
    ConnectError,
    Http1Client,
    ReadTimeoutError,
    RemoteProtocolError,
)
from tests.gateway.raw_http import raw_server, read_request

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def client(**values: float) -> Http1Client:
    return Http1Client(connect_timeout=values.get("connect", 2.0), read_timeout=values.get("read", 5.0))


async def test_keep_alive_reuses_one_connection_and_sends_a_proper_request() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            seen.append(await read_request(reader))
            writer.write(OK)

    async with raw_server(handler) as (port, connections):
        http = client()
        for _ in range(3):
            response = await http.send(
                "POST",
                f"http://127.0.0.1:{port}/v1/chat/completions?x=1",
                headers={"authorization": "Bearer k"},
                body=b"{}",
            )
            assert (response.status_code, response.content, response.headers["content-type"]) == (
                200,
                b"{}",
                "application/json",
            )
        await http.aclose()
    assert len(connections) == 1
    assert seen[0] == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nuser-agent: codereview-gateway\r\n"
        b"authorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}" % port
    )


async def test_a_chunked_body_is_decoded_and_streams_as_it_arrives() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as (port, _):
        http = client()
        response = await http.send("POST", f"http://127.0.0.1:{port}/", body=b"", stream=True)
        pieces = response.aiter_raw()
        assert await anext(pieces) == b"hello"  # before the server sends the rest
        release.set()
        assert [piece async for piece in pieces] == [b" world"]
        await response.aclose()
        await http.aclose()


async def test_a_body_ended_by_closing_the_connection_is_read_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(handler) as (port, _):
        http = client()
        response = await http.send("GET", f"http://127.0.0.1:{port}/")
        assert response.content == b"all of it"
        await http.aclose()


async def test_a_truncated_body_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()

    async with raw_server(handler) as (port, _):
        http = client()
        with pytest.raises(RemoteProtocolError, match="closed the connection in the middle of the body"):
            await http.send("GET", f"http://127.0.0.1:{port}/")
        await http.aclose()


async def test_a_pooled_connection_the_server_dropped_is_replaced_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        # and close, without saying so in the headers: the client pools a dead connection

    async with raw_server(handler) as (port, connections):
        http = client()
        first = await http.send("GET", f"http://127.0.0.1:{port}/")
        await asyncio.sleep(0.05)
        second = await http.send("GET", f"http://127.0.0.1:{port}/")
        assert first.status_code == second.status_code == 200
        assert len(connections) == 2
        await http.aclose()


async def test_garbage_is_a_protocol_error_and_silence_a_read_timeout() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP READY\r\n\r\n")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with raw_server(garbage) as (port, _):
        with pytest.raises(RemoteProtocolError, match="invalid HTTP from the server"):
            await client().send("GET", f"http://127.0.0.1:{port}/")
    async with raw_server(silent) as (port, _):
        with pytest.raises(ReadTimeoutError, match=r"no data for 0\.2s"):
            await client(read=0.2).send("GET", f"http://127.0.0.1:{port}/")


async def test_refused_and_non_http_urls_are_connect_errors() -> None:
    with pytest.raises(ConnectError, match="Connect call failed"):
        await client().send("GET", "http://127.0.0.1:9/")
    with pytest.raises(ConnectError, match="not an http"):
        await client().send("GET", "ftp://example.com/")


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


async def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    server_context, ca_path = make_tls(tmp_path)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()

    async with raw_server(handler, server_context) as (port, _):
        trusting = Http1Client(
            connect_timeout=2, read_timeout=5, ssl_context=ssl.create_default_context(cafile=str(ca_path))
        )
        response = await trusting.send("GET", f"https://127.0.0.1:{port}/v1/models")
        assert response.content == b"{}"
        await trusting.aclose()
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client().send("GET", f"https://127.0.0.1:{port}/v1/models")
