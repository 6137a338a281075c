"""`python -m gateway`: read the settings, refuse to start on bad ones, serve with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

from gateway.app import create_app
from gateway.settings import Settings
from servicekit.logs import setup_logging
from servicekit.serving import run, stoppable_server
from servicekit.settings import load_settings


def main() -> int:
    settings = load_settings(Settings, "gateway")
    # Every key it holds is masked as *** in every line: providers' keys and CODEREVIEW_API_KEYS.
    setup_logging("gateway", settings.log_level, settings.log_format, settings.secret_values())
    server = stoppable_server(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        forwarded_allow_ips=settings.trusted_proxies,
    )
    run(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
