"""``OpenAIModel``: Carrier's ``Model`` on the ``openai`` SDK's async client.

The client is built with ``max_retries=0``: the kernel's ``ModelChain`` is the one
retry loop. SDK exceptions are translated here, ``from exc``, into
``TransientModelError`` (429, 408, 409, 5xx, timeouts, connection errors) or
``ModelRejectedError`` (other 4xx, unusable answers); the key never appears in them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import openai

from carrier.errors import ConfigurationError, ModelRejectedError, TransientModelError
from carrier.protocols import Model
from carrier.types import ModelClass, ModelRequest, ModelResponse, StreamChunk
from carrier_plugin_openai._convert import (
    MAX_STOP_SEQUENCES,
    NO_STOP_MODELS,
    StreamAccumulator,
    from_completion,
    parse_retry_after,
    redact,
    to_params,
)
from carrier_plugin_openai.settings import OpenAISettings

__all__ = ["OpenAIModel"]

#: Used when a compatible server (base_url) needs no key; never sent to OpenAI itself.
NO_KEY = "no-key-required"
_CONTEXT_WINDOWS = {"gpt-4.1": 1_047_576, "gpt-4o": 128_000, "gpt-5": 400_000, "o3": 200_000}
_EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_TRANSIENT_STATUS = frozenset({408, 409, 429})
#: What the SDK lets escape: its own errors, httpx errors while a stream is read, and
#: ``ValueError`` (``json.JSONDecodeError``, pydantic) for a malformed body.
_SDK_ERRORS = (openai.OpenAIError, httpx.HTTPError, ValueError)


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or urlsplit(base_url).hostname == "api.openai.com"


class OpenAIModel(Model):
    """Chat, streaming, tool calls, structured output and embeddings over the SDK.

    Model ids: an explicit id (``openai:gpt-4.1``) serves every request; ``small`` or
    ``large`` pin the configured ``CARRIER_OPENAI_SMALL_MODEL`` / ``CARRIER_OPENAI_MODEL``;
    no id follows each request's ``model_class``. Embeddings use
    ``CARRIER_OPENAI_EMBEDDING_MODEL``, or the explicit id when it names an embedding
    model (contains ``embed``).
    """

    def __init__(
        self,
        settings: OpenAISettings,
        *,
        model: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        if not key:
            if _is_openai(settings.base_url):
                raise ConfigurationError(
                    "The 'openai' model needs an API key: set CARRIER_OPENAI_API_KEY (or "
                    "OPENAI_API_KEY), or point CARRIER_OPENAI_BASE_URL at an "
                    "OpenAI-compatible server that needs none."
                )
            key = NO_KEY
        self.settings = settings
        self._key = key
        self._official = _is_openai(settings.base_url)
        chosen = (model or "").strip() or None
        if chosen == ModelClass.SMALL.value:
            chosen = settings.small_model
        elif chosen == ModelClass.LARGE.value:
            chosen = settings.model
        self._pinned = chosen
        self._embedding_model = (
            chosen if chosen and "embed" in chosen.lower() else settings.embedding_model
        )
        self.name = f"openai:{chosen or settings.model}"
        self.context_window = settings.context_window or self._known_window(chosen)
        self.embedding_dimension = settings.embedding_dimensions or _EMBEDDING_DIMENSIONS.get(
            self._embedding_model
        )
        self._max_tokens_key = "max_completion_tokens" if self._official else "max_tokens"
        # OpenAI rejects more than 4 stop sequences; compatible servers get the setting.
        self._max_stop = (
            min(settings.max_stop_sequences, MAX_STOP_SEQUENCES)
            if self._official
            else settings.max_stop_sequences
        )
        self._no_stop_models = [
            re.compile(pattern, re.IGNORECASE)
            for pattern in (*NO_STOP_MODELS, *settings.no_stop_models)
        ]
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=settings.base_url,
            organization=settings.organization,
            timeout=settings.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        self._where = (
            "OpenAI" if self._official else f"the OpenAI-compatible server at {settings.base_url}"
        )

    @classmethod
    def from_settings(
        cls, settings: OpenAISettings, *, model: str | None = None, **overrides: Any
    ) -> OpenAIModel:
        """Build from settings plus per-instance overrides (``http_client``, settings)."""
        http_client = overrides.pop("http_client", None)
        values = {k: v for k, v in overrides.items() if k in OpenAISettings.model_fields}
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ConfigurationError(
                f"The 'openai' model got unknown options {unknown!r}; expected "
                f"http_client or one of {sorted(OpenAISettings.model_fields)!r}."
            )
        if values:
            settings = OpenAISettings(**{**settings.model_dump(), **values})
        return cls(settings, model=model, http_client=http_client)

    @staticmethod
    def _known_window(model: str | None) -> int | None:
        if model is None:
            return None
        for prefix, window in _CONTEXT_WINDOWS.items():
            if model.startswith(prefix):
                return window
        return None

    def model_id(self, request: ModelRequest) -> str:
        """The id asked for: the pinned one, else the request's model class's."""
        if self._pinned is not None:
            return self._pinned
        return (
            self.settings.small_model
            if request.model_class is ModelClass.SMALL
            else (self.settings.model)
        )

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        return to_params(
            request,
            model=self.model_id(request),
            default_max_tokens=self.settings.max_tokens,
            max_tokens_key=self._max_tokens_key,
            max_stop=self._max_stop,
            no_stop_models=self._no_stop_models,
        )

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` with one chat completion."""
        try:
            completion = await self._client.chat.completions.create(**self._params(request))
        except _SDK_ERRORS as exc:
            self._raise(exc)
        try:
            return from_completion(completion, name=self.name, request=request)
        except (AttributeError, TypeError, KeyError) as exc:
            raise ModelRejectedError(
                f"{self._where} answered a body that is not a chat completion "
                f"({type(exc).__name__}: {exc})."
            ) from exc

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as they arrive, then the final response (with usage)."""
        params = self._params(request)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        accumulator = StreamAccumulator(name=self.name, request=request)
        try:
            chunks = await self._client.chat.completions.create(**params)
            async with chunks:
                async for chunk in chunks:
                    delta = accumulator.add(chunk)
                    if delta:
                        yield StreamChunk(text=delta)
        except _SDK_ERRORS as exc:
            self._raise(exc)
        yield StreamChunk(response=accumulator.response())

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text from the embedding model, in order."""
        if not texts:
            return []
        params: dict[str, Any] = {"model": self._embedding_model, "input": list(texts)}
        params["encoding_format"] = "float"
        if self.settings.embedding_dimensions and self._embedding_model.startswith(
            "text-embedding-3"
        ):
            params["dimensions"] = self.settings.embedding_dimensions
        try:
            result = await self._client.embeddings.create(**params)
        except _SDK_ERRORS as exc:
            self._raise(exc)
        vectors = [list(item.embedding) for item in sorted(result.data, key=lambda d: d.index)]
        if len(vectors) != len(texts):
            raise ModelRejectedError(
                f"{self._where} returned {len(vectors)} embeddings for {len(texts)} texts."
            )
        if vectors and self.embedding_dimension is None:
            self.embedding_dimension = len(vectors[0])
        return vectors

    async def aclose(self) -> None:
        """Close the SDK client and its connections."""
        await self._client.close()

    def _raise(self, exc: Exception) -> NoReturn:
        """Translate an SDK exception into Carrier's, ``from exc``; the key is masked."""
        where = self._where
        if isinstance(exc, openai.APITimeoutError):
            raise TransientModelError(
                f"{where} did not answer within {self.settings.timeout_s:g} s "
                f"(CARRIER_OPENAI_TIMEOUT_S)."
            ) from exc
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            cause = exc.__cause__ or exc
            raise TransientModelError(
                redact(f"Could not reach {where}: {type(cause).__name__}: {cause}", self._key)
            ) from exc
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = redact(str(exc.message), self._key)
            if status in _TRANSIENT_STATUS or status >= 500:
                raise TransientModelError(
                    f"{where} answered HTTP {status} ({detail}); this is usually temporary.",
                    retry_after=parse_retry_after(exc.response.headers),
                ) from exc
            hint = {
                401: " Check CARRIER_OPENAI_API_KEY.",
                403: " The key may lack access to this model.",
                404: " Check the model id and CARRIER_OPENAI_BASE_URL.",
            }.get(status, "")
            raise ModelRejectedError(
                f"{where} rejected the request for {self.name!r} with HTTP {status} "
                f"({detail}).{hint}"
            ) from exc
        raise ModelRejectedError(
            redact(f"{where} gave an unusable response: {type(exc).__name__}: {exc}", self._key)
        ) from exc
