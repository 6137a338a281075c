"""`python -m fetcher` runs the worker; `python -m fetcher asyncapi [FILE]` writes its AsyncAPI JSON.

The AsyncAPI document is built from the default settings, so it describes the contract (subjects,
payloads) and not one deployment's NATS URL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from fetcher.app import asyncapi_document, create_app
from fetcher.settings import Settings
from servicekit.serving import run, stoppable_server
from servicekit.settings import load_settings

USAGE = "usage: python -m fetcher [asyncapi [FILE]]"


async def _run_without_http(settings: Settings) -> None:
    """FETCHER_HEALTH_PORT=0: no HTTP side; run until SIGINT/SIGTERM."""
    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with app.start_lifespan_context():
        await stop.wait()


def main(argv: list[str]) -> int:
    if argv and argv[0] == "asyncapi":
        if len(argv) > 2:
            print(USAGE, file=sys.stderr)
            return 2
        document = json.dumps(
            asyncapi_document(create_app(Settings.model_construct(), configure_logging=False)), indent=2
        )
        if len(argv) == 2:
            Path(argv[1]).write_text(document + "\n")
        else:
            print(document)
        return 0
    if argv:
        print(USAGE, file=sys.stderr)
        return 2
    settings = load_settings(Settings, "fetcher")
    if settings.fetcher_health_port == 0:
        asyncio.run(_run_without_http(settings))
        return 0
    server = stoppable_server(
        create_app(settings),
        host=settings.fetcher_host,
        port=settings.fetcher_health_port,
        log_level=settings.log_level,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        lifespan="on",
    )
    run(server)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
