"""An agent as an MCP server (``carrier mcp serve``), for one principal at a time.

Over stdio the principal is the local operator (``CARRIER_MCP_USER``/``CARRIER_MCP_ROLE``);
over Streamable HTTP (``--http``, 127.0.0.1 only) it is the user of each request's bearer
token (``CARRIER_MCP_USER_TOKENS``, the HTTP API's token shape). The server offers:

- the tool ``send_message(text, room=None)``: the full loop as that user; the answer;
- the resources ``carrier://rooms`` (that user's rooms) and ``carrier://rooms/{room_id}``
  (a room's recent messages, only if that user takes part in it);
- the prompt ``character``: the agent's persona.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from carrier.errors import AccessError, InputError
from carrier.prompts import character_system_prompt
from carrier.types import IncomingMessage, Role, RoomType

if TYPE_CHECKING:
    from carrier.runtime import AgentRuntime
    from carrier_plugin_mcp.settings import McpSettings, UserToken

__all__ = ["Principal", "TokenVerifier", "build_agent_server"]

logger = logging.getLogger("carrier.mcp.server")

#: How many recent messages a room resource holds.
RECENT = 20


@dataclass(frozen=True)
class Principal:
    """Who the server speaks for in this request."""

    user: str
    role: Role


class TokenVerifier:
    """Bearer tokens → principals (constant-time comparison; never logs a token)."""

    def __init__(self, tokens: list[UserToken]) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        for grant in self._tokens:
            if hmac.compare_digest(grant.token.get_secret_value().encode(), token.encode()):
                return AccessToken(
                    token="-", client_id=grant.user, scopes=[f"role:{grant.role.value}"]
                )
        return None


def _principal(default: Principal | None) -> Principal:
    """The request's principal: its token's user over HTTP, else the operator (stdio)."""
    access = get_access_token()
    if access is not None:
        role = next(
            (Role(s.removeprefix("role:")) for s in access.scopes if s.startswith("role:")),
            Role.MEMBER,
        )
        return Principal(access.client_id, role)
    if default is None:
        raise ToolError("This request carries no valid token.")
    return default


def build_agent_server(
    runtime: AgentRuntime,
    settings: McpSettings,
    *,
    http_url: str | None = None,
) -> MCPServer:
    """The MCP server of ``runtime``. With ``http_url`` (Streamable HTTP), requests need a
    bearer token of ``settings.user_tokens``; without it (stdio), the operator speaks."""
    character = runtime.character
    operator = None if http_url else Principal(settings.user, settings.role)
    auth: dict[str, object] = {}
    if http_url is not None:
        auth = {
            # Our own tokens, checked by TokenVerifier: no audience to compare.
            "auth": AuthSettings(
                issuer_url=http_url, resource_server_url=http_url, validate_token_resource=False
            ),
            "token_verifier": TokenVerifier(settings.user_tokens),
        }
    server = MCPServer(
        f"carrier-{character.name}",
        instructions=f"Talk to the agent {character.name} with the send_message tool.",
        log_level="WARNING",
        **auth,  # type: ignore[arg-type]
    )

    @server.tool(description=f"Send a message to {character.name} and get the answer.")
    async def send_message(text: str, room: str | None = None) -> str:
        principal = _principal(operator)
        incoming = IncomingMessage(
            text=text,
            user_id=principal.user,
            room_id=room or None,
            room_type=RoomType.DIRECT,
            source="mcp",
            role=principal.role,
        )
        try:
            reply = await runtime.handle(incoming)
        except (AccessError, InputError) as exc:  # refused: the reason is the user's
            raise ToolError(str(exc)) from exc
        except Exception as exc:
            logger.exception("send_message for user %r failed", principal.user)
            raise ToolError(
                f"{character.name} could not answer ({type(exc).__name__}); see the server's log."
            ) from exc
        if reply.error:
            raise ToolError(f"{character.name} could not answer: {reply.error}")
        return "\n\n".join(reply.texts)

    @server.resource("carrier://rooms", description="Your rooms with the agent.")
    async def rooms() -> str:
        principal = _principal(operator)
        ids = await _rooms_of(runtime, principal.user)
        return json.dumps({"rooms": ids})

    @server.resource(
        "carrier://rooms/{room_id}", description="The recent messages of one of your rooms."
    )
    async def room_messages(room_id: str) -> str:
        principal = _principal(operator)
        if room_id not in await _rooms_of(runtime, principal.user):
            raise ResourceError(f"You take no part in a room {room_id!r}.")
        memories = await runtime.store.get_memories(
            agent_id=runtime.agent_id, room_id=room_id, limit=RECENT
        )
        names = {runtime.agent_id: character.name}
        lines = [
            {"from": names.get(m.entity_id, m.entity_id), "text": m.content.text}
            for m in memories
            if m.content.text
        ]
        return json.dumps({"room": room_id, "messages": lines}, ensure_ascii=False)

    @server.prompt(name="character", description=f"{character.name}'s persona.")
    def persona() -> str:
        return character_system_prompt(character)

    return server


async def _rooms_of(runtime: AgentRuntime, user: str) -> list[str]:
    """The rooms ``user`` takes part in, without those the runtime keeps for itself."""
    ids = await runtime.store.get_rooms_for_entity(user)
    return sorted(r for r in ids if not runtime.is_reserved_room(r))
