"""Carrier: a plugin-first runtime for autonomous AI agents.

Everything public is importable from here. Heavy modules load on first use, so
``import carrier`` in a plugin's ``plugin.py`` stays cheap (``carrier --help``
imports every plugin).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from carrier.errors import (
    AccessError,
    ActionError,
    CarrierError,
    CarrierWarning,
    CharacterError,
    ConfigurationError,
    EmbeddingDimensionError,
    InputError,
    ModelError,
    ModelRejectedError,
    PluginContractError,
    PluginError,
    PluginLoadError,
    StoreError,
    ToolRetry,
    TransientModelError,
    UnknownNameError,
)

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``@carrier.hookimpl``.
hookimpl = pluggy.HookimplMarker("carrier")

if TYPE_CHECKING:
    from carrier.character import Character, load_character
    from carrier.host import PluginHost, PluginInfo
    from carrier.plugin_settings import SettingsRegistry
    from carrier.protocols import (
        Action,
        ActionFactory,
        ActionSource,
        ActionSourceFactory,
        Client,
        Command,
        Evaluator,
        Executor,
        MemoryStore,
        Model,
        ModelFactory,
        Provider,
        StoreFactory,
        TaskWorker,
        TaskWorkerFactory,
    )
    from carrier.registry import Registry
    from carrier.runtime import AgentRuntime
    from carrier.settings import CarrierSettings
    from carrier.types import (
        ActionCall,
        ActionResult,
        ActionSpec,
        Attachment,
        ChatMessage,
        Content,
        Entity,
        EvaluatorResult,
        Event,
        EventType,
        Goal,
        GoalStatus,
        IncomingMessage,
        Memory,
        MemoryScope,
        MemoryType,
        ModelClass,
        ModelRequest,
        ModelResponse,
        Objective,
        Participant,
        ParticipantState,
        ProviderOutput,
        Reply,
        RespondDecision,
        Role,
        Room,
        RoomType,
        ScoredMemory,
        SearchScope,
        State,
        StreamChunk,
        Task,
        TaskStatus,
        Usage,
    )

_LAZY = {
    "Character": "carrier.character",
    "load_character": "carrier.character",
    "PluginHost": "carrier.host",
    "PluginInfo": "carrier.host",
    "Registry": "carrier.registry",
    "AgentRuntime": "carrier.runtime",
    "CarrierSettings": "carrier.settings",
    "SettingsRegistry": "carrier.plugin_settings",
    **dict.fromkeys(
        [
            "Action",
            "ActionFactory",
            "ActionSource",
            "ActionSourceFactory",
            "ActionSource",
            "ActionSourceFactory",
            "Client",
            "Command",
            "Evaluator",
            "Executor",
            "MemoryStore",
            "Model",
            "ModelFactory",
            "Provider",
            "StoreFactory",
            "TaskWorker",
            "TaskWorkerFactory",
        ],
        "carrier.protocols",
    ),
    **dict.fromkeys(
        [
            "ActionCall",
            "ActionResult",
            "ActionSpec",
            "Attachment",
            "ChatMessage",
            "Content",
            "Entity",
            "EvaluatorResult",
            "Event",
            "EventType",
            "Goal",
            "GoalStatus",
            "IncomingMessage",
            "Memory",
            "MemoryScope",
            "MemoryType",
            "ModelClass",
            "ModelRequest",
            "ModelResponse",
            "Objective",
            "Participant",
            "ParticipantState",
            "ProviderOutput",
            "Reply",
            "RespondDecision",
            "Role",
            "Room",
            "RoomType",
            "ScoredMemory",
            "SearchScope",
            "State",
            "StreamChunk",
            "Task",
            "TaskStatus",
            "Usage",
        ],
        "carrier.types",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'carrier' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AccessError",
    "Action",
    "ActionCall",
    "ActionError",
    "ActionFactory",
    "ActionResult",
    "ActionSource",
    "ActionSourceFactory",
    "ActionSpec",
    "AgentRuntime",
    "Attachment",
    "CarrierError",
    "CarrierSettings",
    "CarrierWarning",
    "Character",
    "CharacterError",
    "ChatMessage",
    "Client",
    "Command",
    "ConfigurationError",
    "Content",
    "EmbeddingDimensionError",
    "Entity",
    "Evaluator",
    "EvaluatorResult",
    "Event",
    "EventType",
    "Executor",
    "Goal",
    "GoalStatus",
    "IncomingMessage",
    "InputError",
    "Memory",
    "MemoryScope",
    "MemoryStore",
    "MemoryType",
    "Model",
    "ModelClass",
    "ModelError",
    "ModelFactory",
    "ModelRejectedError",
    "ModelRequest",
    "ModelResponse",
    "Objective",
    "Participant",
    "ParticipantState",
    "PluginContractError",
    "PluginError",
    "PluginHost",
    "PluginInfo",
    "PluginLoadError",
    "Provider",
    "ProviderOutput",
    "Registry",
    "Reply",
    "RespondDecision",
    "Role",
    "Room",
    "RoomType",
    "ScoredMemory",
    "SearchScope",
    "SettingsRegistry",
    "State",
    "StoreError",
    "StoreFactory",
    "StreamChunk",
    "Task",
    "TaskStatus",
    "TaskWorker",
    "TaskWorkerFactory",
    "ToolRetry",
    "TransientModelError",
    "UnknownNameError",
    "Usage",
    "__version__",
    "hookimpl",
    "load_character",
]
