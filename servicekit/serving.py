"""Serving an ASGI app with uvicorn and stopping it within SHUTDOWN_TIMEOUT_S.

On SIGTERM or SIGINT uvicorn stops accepting connections, closes idle keep-alive ones, lets the
requests in flight finish for up to `timeout_graceful_shutdown` seconds, cancels what is left and
runs the app's lifespan shutdown. `on_stop` callbacks run in the event loop as the signal arrives,
before that wait, so a service can refuse queued work at once (model_host answers its queue 503).

After a graceful stop uvicorn raises the signal again for the handler that was there before it;
with Python's default for SIGTERM the process would then die by the signal (exit 143 in Docker,
which reads as a crash) after a clean shutdown, so `run` installs handlers that exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Literal

import uvicorn

# Below Docker's default stop grace (10 s in `docker stop`, stop_grace_period in compose, set to
# 30 s there) with room for the lifespan's own closing after the requests in flight.
DEFAULT_SHUTDOWN_TIMEOUT_S = 20


class StoppableServer(uvicorn.Server):
    """A uvicorn server that calls `on_stop` (in its event loop) when the first stop signal arrives."""

    def __init__(self, config: uvicorn.Config, on_stop: Sequence[Callable[[], None]] = ()) -> None:
        super().__init__(config)
        self._on_stop = list(on_stop)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first and self._loop is not None:
            # A signal handler runs between two bytecodes of whatever the loop was doing: hand the
            # callbacks to the loop rather than touch its state from here.
            for callback in self._on_stop:
                self._loop.call_soon_threadsafe(callback)


def stoppable_server(
    app: Callable[..., Any],
    *,
    host: str,
    port: int,
    log_level: str,
    shutdown_timeout_s: int,
    on_stop: Sequence[Callable[[], None]] = (),
    lifespan: Literal["auto", "on", "off"] = "auto",
    forwarded_allow_ips: Sequence[str] = (),
) -> StoppableServer:
    """The server every service runs: uvicorn's own logging left to servicekit.logs (which renders
    uvicorn's lines too), its access log off (docs/operations.md#logs), and requests in flight
    given `shutdown_timeout_s` (SHUTDOWN_TIMEOUT_S) on a stop.

    X-Forwarded-For and X-Forwarded-Proto are believed only from the proxies in
    `forwarded_allow_ips` (FORWARDED_ALLOW_IPS: addresses, networks or "*"); with none, never.
    uvicorn's own default trusts 127.0.0.1 (and its FORWARDED_ALLOW_IPS variable), so that anyone
    on the same host, or behind a proxy there that passes the header on, picks their address."""
    trusted = [ip for ip in forwarded_allow_ips if ip]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=shutdown_timeout_s,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )
    return StoppableServer(config, on_stop)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# uvicorn.run's exit status when the app's lifespan startup failed.
STARTUP_FAILURE = 3


def run(server: uvicorn.Server) -> None:
    """Run `server` until SIGTERM or SIGINT and return once it stopped gracefully (exit status 0);
    SystemExit(3), as `uvicorn.run`, when it never started (the app's lifespan startup failed)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    try:
        server.run()
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
