"""`python -m model_host`: read the settings, check the model file, serve until stopped.

MODEL names a catalogue model. One not in MODEL_CACHE_DIR yet is downloaded first with
MODEL_DOWNLOAD=missing (the default; ten progress lines in the log; if that fails, one warning
line says why and the bundled model is served instead), and never with MODEL_DOWNLOAD=never (the
image's setting): the bundled model is served and one line says why, "offline: serving the
bundled model ...", with the reason the image's build recorded (model_host.baked).

Exits non-zero, with a message that names the path and the reason, when MODEL_PATH is missing
or not a model (checked before the server starts), or when loading it fails (the server stops
instead of staying up half alive).
"""

from __future__ import annotations

import logging
import sys

from model_host.app import create_app
from model_host.baked import BakedModel, BakedRecordError, plan_start, read_record
from model_host.catalogue import pull_or_fall_back
from model_host.download import LoggedProgress
from model_host.engines import check_model_file
from model_host.errors import ModelFileError
from model_host.host import ModelHost
from model_host.resources import HOST_KEY
from model_host.settings import Settings
from servicekit.logs import setup_logging
from servicekit.serving import StoppableServer, run, stoppable_server
from servicekit.settings import load_settings

logger = logging.getLogger("model_host")


def main() -> int:
    settings = load_settings(Settings, "model_host")
    setup_logging("model_host", settings.log_level, settings.log_format, settings.secret_values())
    if settings.model_path is None:
        # Before the server starts, so the served model (and its id) is known from the first request.
        baked: BakedModel | None = None
        try:
            baked = read_record(settings.model_cache_dir)
        except BakedRecordError as exc:
            logger.warning("%s; ignored", exc)
        plan = plan_start(settings, baked)
        if plan.notice is not None:
            logger.log(plan.level, "%s", plan.notice)
        if plan.download:
            pull_or_fall_back(
                settings.model,
                settings.model_cache_dir,
                hub_url=settings.model_hub_url,
                deadline_s=settings.model_download_timeout_s,
                progress=LoggedProgress(),
            )
    try:
        check_model_file(settings.resolved_model_path(), settings.model_engine)
    except (ModelFileError, LookupError) as exc:
        logger.error("cannot start: %s", exc)
        return 2

    failures: list[BaseException] = []
    server: StoppableServer | None = None

    def on_load_failure(error: BaseException) -> None:
        failures.append(error)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_load_failure=on_load_failure)
    host: ModelHost = app.state[HOST_KEY]
    server = stoppable_server(
        app,
        host=settings.model_host_host,
        port=settings.model_host_port,
        log_level=settings.log_level,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        on_stop=[host.stop_taking_work],
        lifespan="on",
    )
    try:
        run(server)
    except SystemExit:
        if not failures:
            raise
    if failures:
        logger.error("cannot serve: %s", failures[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
