"""The two engines that run a model file: llama-cpp-python (GGUF) and ctransformers (legacy GGML).

An engine is used from one worker thread at a time (see `model_host.scheduler`); nothing here is
async. Each one turns chat messages into a prompt with the model's chat template, tokenizes,
and yields sampled tokens until the model ends its turn; `model_host.generation` does the rest
(max_tokens, stop strings, UTF-8, cancellation), the same way for both.
"""

from __future__ import annotations

import ctypes
import logging
import random
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec

from model_host.errors import ModelFileError
from model_host.settings import Settings

logger = logging.getLogger("model_host.engines")

GGUF_MAGIC = b"GGUF"
# The legacy GGML container magics as they appear on disk (little-endian uint32 'ggml', 'ggmf', 'ggjt').
GGML_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt"}

# GGML files carry no chat template; ChatML is what most small instruct models of that era used.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML_STOP = "<|im_end|>"
GGML_LOG_LEVEL_ERROR = 4  # ggml.h: NONE, DEBUG, INFO, WARN, ERROR, CONT


class Sampling(msgspec.Struct, kw_only=True, frozen=True):
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


class RenderedPrompt(msgspec.Struct, kw_only=True, frozen=True):
    text: str
    # Text the template itself ends a turn with, should the model write it out instead of its end token.
    stop: list[str]


class Engine(Protocol):
    """What model_host needs from a loaded model."""

    name: str
    context_size: int
    supports_grammar: bool

    def render_chat(self, messages: list[dict[str, str]]) -> RenderedPrompt:
        """The prompt for these messages, by the model's chat template.

        Raises ValueError (or a jinja2 error) if the template refuses them.
        """
        ...

    def tokenize(self, text: str) -> list[int]: ...

    def token_stream(
        self, prompt_tokens: Sequence[int], sampling: Sampling, grammar: str | None
    ) -> Generator[int, None, None]:
        """Sampled tokens after the prompt; ends when the model ends its turn (its end token not yielded)."""
        ...

    def piece(self, token: int) -> bytes:
        """The bytes one token stands for (possibly part of a UTF-8 character)."""
        ...


def check_model_file(path: Path, engine: str) -> None:
    """Fail early and clearly if `path` cannot be the model file `engine` needs.

    Raises ModelFileError naming the path and the reason: missing, not a file, unreadable, or a
    file whose first bytes are not a GGUF (llama_cpp) or GGUF/GGML (ctransformers) header.
    """
    if not path.exists():
        raise ModelFileError(f"MODEL_PATH {path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"MODEL_PATH {path}: not a regular file")
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise ModelFileError(f"MODEL_PATH {path}: cannot be read ({exc.strerror or exc})") from exc
    if engine == "llama_cpp":
        if magic == GGUF_MAGIC:
            return
        if magic in GGML_MAGICS:
            raise ModelFileError(
                f"MODEL_PATH {path}: a legacy GGML ({GGML_MAGICS[magic]}) file, which llama.cpp no longer "
                "loads; "
                "convert it to GGUF, or use MODEL_ENGINE=ctransformers"
            )
        raise ModelFileError(
            f"MODEL_PATH {path}: not a GGUF model file (it starts with {magic!r}, not b'GGUF')"
        )
    if magic != GGUF_MAGIC and magic not in GGML_MAGICS:
        raise ModelFileError(f"MODEL_PATH {path}: not a GGML or GGUF model file (it starts with {magic!r})")


def load_engine(settings: Settings) -> Engine:
    """Load the model file with the configured engine (slow: call it off the event loop).

    Raises ModelFileError (naming the path) when the file is not usable.
    """
    path = settings.resolved_model_path()
    check_model_file(path, settings.model_engine)
    if settings.model_engine == "ctransformers":
        return CTransformersEngine(path, settings)
    return LlamaCppEngine(path, settings)


@contextmanager
def repack_setting(repack_weights: bool) -> Iterator[None]:
    """Llama's constructor with `use_extra_bufts` (llama.cpp's `--no-repack`) set, which it does not take.

    The constructor fills its model parameters from `llama_model_default_params()` and loads the
    file in the same call, so the defaults are what can be changed; only while it runs.
    """
    import llama_cpp.llama_cpp  # the module whose functions llama_cpp.llama calls by attribute

    module: Any = llama_cpp.llama_cpp
    defaults = module.llama_model_default_params

    def params() -> Any:
        value = defaults()
        value.use_extra_bufts = repack_weights
        return value

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = defaults


@contextmanager
def _llama_errors() -> Iterator[list[str]]:
    """llama.cpp's own error lines while the block runs (llama-cpp-python hides them when not verbose)."""
    import llama_cpp
    import llama_cpp._logger

    errors: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == GGML_LOG_LEVEL_ERROR:
            line = text.decode("utf-8", errors="replace").strip()
            if line:
                errors.append(line)

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield errors
    finally:
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))


