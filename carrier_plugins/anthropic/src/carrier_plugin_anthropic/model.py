"""``AnthropicModel``: Carrier's ``Model`` on the ``anthropic`` SDK's async client.

The client is built with ``max_retries=0``: the kernel's ``ModelChain`` is the one
retry loop. SDK exceptions are translated here, ``from exc``, into
``TransientModelError`` (429, 529 overloaded, 408, 409, 5xx, timeouts, connection
errors, overload reported inside a stream) or ``ModelRejectedError`` (other 4xx,
unusable answers); the key never appears in them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import anthropic
import httpx

from carrier.errors import ConfigurationError, ModelRejectedError, TransientModelError
from carrier.protocols import Model
from carrier.types import ModelClass, ModelRequest, ModelResponse, StreamChunk
from carrier_plugin_anthropic._convert import (
    StreamAccumulator,
    from_message,
    parse_retry_after,
    redact,
    to_params,
)
from carrier_plugin_anthropic.settings import AnthropicSettings

__all__ = ["AnthropicModel"]

_TRANSIENT_STATUS = frozenset({408, 409, 429})
#: Error types that mean "try again", also when sent as an ``error`` event mid-stream.
_TRANSIENT_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})
#: What the SDK lets escape: its own errors, httpx errors while a stream is read, and
#: ``ValueError`` (``json.JSONDecodeError``, pydantic) for a malformed body.
_SDK_ERRORS = (anthropic.AnthropicError, httpx.HTTPError, ValueError)


class AnthropicModel(Model):
    """Chat, streaming, tool use and structured output (a forced tool) over the SDK.

    Model ids: an explicit id (``anthropic:claude-opus-4-1``) serves every request;
    ``small`` or ``large`` pin ``CARRIER_ANTHROPIC_SMALL_MODEL`` /
    ``CARRIER_ANTHROPIC_MODEL``; no id follows each request's ``model_class``.
    """

    def __init__(
        self,
        settings: AnthropicSettings,
        *,
        model: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        if not key:
            raise ConfigurationError(
                "The 'anthropic' model needs an API key: set CARRIER_ANTHROPIC_API_KEY "
                "(or ANTHROPIC_API_KEY), or put it in the character's secrets."
            )
        self.settings = settings
        self._key = key
        chosen = (model or "").strip() or None
        if chosen == ModelClass.SMALL.value:
            chosen = settings.small_model
        elif chosen == ModelClass.LARGE.value:
            chosen = settings.model
        self._pinned = chosen
        self.name = f"anthropic:{chosen or settings.model}"
        self.context_window = settings.context_window
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=0,
            http_client=http_client,
        )
        self._where = (
            "Anthropic"
            if settings.base_url is None
            else (f"the Anthropic API at {settings.base_url}")
        )

    @classmethod
    def from_settings(
        cls, settings: AnthropicSettings, *, model: str | None = None, **overrides: Any
    ) -> AnthropicModel:
        """Build from settings plus per-instance overrides (``http_client``, settings)."""
        http_client = overrides.pop("http_client", None)
        values = {k: v for k, v in overrides.items() if k in AnthropicSettings.model_fields}
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise ConfigurationError(
                f"The 'anthropic' model got unknown options {unknown!r}; expected "
                f"http_client or one of {sorted(AnthropicSettings.model_fields)!r}."
            )
        if values:
            settings = AnthropicSettings(**{**settings.model_dump(), **values})
        return cls(settings, model=model, http_client=http_client)

    def model_id(self, request: ModelRequest) -> str:
        """The id asked for: the pinned one, else the request's model class's."""
        if self._pinned is not None:
            return self._pinned
        if request.model_class is ModelClass.SMALL:
            return self.settings.small_model
        return self.settings.model

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        return to_params(
            request,
            model=self.model_id(request),
            default_max_tokens=self.settings.max_tokens,
            cache=self.settings.prompt_cache,
        )

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` with one Messages API call."""
        try:
            message = await self._client.messages.create(**self._params(request))
        except _SDK_ERRORS as exc:
            self._raise(exc)
        try:
            return from_message(message, name=self.name, request=request)
        except (AttributeError, TypeError, KeyError) as exc:
            raise ModelRejectedError(
                f"{self._where} answered a body that is not a Messages API message "
                f"({type(exc).__name__}: {exc})."
            ) from exc

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        """Yield text deltas as they arrive, then the final response (with usage)."""
        accumulator = StreamAccumulator(name=self.name, request=request)
        try:
            events = await self._client.messages.create(**self._params(request), stream=True)
            async with events:
                async for event in events:
                    delta = accumulator.add(event)
                    if delta:
                        yield StreamChunk(text=delta)
        except _SDK_ERRORS as exc:
            self._raise(exc)
        yield StreamChunk(response=accumulator.response())

    async def aclose(self) -> None:
        """Close the SDK client and its connections."""
        await self._client.close()

    def _raise(self, exc: Exception) -> NoReturn:
        """Translate an SDK exception into Carrier's, ``from exc``; the key is masked."""
        where = self._where
        if isinstance(exc, anthropic.APITimeoutError):
            raise TransientModelError(
                f"{where} did not answer within {self.settings.timeout_s:g} s "
                f"(CARRIER_ANTHROPIC_TIMEOUT_S)."
            ) from exc
        if isinstance(exc, anthropic.APIConnectionError | httpx.TransportError):
            cause = exc.__cause__ or exc
            raise TransientModelError(
                redact(f"Could not reach {where}: {type(cause).__name__}: {cause}", self._key)
            ) from exc
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            detail = redact(str(exc.message), self._key)
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            kind = str(error.get("type", "")) if isinstance(error, dict) else ""
            if status in _TRANSIENT_STATUS or status >= 500 or kind in _TRANSIENT_TYPES:
                label = (
                    "is overloaded"
                    if status == 529 or kind == "overloaded_error"
                    else (f"answered HTTP {status}")
                )
                raise TransientModelError(
                    f"{where} {label} ({detail}); this is usually temporary.",
                    retry_after=parse_retry_after(exc.response.headers),
                ) from exc
            hint = {
                401: " Check CARRIER_ANTHROPIC_API_KEY.",
                403: " The key may lack access to this model.",
                404: " Check the model id (CARRIER_ANTHROPIC_MODEL).",
            }.get(status, "")
            raise ModelRejectedError(
                f"{where} rejected the request for {self.name!r} with HTTP {status} "
                f"({detail}).{hint}"
            ) from exc
        raise ModelRejectedError(
            redact(f"{where} gave an unusable response: {type(exc).__name__}: {exc}", self._key)
        ) from exc
