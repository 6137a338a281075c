"""`python -m gateway`: read the settings, refuse to start on bad ones, serve with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings
from servicekit.logs import setup_logging
from servicekit.serving import StoppableServer, run
from servicekit.settings import load_settings


def main() -> int:
    settings = load_settings(Settings, "gateway")
    # Every key it holds is masked as *** in every line: providers' keys and CODEREVIEW_API_KEYS.
    setup_logging("gateway", settings.log_level, settings.log_format, settings.secret_values())
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        # servicekit.logs renders uvicorn's lines too; its access log is off (docs/operations.md#logs).
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    run(StoppableServer(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
