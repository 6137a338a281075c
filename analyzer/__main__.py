"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT until SIGTERM."""

from __future__ import annotations

from analyzer.app import create_app
from analyzer.resources import stop_waiting
from analyzer.settings import Settings
from servicekit.logs import setup_logging
from servicekit.serving import run, stoppable_server
from servicekit.settings import load_settings


def main() -> None:
    settings = load_settings(Settings, "analyzer")
    setup_logging("analyzer", settings.log_level, settings.log_format, settings.secret_values())
    app = create_app(settings)
    server = stoppable_server(
        app,
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        log_level=settings.log_level,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        forwarded_allow_ips=settings.trusted_proxies,
        on_stop=[lambda: stop_waiting(app)],
    )
    run(server)


if __name__ == "__main__":
    main()
