"""Record model calls once, replay them in every later run: ``Cassette`` and ``CassetteModel``.

``cassette.wrap(model, label="large")`` returns a ``Model`` that, in ``record`` mode,
calls the wrapped backend (any backend: local, OpenAI, Anthropic, a third party's) and
keeps each request with its response, its stream chunks or its vectors; ``save()``
writes them to a YAML file. In ``replay`` mode (the default) the backend is never
called, nor even built: each request is matched to a recording and answered from it.

What is written is safe to commit and stable to diff:

- requests are *normalised* before they are stored or compared: random ids (UUIDs)
  become ``<id-1>``, ``<id-2>``... in order of appearance, dates and times become
  ``<time>``, so only real changes to a prompt mismatch;
- secrets never reach the file: string values under keys that name a key, token, secret,
  password or authorization become ``<redacted>``, as do strings shaped like API keys
  (``sk-...``, ``Bearer ...``) and the values of environment variables whose names
  say ``KEY``, ``TOKEN``, ``SECRET`` or ``PASSWORD``; the wrapped model's settings are
  never serialised (only its name and capabilities are).

A request without an equal recording raises :class:`CassetteMismatchError`, naming the
first differing field (``messages[3].content``) with both values. The cassette also
keeps the error, so that ``check()`` (the ``cassette`` fixture's teardown) fails the
test even when the runtime caught it. In strict mode ``check()`` also fails when
recordings were never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from carrier import errors
from carrier.protocols import Model
from carrier.types import ModelRequest, ModelResponse, StreamChunk

__all__ = [
    "REDACTED",
    "Cassette",
    "CassetteError",
    "CassetteMismatchError",
    "CassetteModel",
    "normalize",
]

Mode = Literal["replay", "record"]
CASSETTE_VERSION = 1
#: What a secret is replaced with in a cassette.
REDACTED = "<redacted>"
_MISSING = "<missing>"

_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|key|secret|token|password|passwd|authorization|auth|"
    r"cookie|credentials?)$",
    re.IGNORECASE,
)
_SECRET_VALUES = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"\b(?:ghp|gho|ghs|github_pat|xox[abpr]|AIza)[A-Za-z0-9_\-]{10,}"),
)
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_TIMES = (
    re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\b)"),
    re.compile(
        r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2}"
    ),
)
_TIME_KEY = re.compile(r"(?:^|_)(?:at|time|timestamp|now|date)$")


class CassetteError(AssertionError):
    """A cassette cannot answer: it is missing, a request was not recorded, or (in
    strict mode) recordings were left unused."""


class CassetteMismatchError(CassetteError):
    """A request differs from every recording left; ``path``, ``recorded`` and
    ``received`` describe the first differing field of the closest one."""

    def __init__(self, message: str, *, path: str, recorded: Any, received: Any) -> None:
        super().__init__(message)
        self.path = path
        self.recorded = recorded
        self.received = received


# ---- Normalising ------------------------------------------------------------------


def _env_secrets() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


class _Normalizer:
    """Scrubs secrets and freezes volatile values in one JSON-like value."""

    def __init__(self, secrets: Sequence[str], *, freeze: bool = True) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.freeze = freeze
        self.ids: dict[str, str] = {}

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern in _SECRET_VALUES:
            value = pattern.sub(REDACTED, value)
        if not self.freeze:
            return value
        for pattern in _TIMES:
            value = pattern.sub("<time>", value)
        return _UUID.sub(self._id, value)

    def _id(self, match: re.Match[str]) -> str:
        key = match.group(0).lower()
        return self.ids.setdefault(key, f"<id-{len(self.ids) + 1}>")

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return REDACTED if _SECRET_KEY.search(key) and value else self.text(value)
        if (
            self.freeze
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and _TIME_KEY.search(key)
            and value > 1e9
        ):
            return "<time>"
        return value


def normalize(value: Any, *, secrets: Sequence[str] = ()) -> Any:
    """``value`` as a cassette stores it: secrets redacted, ids and times frozen.

    Args:
        value: JSON-like data (dicts, lists, strings, numbers).
        secrets: Literal strings to redact besides the secret-looking ones.
    """
    return _Normalizer([*secrets, *_env_secrets()]).value(value)


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Secrets out of a recorded answer; its ids and times are kept as answered."""
    return _Normalizer([*secrets, *_env_secrets()], freeze=False).value(value)


# ---- Comparing --------------------------------------------------------------------


