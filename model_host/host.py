"""The served model's lifecycle (loading, ready, failed) and the two ways to ask it: whole or streamed."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import msgspec
import structlog

from model_host.chat import prepare_job
from model_host.engines import Engine, load_engine
from model_host.errors import ModelFailedError, ModelHostError, ModelLoadingError
from model_host.generation import Finish, Generation
from model_host.scheduler import GenerationSlot
from model_host.schemas import ChatCompletionRequest
from model_host.settings import Settings
from servicekit.openai_wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Usage,
)

logger = logging.getLogger("model_host.host")

State = Literal["loading", "ok", "failed"]


def new_completion_id() -> str:
    """A fresh completion id, also bound as `completion_id` on this context's log lines (beside the
    request id, which is the caller's)."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    structlog.contextvars.bind_contextvars(completion_id=completion_id)
    return completion_id


class ModelHost:
    """The model behind the routes. `load()` runs once, in the lifespan, off the event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        loader: Callable[[Settings], Engine] = load_engine,
        on_load_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.model_id = settings.served_model_id()
        self.created = int(time.time())
        self.engine = engine
        self.state: State = "ok" if engine is not None else "loading"
        self.error: str | None = None
        self._loader = loader
        self._on_load_failure = on_load_failure
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model_host-model")
        self.slot = GenerationSlot(
            self.executor, queue_size=settings.model_queue_size, retry_after_s=settings.model_retry_after_s
        )

    async def load(self) -> None:
        """Load the model file in the worker thread; on failure, record why and tell `on_load_failure`."""
        if self.engine is not None:
            return
        started = time.perf_counter()
        try:
            engine = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._loader, self.settings
            )
        except Exception as exc:
            self.state, self.error = "failed", str(exc)
            logger.error("model load failed: %s", exc)
            if self._on_load_failure is not None:
                self._on_load_failure(exc)
            return
        self.engine, self.state = engine, "ok"
        logger.info(
            "model %s ready (engine %s, context %d, %.1f s)",
            self.model_id,
            engine.name,
            engine.context_size,
            time.perf_counter() - started,
        )

    def stop_taking_work(self) -> None:
        """SIGTERM: queued and later requests are answered 503 (the running one goes on)."""
        logger.info(
            "shutting down: no new generations; %d waiting request(s) answered 503", self.slot.waiting
        )
        self.slot.shut()

    def close(self) -> None:
        self.executor.shutdown(wait=True)

    def ready_engine(self) -> Engine:
        """The loaded engine; ModelLoadingError (503) until then, ModelFailedError if it never will be."""
        if self.engine is not None:
            return self.engine
        if self.state == "failed":
            raise ModelFailedError(f"the model could not be loaded: {self.error}")
        raise ModelLoadingError(
            "the model is still loading; retry shortly", retry_after_s=self.settings.model_retry_after_s
        )

    def _prepare(self, request: ChatCompletionRequest) -> tuple[Engine, Generation]:
        engine = self.ready_engine()
        job = prepare_job(
            request,
            engine,
            served_model=self.model_id,
            default_max_tokens=self.settings.model_default_max_tokens,
        )
        return engine, job

    async def complete(self, request: ChatCompletionRequest, completion_id: str) -> ChatCompletion:
        """The whole completion; raises the error tree's 400/404/503s before any work is queued."""
        engine, job = self._prepare(request)
        started = time.perf_counter()
        text, finish = await self.slot.complete(engine, job)
        self._log(len(job.prompt_tokens), finish, started)
        return ChatCompletion(
            id=completion_id,
            created=int(time.time()),
            model=self.model_id,
            choices=[
                Choice(
                    message=AssistantMessage(content=text),
                    finish_reason="length" if finish.reason == "length" else "stop",
                )
            ],
            usage=Usage(
                prompt_tokens=len(job.prompt_tokens),
                completion_tokens=finish.completion_tokens,
                total_tokens=len(job.prompt_tokens) + finish.completion_tokens,
            ),
        )

    def stream(self, request: ChatCompletionRequest, completion_id: str) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

        Everything that can be refused is refused here, before the 200 and the first event;
        a failure after that arrives as an `error` event, as OpenAI sends it.
        """
        engine, job = self._prepare(request)
        self.slot.check_room()
        include_usage = request.stream_options is not None and request.stream_options.include_usage
        created = int(time.time())
        encode = msgspec.json.Encoder().encode

        def event(choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
            chunk = ChatCompletionChunk(
                id=completion_id, created=created, model=self.model_id, choices=choices, usage=usage
            )
            return b"data: " + encode(chunk) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            started = time.perf_counter()
            try:
                # The role chunk goes out in the same write as the first piece of text.
                opening = event([ChunkChoice(delta=Delta(role="assistant", content=""))])
                async for item in self.slot.stream(engine, job):
                    if isinstance(item, Finish):
                        if item.reason == "cancelled":
                            return
                        reason: FinishReason = "length" if item.reason == "length" else "stop"
                        yield opening + event([ChunkChoice(delta=Delta(), finish_reason=reason)])
                        opening = b""
                        if include_usage:
                            usage = Usage(
                                prompt_tokens=len(job.prompt_tokens),
                                completion_tokens=item.completion_tokens,
                                total_tokens=len(job.prompt_tokens) + item.completion_tokens,
                            )
                            yield event([], usage)
                        self._log(len(job.prompt_tokens), item, started)
                        break
                    else:
                        yield opening + event([ChunkChoice(delta=Delta(content=item))])
                        opening = b""
            except ModelHostError as exc:
                logger.warning("stream failed: %s", exc.message)
                yield b"data: " + encode(exc.body()) + b"\n\n"
                return
            yield b"data: [DONE]\n\n"

        return events()

    def _log(self, prompt_tokens: int, finish: Finish, started: float) -> None:
        seconds = time.perf_counter() - started
        logger.info(
            "completion prompt_tokens=%d completion_tokens=%d finish=%s seconds=%.2f",
            prompt_tokens,
            finish.completion_tokens,
            finish.reason,
            seconds,
        )
