"""MCP tools as Carrier actions: one action source per runtime over the host's shared
connections, one action per allowed tool, ``server__tool`` made safe.

The MCP SDK (~1 s to import) loads only when a runtime's character uses a configured
server: the connections module is imported in :meth:`McpTools.setup`, after the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from carrier.errors import ConfigurationError
from carrier.protocols import Action, ActionSource, Provider
from carrier.types import ActionResult, Memory, ProviderOutput, State
from carrier_plugin_mcp.config import assign_action_names, load_servers, servers_for
from carrier_plugin_mcp.schema import ToolArguments, arguments_model
from carrier_plugin_mcp.settings import McpSettings

if TYPE_CHECKING:
    from mcp.types import CallToolResult, Tool

    from carrier.runtime import AgentRuntime
    from carrier_plugin_mcp.connection import McpConnection, McpManager

__all__ = ["McpResources", "McpToolAction", "McpTools", "render_result"]

logger = logging.getLogger("carrier.mcp")


def render_result(result: CallToolResult, budget: int) -> str:
    """A tool result as prompt text, cut to ``budget`` characters."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)  # type: ignore[union-attr]
        elif kind == "resource":
            inner = block.resource  # type: ignore[union-attr]
            parts.append(getattr(inner, "text", None) or f"[resource {inner.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")  # type: ignore[union-attr]
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts)
    if len(text) > budget:
        text = text[:budget].rstrip() + f" … [cut: {len(text) - budget} more characters]"
    return text


class McpToolAction(Action):
    """One tool of one server. Subclassed per tool (name, schema, role) by :func:`_tool_action`."""

    name = "MCP_TOOL"
    server: str = ""
    tool: str = ""

    def __init__(self, connection: McpConnection, budget: int) -> None:
        self._connection = connection
        self._budget = budget

    async def handler(
        self, runtime: AgentRuntime, message: Memory, state: State, arguments: BaseModel | None
    ) -> ActionResult:
        from carrier_plugin_mcp.connection import ServerUnavailableError, ToolCallError

        values = arguments.arguments() if isinstance(arguments, ToolArguments) else {}
        data: dict[str, Any] = {"server": self.server, "tool": self.tool}
        try:
            result = await self._connection.call(
                self.tool, values, idempotency_key=state.idempotency_key
            )
        except (ServerUnavailableError, ToolCallError) as exc:
            error = f"Tool {self.tool!r} of MCP server {self.server!r} failed: {exc}"
            return ActionResult(
                name=self.name, success=False, error=error, data=data, continue_chain=True
            )
        text = render_result(result, self._budget)
        if result.structured_content is not None:
            data["structured"] = result.structured_content
        if result.is_error:
            return ActionResult(
                name=self.name,
                success=False,
                error=f"Tool {self.tool!r} of MCP server {self.server!r} failed: {text}",
                data=data,
                continue_chain=True,
            )
        return ActionResult(name=self.name, text=text, data=data, continue_chain=True)


def _tool_action(name: str, connection: McpConnection, tool: Tool, budget: int) -> McpToolAction:
    config = connection.config
    description = tool.description or tool.title or f"Tool {tool.name} of {config.name}."
    cls = type(
        f"McpTool_{name}",
        (McpToolAction,),
        {
            "name": name,
            "description": f"[MCP {config.name}] {description}"[:1024],
            "parameters": arguments_model(name, dict(tool.input_schema)),
            "required_role": config.required_role(tool.name),
            "requires_approval": config.needs_approval(tool.name),
            "approver_role": config.approver_for(tool.name),
            "server": config.name,
            "tool": tool.name,
        },
    )
    action = cls(connection, budget)
    assert isinstance(action, McpToolAction)
    return action


class McpTools(ActionSource):
    """The tools of the servers this runtime's character uses, as actions."""

    name = "mcp"

    def __init__(self) -> None:
        self._connections: list[McpConnection] = []
        self._manager: McpManager | None = None
        self._runtime: AgentRuntime | None = None
        self._undo: list[Callable[[], None]] = []
        self._built: tuple[int, list[Action]] = (-1, [])

    async def setup(self, runtime: AgentRuntime) -> None:
        settings = runtime.host.settings.get("mcp")  # the operator's: no character override
        if not isinstance(settings, McpSettings):
            raise ConfigurationError("The 'mcp' settings namespace is not McpSettings.")
        configured = load_servers(settings.config)
        selected = servers_for(
            runtime.character.settings.get("MCP_SERVERS"),
            configured,
            character=runtime.character.name,
        )
        if not selected:
            return  # no server: the SDK is never imported
        from carrier_plugin_mcp.connection import manager_for

        self._runtime = runtime
        self._manager = manager_for(runtime.host, settings)
        self._connections = [self._manager.connection(s) for s in selected]
        for connection in self._connections:
            self._undo.append(connection.on_change(self._changed))
        wait = max(c.connect_timeout_s for c in self._connections)
        with contextlib.suppress(TimeoutError):  # a server that is down is retried later
            async with asyncio.timeout(wait):
                await asyncio.gather(*(c.first_attempt() for c in self._connections))
        self._changed()

    def _changed(self) -> None:
        self.version += 1

    @property
    def connections(self) -> list[McpConnection]:
        return list(self._connections)

    def actions(self) -> Sequence[Action]:
        version, built = self._built
        if version == self.version:
            return built
        pairs = [
            (c, tool) for c in self._connections for tool in c.tools if c.config.allows(tool.name)
        ]
        actions: list[Action] = []
        try:
            names = assign_action_names((c.config.name, t.name) for c, t in pairs)
        except ConfigurationError as exc:
            logger.error("%s The MCP tools are not offered until this is fixed.", exc)
            for connection in self._connections:
                connection.health.report(str(exc))
            names = {}
        for connection, tool in pairs:
            name = names.get((connection.config.name, tool.name))
            if name is None:
                continue
            actions.append(_tool_action(name, connection, tool, connection.output_max_chars))
        self._built = (self.version, actions)
        return actions

    async def aclose(self) -> None:
        for undo in self._undo:
            undo()
        self._undo.clear()
        manager, self._manager = self._manager, None
        if manager is not None and self._runtime is not None:
            await manager.release(self._runtime.host)
        self._connections = []


class McpResources(Provider):
    """The resources of the servers that opted in (``"resources": true``), as an
    untrusted data section, cut to the output budget."""

    name = "mcp_resources"
    description = "resources of MCP servers"
    position = 60
    trusted = False

    async def get(self, runtime: AgentRuntime, message: Memory, state: State) -> ProviderOutput:
        source = next((s for s in runtime.actions.sources if isinstance(s, McpTools)), None)
        if source is None:
            return ProviderOutput()
        parts = []
        for connection in source.connections:
            if not connection.config.resources:
                continue
            budget = connection.output_max_chars
            for uri, text in connection.resources.items():
                cut = text if len(text) <= budget else text[:budget].rstrip() + " …"
                parts.append(f"{connection.config.name} {uri}:\n{cut}")
        return ProviderOutput(text="\n\n".join(parts), data={"uris": len(parts)})
