"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT until SIGTERM."""

from __future__ import annotations

import uvicorn

from analyzer.app import create_app, stop_waiting
from analyzer.settings import Settings
from servicekit.serving import StoppableServer, run


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    run(StoppableServer(config, on_stop=[lambda: stop_waiting(app)]))


if __name__ == "__main__":
    main()