# Written into a special token's text found in a message, after its first character: the text
# then reads the same but tokenizes as plain text. U+2060 WORD JOINER: invisible, no line break.
_BREAK = "\u2060"


def special_texts(model: Any, llama_cpp: Any) -> tuple[str, ...]:
    """The texts of the vocabulary's control and user-defined tokens (`<|im_start|>`, `<think>`),
    longest first; 0.03 s for SmolLM2's 49k tokens, once at load."""
    mask = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    texts = {
        model.token_get_text(token) for token in range(model.n_vocab()) if model.token_get_attr(token) & mask
    }
    return tuple(sorted((text for text in texts if len(text) > 1), key=len, reverse=True))


def defused(content: str, specials: tuple[str, ...]) -> str:
    """`content` with every special token's text broken by an invisible joiner, so none of it is
    read as a control token."""
    for text in specials:
        if text in content:
            content = content.replace(text, text[0] + _BREAK + text[1:])
    return content


class LlamaCppEngine:
    """A GGUF model through llama-cpp-python; the chat template comes from the file's metadata."""

    name = "llama_cpp"
    supports_grammar = True

    def __init__(self, path: Path, settings: Settings) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from model_host.grammar_llama import GrammarLlama

        self._llama_cpp = llama_cpp
        try:
            with _llama_errors() as errors, repack_setting(settings.model_repack_weights):
                # The prompt's KV cache stays between requests: Llama.generate reads again only what
                # follows the longest prefix shared with the previous prompt (the system prompt).
                self._llama: Any = GrammarLlama(
                    model_path=str(path),
                    n_ctx=settings.model_context_size,
                    n_threads=settings.threads(),
                    n_threads_batch=settings.batch_threads(),
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            # The first line is llama.cpp's own reason; the rest repeat "failed to load".
            reason = errors[0] if errors else str(exc)
            raise ModelFileError(f"MODEL_PATH {path}: llama.cpp could not load it: {reason}") from exc
        self.context_size: int = self._llama.n_ctx()
        model = self._llama._model
        eos_id: int = self._llama.token_eos()
        bos_id: int = self._llama.token_bos()
        eos = model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        template = settings.model_chat_template or self._llama.metadata.get("tokenizer.chat_template")
        stop = [eos] if eos else []
        if not template:
            logger.warning("MODEL_PATH %s has no chat template in its metadata: using ChatML", path)
            template, stop = CHATML_TEMPLATE, [CHATML_STOP]
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._stop = stop
        self._vocab = model.vocab
        self._specials = special_texts(model, self._llama_cpp)

    def render_chat(self, messages: list[dict[str, str]]) -> RenderedPrompt:
        # What the caller sent cannot hold the model's control tokens: `<|im_start|>system` inside
        # reviewed code would otherwise become a real turn of the conversation once the prompt is
        # tokenized with its special tokens parsed (which the template's own need).
        messages = [
            {**message, "content": defused(message.get("content", ""), self._specials)}
            for message in messages
        ]
        # Thinking models (Qwen3) answer at once when their template gets enable_thinking=false: it
        # writes an empty <think></think> block after the assistant's header. Templates that do not
        # know the variable ignore it. llama-cpp-python passes extra keywords on to the template.
        rendered = self._formatter(messages=messages, enable_thinking=False)  # type: ignore[arg-type]
        return RenderedPrompt(text=rendered.prompt, stop=self._stop)

    def tokenize(self, text: str) -> list[int]:
        # The template writes BOS itself where the model wants one; special tokens in it are real tokens.
        tokens: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def token_stream(
        self, prompt_tokens: Sequence[int], sampling: Sampling, grammar: str | None
    ) -> Generator[int, None, None]:
        seed = sampling.seed if sampling.seed is not None else random.randint(0, 2**32 - 1)  # noqa: S311
        self._llama.set_seed(seed)
        self._llama.set_grammar(grammar)
        tokens = self._llama.generate(
            list(prompt_tokens),
            temp=sampling.temperature,
            top_p=sampling.top_p,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
        )
        try:
            for token in tokens:
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    return
                yield token
        finally:
            tokens.close()
            self._llama.set_grammar(None)

    def piece(self, token: int) -> bytes:
        data: bytes = self._llama.detokenize([token])
        return data


class CTransformersEngine:
    """A legacy GGML model (gpt2, llama, falcon, mpt, ...) through ctransformers 0.2.27.

    ctransformers has no grammar sampling, so `response_format` json_object / json_schema is refused
    (400) on this engine rather than answered unconstrained.
    """

    name = "ctransformers"
    supports_grammar = False

    def __init__(self, path: Path, settings: Settings) -> None:
        from ctransformers.llm import LLM, Config
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._threads = settings.threads()
        config = Config(context_length=settings.model_context_size, threads=self._threads)
        with path.open("rb") as file:
            is_gguf = file.read(4) == GGUF_MAGIC
        try:
            # A GGUF file goes to ctransformers' own GGUF loader (early GGUF versions only).
            self._llm: Any = LLM(str(path), None if is_gguf else settings.model_type, config=config)
        except (ValueError, RuntimeError, OSError) as exc:
            hint = ""
            if is_gguf:
                hint = "; ctransformers 0.2.27 predates current GGUF files: use MODEL_ENGINE=llama_cpp"
            raise ModelFileError(
                f"MODEL_PATH {path}: ctransformers could not load it as "
                f"{'GGUF' if is_gguf else 'model type ' + repr(settings.model_type)} ({exc}){hint}"
            ) from exc
        self.context_size = int(self._llm.context_length) or settings.model_context_size
        template = settings.model_chat_template or CHATML_TEMPLATE
        self._formatter = Jinja2ChatFormatter(template=template, eos_token="", bos_token="")
        self._stop = [CHATML_STOP] if template == CHATML_TEMPLATE else []

    def render_chat(self, messages: list[dict[str, str]]) -> RenderedPrompt:
        rendered = self._formatter(messages=messages)  # type: ignore[arg-type]
        return RenderedPrompt(text=rendered.prompt, stop=self._stop)

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(text)
        return tokens

    def token_stream(
        self, prompt_tokens: Sequence[int], sampling: Sampling, grammar: str | None
    ) -> Generator[int, None, None]:
        if grammar is not None:
            raise ValueError("the ctransformers engine has no grammar sampling")
        greedy = sampling.temperature == 0
        tokens = self._llm.generate(
            list(prompt_tokens),
            # ctransformers divides by the temperature: greedy is top_k=1 instead.
            top_k=1 if greedy else 40,
            top_p=sampling.top_p,
            temperature=1.0 if greedy else sampling.temperature,
            seed=sampling.seed if sampling.seed is not None else -1,
            threads=self._threads,
            reset=True,
        )
        try:
            yield from tokens
        finally:
            tokens.close()

    def piece(self, token: int) -> bytes:
        data: bytes = self._llm.detokenize([token], decode=False)
        return data
