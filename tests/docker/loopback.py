"""A tiny HTTP server on loopback with canned answers per path, for the image scripts' tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Loopback:
    url: str
    answers: dict[str, Answer]
    requests: list[str]


@contextmanager
def loopback(answers: dict[str, Answer]) -> Iterator[Loopback]:
    """Serve `answers` (path -> Answer; anything else 404) on 127.0.0.1 until the block ends."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            answer = answers.get(self.path, Answer(404, b"not found"))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class names it)
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Loopback(f"http://127.0.0.1:{server.server_address[1]}", answers, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
