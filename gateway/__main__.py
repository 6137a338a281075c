"""`python -m gateway`: read the settings, refuse to start on bad ones, serve with uvicorn."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from gateway.app import create_app
from gateway.logs import setup_logging
from gateway.settings import Settings
from servicekit.serving import StoppableServer, run


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        # Only locations and messages: pydantic's own text would echo the input, keys included.
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]).upper()
            lines.append(f"  {where + ': ' if where else ''}{error['msg']}")
        print("gateway: invalid configuration, not starting:\n" + "\n".join(lines), file=sys.stderr)
        return 2
    secrets = [
        secret.get_secret_value()
        for secret in (settings.openai_api_key, settings.deepseek_api_key, settings.local_llm_api_key)
        if secret is not None
    ] + settings.api_keys
    setup_logging(settings.log_level, secrets)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    run(StoppableServer(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
