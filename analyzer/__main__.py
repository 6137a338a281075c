"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT until SIGTERM."""

from __future__ import annotations

import uvicorn

from analyzer.app import create_app
from analyzer.settings import Settings
from servicekit.serving import StoppableServer, run


def main() -> None:
    settings = Settings()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    run(StoppableServer(config))


if __name__ == "__main__":
    main()
