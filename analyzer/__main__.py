"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT until SIGTERM."""

from __future__ import annotations

import uvicorn

from analyzer.app import create_app, stop_waiting
from analyzer.settings import Settings
from servicekit.logs import setup_logging
from servicekit.serving import StoppableServer, run
from servicekit.settings import load_settings


def main() -> None:
    settings = load_settings(Settings, "analyzer")
    setup_logging("analyzer", settings.log_level, settings.log_format, settings.secret_values())
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        # servicekit.logs renders uvicorn's lines too; its access log is off (docs/operations.md#logs).
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    run(StoppableServer(config, on_stop=[lambda: stop_waiting(app)]))


if __name__ == "__main__":
    main()
