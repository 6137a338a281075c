"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT."""

from __future__ import annotations

import uvicorn

from analyzer.app import create_app
from analyzer.settings import Settings
from servicekit.logs import setup_logging
from servicekit.settings import load_settings


def main() -> None:
    settings = load_settings(Settings, "analyzer")
    setup_logging("analyzer", settings.log_level, settings.log_format, settings.secret_values())
    uvicorn.run(
        create_app(settings),
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        # servicekit.logs renders uvicorn's lines too; its access log is off (docs/operations.md#logs).
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
