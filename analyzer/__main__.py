"""`python -m analyzer`: serve the analyzer with uvicorn on ANALYZER_HOST:ANALYZER_PORT."""

from __future__ import annotations

import uvicorn

from analyzer.app import create_app
from analyzer.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.analyzer_host,
        port=settings.analyzer_port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
