"""Long-lived services of the agents: clients (chat platforms), run under a supervisor.

A **client** connects agents to a platform (Telegram, Discord, an MCP session). The
kernel decides which agents each registered client serves, runs one instance per
instance key the client chooses (Telegram: one per bot token), reports each
instance's health, and isolates failures: an instance that crashes is logged and,
after a backoff, replaced by a fresh one (its registry factory is called again),
while the other instances and the agents keep running.

Which agents a client serves: those whose character does not list clients, or lists
this one (ElizaOS's ``"clients": ["telegram"]``; ``@elizaos/client-telegram`` and
``carrier-plugin-telegram`` name it too, and ElizaOS's ``direct`` names ``http``), and
among them those the client selects (:meth:`Client.select`: usually, the agents for
which its token is configured).

``carrier start`` runs the :class:`Supervisor` for every registered client until
SIGINT or SIGTERM; a program embedding Carrier uses it directly::

    async with open_agents(host, characters) as runtimes:
        async with Supervisor(host, runtimes) as supervisor:
            await stop_requested.wait()
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from carrier.host import PluginHost
    from carrier.registry import RegistryEntry
    from carrier.runtime import AgentRuntime

__all__ = ["Client", "ServiceHealth", "Supervisor", "serves"]

logger = logging.getLogger("carrier.services")

State = Literal["starting", "running", "restarting", "stopped"]


class ServiceHealth:
    """What one running instance of a service reports (``Supervisor.health()``).

    Attributes:
        name: ``"{client}:{key}"``.
        state: ``starting``, ``running``, ``restarting`` (after a crash, waiting for the
            next try) or ``stopped``.
        detail: The instance's last status line, or the crash that is being retried.
        restarts: How many times the instance crashed and was started again.
        since: When ``state`` last changed (epoch seconds).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: State = "starting"
        self.detail = ""
        self.restarts = 0
        self.since = time.time()

    def set(self, state: State, detail: str = "") -> None:
        """Change the state (the supervisor does; clients call :meth:`ready`)."""
        self.state, self.detail, self.since = state, detail, time.time()

    def ready(self, detail: str = "") -> None:
        """The instance serves now (call once its connection is up)."""
        self.set("running", detail)

    def report(self, detail: str) -> None:
        """A status line (``"polling as @nova_bot"``, ``"another process polls"``)."""
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "detail": self.detail,
            "restarts": self.restarts,
            "since": self.since,
        }


class Client(ABC):
    """A long-lived service connecting agents to a platform.

    Register a factory with ``carrier_register_clients``; the kernel calls it once per
    instance (and again for each restart), so an instance may keep state freely.
    """

    #: The registry name; a character's ``clients`` list, when present, must name it.
    name: str = "client"

    def select(self, runtimes: Sequence[AgentRuntime]) -> dict[str, list[AgentRuntime]]:
        """Group the runtimes this client serves by instance key; one instance runs
        per key, serving that key's runtimes. Leave out runtimes for which the client
        is not configured (no token). A key names an instance in logs and health: use
        a short hash of a token, never the token. Default: all of them, one instance.
        """
        return {"default": list(runtimes)} if runtimes else {}

    @abstractmethod
    async def run(self, runtimes: Sequence[AgentRuntime], health: ServiceHealth) -> None:
        """Serve ``runtimes`` until cancelled.

        Call ``health.ready()`` once serving. Raising is a crash: the supervisor logs it
        and runs a fresh instance after a backoff. On cancellation, stop taking new
        events, let the turns in flight finish within a few seconds (an unfinished one
        stays unanswered in the store, for recovery), close connections, and let
        ``CancelledError`` propagate. Returning ends the instance for good (``stopped``).
        """


def serves(client: str, runtime: AgentRuntime) -> bool:
    """Whether ``runtime``'s character allows ``client``: it lists no clients, or it
    lists this one (in any of its spellings)."""
    character = runtime.character
    if "clients" not in character.model_fields_set:
        return True
    return _client_name(client) in {_client_name(c) for c in character.clients}


#: ElizaOS client names whose Carrier client has another name.
_CLIENT_ALIASES = {"direct": "http"}


def _client_name(declared: str) -> str:
    from carrier.character import plugin_name  # not at import: plugins import this module

    name = declared.strip().lower()
    for prefix in ("@elizaos/client-", "@elizaos-plugins/client-", "client-"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = plugin_name(name)
    return _CLIENT_ALIASES.get(name, name)


class Supervisor:
    """Runs the registered clients' instances for ``runtimes`` and restarts crashed ones.

    Args:
        host: The plugin host whose ``clients`` registry is run.
        runtimes: The started agents.
        only: Run only these clients (by name); all when ``None``.
        backoff_initial_s: The first wait before a crashed instance runs again;
            it doubles on each further crash, up to ``backoff_max_s``.
        backoff_max_s: The longest wait between two tries.
        stop_timeout_s: How long :meth:`stop` waits for instances to wind down.
    """

    def __init__(
        self,
        host: PluginHost,
        runtimes: Sequence[AgentRuntime],
        *,
        only: Collection[str] | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._host = host
        self._runtimes = list(runtimes)
        self._only = None if only is None else set(only)
        from tenacity import wait_exponential

        self._backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s)
        self._stop_timeout_s = stop_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._health: dict[str, ServiceHealth] = {}

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def start(self) -> list[str]:
        """Start every instance; their names (``"{client}:{key}"``)."""
        for entry in self._host.clients:
            if self._only is not None and entry.name not in self._only:
                continue
            client = self._host.clients.create(entry.name)
            runtimes = [r for r in self._runtimes if serves(entry.name, r)]
            for key, selected in client.select(runtimes).items():
                if not selected:
                    continue
                name = f"{entry.name}:{key}"
                self._health[name] = health = ServiceHealth(name)
                self._tasks[name] = asyncio.get_running_loop().create_task(
                    self._supervise(entry, client, selected, health), name=f"carrier {name}"
                )
                client = self._host.clients.create(entry.name)  # each its own object
        if not self._tasks:
            logger.warning("No client is enabled for these agents; nothing to serve.")
        return list(self._tasks)

    async def _supervise(
        self,
        entry: RegistryEntry[Client],
        client: Client,
        runtimes: list[AgentRuntime],
        health: ServiceHealth,
    ) -> None:
        from tenacity import AsyncRetrying, retry_if_exception_type

        def crashed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            health.restarts += 1
            wait = state.next_action.sleep if state.next_action else 0.0
            health.set("restarting", f"{type(error).__name__}: {error}")
            logger.error(
                "Client %s crashed (%s: %s); starting it again in %.1f s",
                health.name,
                type(error).__name__,
                error,
                wait,
                exc_info=error,
            )

        instance = client
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=self._backoff,
            before_sleep=crashed,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if health.restarts:  # a fresh object after a crash
                        instance = self._host.clients.create(entry.name)
                        health.set("starting", "")
                    await instance.run(runtimes, health)
        finally:
            health.set("stopped", health.detail)

    def health(self) -> list[ServiceHealth]:
        """Every instance's health, by name."""
        return [self._health[name] for name in sorted(self._health)]

    async def stop(self) -> None:
        """Cancel every instance and wait (up to ``stop_timeout_s``) for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout_s)
            for task in pending:
                logger.warning("Client %s did not stop in time", task.get_name())
        self._tasks.clear()