def _differences(recorded: Any, received: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every differing leaf, in field order: ``(path, recorded, received)``."""
    if isinstance(recorded, dict) and isinstance(received, dict):
        found: list[tuple[str, Any, Any]] = []
        for key in [*recorded, *(k for k in received if k not in recorded)]:
            sub = f"{path}.{key}" if path else str(key)
            found += _differences(recorded.get(key, _MISSING), received.get(key, _MISSING), sub)
        return found
    if isinstance(recorded, list) and isinstance(received, list):
        found = []
        for index in range(max(len(recorded), len(received))):
            found += _differences(
                recorded[index] if index < len(recorded) else _MISSING,
                received[index] if index < len(received) else _MISSING,
                f"{path}[{index}]",
            )
        return found
    return [] if recorded == received else [(path or "(request)", recorded, received)]


def _show(value: Any, other: Any) -> str:
    """``repr`` of a value; long strings around their first difference from ``other``."""
    if isinstance(value, str) and isinstance(other, str) and len(value) > 120:
        start = next(
            (i for i, (a, b) in enumerate(zip(value, other, strict=False)) if a != b),
            min(len(value), len(other)),
        )
        begin = max(start - 40, 0)
        excerpt = value[begin : start + 80]
        return f"...{excerpt!r}... (differs at character {start})"
    return repr(value)


# ---- The cassette -----------------------------------------------------------------


class Cassette:
    """Recorded model calls in one YAML file.

    Args:
        path: The cassette file.
        mode: ``"replay"`` (default) answers from the file, which must exist;
            ``"record"`` calls the wrapped models and writes the file on ``save()``.
        strict: Whether ``check()`` fails when recordings were not used.
        secrets: More literal strings to keep out of the file.
        record_hint: How to record again, for error messages (the fixture passes the
            pytest command line).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: Mode = "replay",
        strict: bool = True,
        secrets: Sequence[str] = (),
        record_hint: str = "record the cassette again",
    ) -> None:
        if mode not in ("replay", "record"):
            raise ValueError(f"mode must be 'replay' or 'record', not {mode!r}.")
        self.path = Path(path)
        self.mode: Mode = mode
        self.strict = strict
        self.secrets = list(secrets)
        self.record_hint = record_hint
        self.interactions: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, Any]] = {}
        self.failures: list[CassetteError] = []
        self._used: set[int] = set()
        if mode == "replay":
            self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            raise CassetteError(
                f"No cassette at {str(self.path)!r}: its model calls were never recorded; "
                f"{self.record_hint} (once, against the real model)."
            )
        data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        if data.get("version") != CASSETTE_VERSION:
            raise CassetteError(
                f"{str(self.path)!r} is not a version {CASSETTE_VERSION} cassette "
                f"(found version {data.get('version')!r}); {self.record_hint}."
            )
        self.models = dict(data.get("models") or {})
        self.interactions = list(data.get("interactions") or [])

    # ---- wrapping and saving ----------------------------------------------------

    def wrap(
        self, model: Model | Callable[[], Model] | None = None, *, label: str = "model"
    ) -> CassetteModel:
        """A model that records to, or replays from, this cassette.

        Args:
            model: The real backend, or a callable building it: in replay mode the
                callable is never called, so no key or server is needed. Required in
                record mode.
            label: Names this model's calls in the file (``"large"``, ``"small"``);
                give each wrapped model its own.
        """
        inner: Model | None
        if isinstance(model, Model) or model is None:
            inner = model
        else:
            inner = model() if self.mode == "record" else None
        if self.mode == "record":
            if inner is None:
                raise ValueError("Recording needs the real model: cassette.wrap(model, ...).")
            self.models[label] = {
                "name": inner.name,
                "context_window": inner.context_window,
                "embedding_dimension": inner.embedding_dimension,
                "calls_actions": inner.calls_actions,
            }
        return CassetteModel(self, inner, label=label)

    def save(self) -> None:
        """Write the recordings (record mode only; replay mode writes nothing)."""
        if self.mode != "record":
            return
        data = {
            "version": CASSETTE_VERSION,
            "models": self.models,
            "interactions": self.interactions,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        self.path.write_text(text, encoding="utf-8")

    @property
    def unused(self) -> list[int]:
        """Indexes of the recordings not replayed (yet)."""
        return [i for i in range(len(self.interactions)) if i not in self._used]

    def check(self) -> None:
        """Raise the first mismatch seen, then (strict replay) any unused recording."""
        if self.failures:
            raise self.failures[0]
        if self.mode == "replay" and self.strict and self.unused:
            lines = [
                f"  #{i} {self.interactions[i].get('model')} {self.interactions[i].get('call')}"
                f": {_summary(self.interactions[i])}"
                for i in self.unused
            ]
            raise CassetteError(
                f"{len(self.unused)} of {len(self.interactions)} recorded model calls in "
                f"{str(self.path)!r} were never made:\n" + "\n".join(lines) + "\n"
                f"The code under test now calls the model less often; {self.record_hint}, "
                f"or turn strict mode off."
            )

    # ---- matching -----------------------------------------------------------------

    def _record(self, label: str, call: str, request: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "model": label,
            "call": call,
            "request": normalize(request, secrets=self.secrets),
        }
        self.interactions.append(entry)
        return entry

    def _take(self, label: str, call: str, request: Any) -> dict[str, Any]:
        received = normalize(request, secrets=self.secrets)
        candidates = [
            i
            for i in self.unused
            if self.interactions[i].get("model") == label
            and self.interactions[i].get("call") == call
        ]
        scored = [
            (len(_differences(self.interactions[i]["request"], received)), i) for i in candidates
        ]
        if not scored:
            error = CassetteError(
                f"The cassette {str(self.path)!r} has no {call!r} call of model {label!r} left "
                f"to replay ({len(self.interactions)} recorded in all). The code under test "
                f"calls the model more often than when it was recorded; {self.record_hint}."
            )
            self.failures.append(error)
            raise error
        count, index = min(scored)
        entry = self.interactions[index]
        if count:
            path, recorded, now = _differences(entry["request"], received)[0]
            error = CassetteMismatchError(
                f"The {call!r} request to model {label!r} matches no recording in "
                f"{str(self.path)!r}: {path} differs from recording #{index} (the closest; "
                f"{count} field{'s' if count > 1 else ''} differ).\n"
                f"  recorded: {_show(recorded, now)}\n"
                f"  received: {_show(now, recorded)}\n"
                f"If the change is intended, {self.record_hint}.",
                path=path,
                recorded=recorded,
                received=now,
            )
            self.failures.append(error)
            raise error
        self._used.add(index)
        return entry


def _summary(entry: dict[str, Any]) -> str:
    request = entry.get("request") or {}
    messages = request.get("messages") or []
    text = messages[-1].get("content", "") if messages else str(request.get("texts", ""))
    return repr(text[:60])


def _raise_recorded(entry: dict[str, Any]) -> None:
    error = entry.get("error")
    if not error:
        return
    kind = getattr(errors, str(error.get("type")), None)
    message = str(error.get("message", ""))
    if kind is errors.TransientModelError:
        raise errors.TransientModelError(message, retry_after=error.get("retry_after"))
    if isinstance(kind, type) and issubclass(kind, errors.ModelError):
        raise kind(message)
    raise errors.ModelError(message)


class CassetteModel(Model):
    """A ``Model`` recording to, or replaying from, a :class:`Cassette`; made by
    ``Cassette.wrap``."""

    def __init__(self, cassette: Cassette, inner: Model | None, *, label: str) -> None:
        self.cassette = cassette
        self.inner = inner
        self.label = label
        info = cassette.models.get(label, {})
        source: Any = inner if inner is not None else None
        self.name = source.name if source is not None else info.get("name", f"cassette:{label}")
        self.context_window = (
            source.context_window if source is not None else info.get("context_window")
        )
        self.embedding_dimension = (
            source.embedding_dimension if source is not None else info.get("embedding_dimension")
        )
        self.calls_actions = (
            source.calls_actions if source is not None else bool(info.get("calls_actions", True))
        )

    @property
    def recording(self) -> bool:
        return self.cassette.mode == "record"

    def _inner(self) -> Model:
        assert self.inner is not None  # wrap() requires it in record mode
        return self.inner

    @staticmethod
    def _request(request: ModelRequest) -> dict[str, Any]:
        return request.model_dump(mode="json", exclude_defaults=True)

    async def _recorded_call(self, entry: dict[str, Any], call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except errors.ModelError as exc:
            entry["error"] = _scrub(
                {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "retry_after": getattr(exc, "retry_after", None),
                },
                self.cassette.secrets,
            )
            raise

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if self.recording:
            entry = self.cassette._record(self.label, "generate", self._request(request))
            response: ModelResponse = await self._recorded_call(
                entry, lambda: self._inner().generate(request)
            )
            entry["response"] = _scrub(
                response.model_dump(mode="json", exclude_defaults=True), self.cassette.secrets
            )
            return response
        entry = self.cassette._take(self.label, "generate", self._request(request))
        _raise_recorded(entry)
        return ModelResponse.model_validate(entry.get("response") or {})

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamChunk]:
        if self.recording:
            entry = self.cassette._record(self.label, "stream", self._request(request))
            chunks: list[dict[str, Any]] = []
            entry["chunks"] = chunks
            try:
                async for chunk in self._inner().stream(request):
                    chunks.append(
                        _scrub(
                            chunk.model_dump(mode="json", exclude_defaults=True),
                            self.cassette.secrets,
                        )
                    )
                    yield chunk
            except errors.ModelError as exc:
                entry["error"] = _scrub(
                    {"type": type(exc).__name__, "message": str(exc)}, self.cassette.secrets
                )
                raise
            return
        entry = self.cassette._take(self.label, "stream", self._request(request))
        for chunk in entry.get("chunks") or []:
            yield StreamChunk.model_validate(chunk)
        _raise_recorded(entry)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        request = {"texts": list(texts)}
        if self.recording:
            entry = self.cassette._record(self.label, "embed", request)
            vectors: list[list[float]] = await self._recorded_call(
                entry, lambda: self._inner().embed(texts)
            )
            entry["vectors"] = [list(v) for v in vectors]
            return vectors
        entry = self.cassette._take(self.label, "embed", request)
        _raise_recorded(entry)
        return [list(v) for v in entry.get("vectors") or []]

    def count_tokens(self, text: str) -> int:
        return (
            self.inner.count_tokens(text) if self.inner is not None else super().count_tokens(text)
        )

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()


# ---- YAML that diffs well -------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, lists of numbers on one line."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    flow = bool(value) and all(isinstance(v, int | float) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)
