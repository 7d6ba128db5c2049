"""A tool's JSON Schema as a pydantic model: the schema offered to the model verbatim,
the arguments checked for their top-level types and required names before the call.

Dumped, the arguments are what the model gave under the tool's own names (never the
model's internal field names, never unset optional ones as ``null``): the pending
approval of a call stores and shows that, and it validates again unchanged."""

from __future__ import annotations

import copy
import re
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
)

__all__ = ["ToolArguments", "arguments_model"]

_SIMPLE: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


class ToolArguments(BaseModel):
    """Base of every tool's arguments model; its JSON schema is the tool's own."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    tool_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return copy.deepcopy(cls.tool_schema)

    @model_serializer(mode="wrap")
    def _as_given(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Keyed by the tool's names, set fields only, whatever the dump's options."""
        dumped = handler(self)
        out: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            key = field.alias or name
            found = key if info.by_alias else name
            if name in self.model_fields_set and found in dumped:
                out[key] = dumped[found]
        out.update({k: v for k, v in dumped.items() if k in (self.__pydantic_extra__ or {})})
        return out

    def arguments(self) -> dict[str, Any]:
        """The arguments as the server expects them (its own names; unset ones left out)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def _annotation(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return Any
    kind = schema.get("type")
    if isinstance(kind, str):
        return _SIMPLE.get(kind, Any)
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) == 1 and kinds[0] in _SIMPLE:
            inner = _SIMPLE[kinds[0]]
            return inner | None if "null" in kind else inner
    return Any


def arguments_model(name: str, schema: dict[str, Any]) -> type[ToolArguments]:
    """A model of ``schema``'s top-level properties (simple JSON types become Python
    types, anything else ``Any``; required ones required), whose JSON schema is
    ``schema`` itself."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    required = set(schema.get("required") or []) if isinstance(schema, dict) else set()
    fields: dict[str, Any] = {}
    if isinstance(properties, dict):
        for index, (prop, sub) in enumerate(properties.items()):
            annotation = _annotation(sub)
            if prop in required:
                fields[f"p{index}"] = (annotation, Field(alias=prop))
            else:
                fields[f"p{index}"] = (annotation | None, Field(default=None, alias=prop))
    model_name = re.sub(r"\W", "_", name) + "_Arguments"
    model = create_model(model_name, __base__=ToolArguments, **fields)
    model.tool_schema = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    return model
