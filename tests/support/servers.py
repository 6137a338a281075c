"""Real HTTP servers on loopback for the tests: an ASGI app in this event loop, or a service process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.support.ports import bound_socket, free_port


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in this loop; yield its base URL."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    # Idle connections are kept longer than any client here keeps them (aiohttp: 15 s): with
    # uvicorn's 5 s a client that reused one just as the server closed it read "Server
    # disconnected" (seen in the node-loss test, whose gateways call a fake provider served here).
    config = uvicorn.Config(app, log_level="warning", lifespan="on", loop="none", timeout_keep_alive=60)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what made startup fail
                raise RuntimeError("server exited during startup")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def refuses_new_connections(url: str, tries: int = 100) -> bool:
    """Whether a new connection to `url` is refused within `tries` attempts 0.05 s apart: a server
    that got a stop signal closes its socket while requests in flight still run."""
    for _ in range(tries):
        try:
            async with httpx.AsyncClient(base_url=url, timeout=2) as fresh:
                await fresh.get("/health")
        except httpx.TransportError:
            return True
        await asyncio.sleep(0.05)
    return False


class ServiceProcess:
    """A service started as `python -m <package>`, configured by environment only."""

    def __init__(self, package: str, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.package = package
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", package],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, path: str = "/health", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.package} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.package} not healthy within {timeout}s:\n{self.log()[-4000:]}")

    def terminate(self, within: float) -> int:
        """SIGTERM; its exit status once it has exited by itself. AssertionError (and SIGKILL) if it
        is still running after `within` seconds: the bound of a graceful stop, never a speed test."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            stop_process(self.process, timeout=0)
            raise AssertionError(
                f"{self.package} still running {within} s after SIGTERM:\n{self.log()[-4000:]}"
            ) from None

    def stop(self) -> int:
        stop_process(self.process, timeout=15)
        self._log.close()
        return self.process.returncode


@contextmanager
def service_process(
    package: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    port_variable: str | None = None,
    health_path: str | None = "/health",
    timeout: float = 60.0,
) -> Iterator[ServiceProcess]:
    """Run `python -m package` with `env` (+ a free port in `port_variable`) until the block ends."""
    port = free_port()
    full_env = dict(env)
    if port_variable is not None:
        full_env[port_variable] = str(port)
    service = ServiceProcess(package, full_env, port, log_dir / f"{package}-{port}.log")
    try:
        if health_path is not None:
            service.wait_healthy(health_path, timeout)
        yield service
    finally:
        service.stop()
