"""model_host's routes: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (whole or
streamed). Each handler gets the ModelHost by name (`host`, model_host.resources); `ROUTES` is what
the app serves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler, TypeEncodersMap

from model_host.errors import ModelHostError
from model_host.host import ModelHost, new_completion_id
from model_host.schemas import ChatCompletionRequest, Health
from servicekit.openai_wire import ChatCompletion, ModelCard, ModelList


class ClientDisconnectedError(ModelHostError):
    """The client went away before its completion was ready; nobody reads this answer."""

    status_code = 499
    code = "client_disconnected"


class EventStream(Stream):
    """Server-sent events that say so.

    Kept on purpose (checked on the pinned Litestar 2.25.0): for any Response a handler returns,
    Litestar passes the handler's one media type to `to_asgi_response` (create_response_handler in
    litestar/handlers/http_handlers/_utils.py), and Stream lets it win over its own, though its
    docstring promises the opposite. No return annotation changes that: this handler's media type
    is JSON, for the non-streamed answers, and `media_type="text/event-stream"` would mislabel those.
    Litestar's own ServerSentEvent inherits the same `to_asgi_response`. Checked again on 2.25.0
    with a plain Stream: tests/model_host/test_app.py::test_a_stream_is_openai_chunks_then_done
    then gets `application/json`.
    """

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        return super().to_asgi_response(
            app,
            request,
            background=background,
            cookies=cookies,
            encoded_headers=encoded_headers,
            headers=headers,
            is_head_response=is_head_response,
            media_type=self.media_type,
            status_code=status_code,
            type_encoders=type_encoders,
        )


async def _until_disconnect(request: Request[Any, Any, State]) -> None:
    # The body is read already, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


@get("/health", sync_to_thread=False)
def health(host: NamedDependency[ModelHost]) -> Response[Health]:
    """200 once the model is loaded; 503 while it loads (or if it failed to)."""
    body = Health(status=host.state, model=host.model_id, engine=host.settings.model_engine, error=host.error)
    return Response(body, status_code=HTTP_200_OK if host.state == "ok" else HTTP_503_SERVICE_UNAVAILABLE)


@get("/v1/models", sync_to_thread=False)
def list_models(host: NamedDependency[ModelHost]) -> ModelList:
    """The one served model: its id is what requests name as `model`."""
    return ModelList(data=[ModelCard(id=host.model_id, created=host.created, owned_by="model_host")])


@post("/v1/chat/completions", status_code=HTTP_200_OK)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest], request: Request[Any, Any, State], host: NamedDependency[ModelHost]
) -> ChatCompletion | EventStream:
    """OpenAI chat completions, whole or streamed (server-sent events ending with `data: [DONE]`)."""
    completion_id = new_completion_id()
    if data.stream:
        return EventStream(
            host.stream(data, completion_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    # Litestar does not watch for disconnects outside streams: do it, so a client that gives up
    # also gives up its place in the queue, or stops its generation.
    work = asyncio.ensure_future(host.complete(data, completion_id))
    gone = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
    if work.cancelled():
        raise ClientDisconnectedError("the client disconnected before the completion was ready")
    return work.result()


ROUTES: list[ControllerRouterHandler] = [health, list_models, chat_completions]
