"""Parsing ``postgresql://`` URLs. Pure Python; importing it loads no driver."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from carrier.errors import ConfigurationError

__all__ = ["SCHEMES", "PostgresTarget", "parse_postgres_url"]

#: Schemes this plugin answers to with the PostgreSQL store.
SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")

_EXAMPLE = "Expected 'postgresql://user:password@host:5432/database'."


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """Where a PostgreSQL store lives.

    Attributes:
        dsn: The URL as asyncpg takes it (scheme ``postgresql``).
        redacted: The URL with its password replaced by ``***``, for messages.
        host: The server's host (or socket folder), for messages.
    """

    dsn: str
    redacted: str
    host: str


def parse_postgres_url(url: str) -> PostgresTarget:
    """Parse a PostgreSQL store URL.

    Raises:
        ConfigurationError: The URL is not a PostgreSQL URL or is malformed.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"The database URL is malformed: it has no '://'. {_EXAMPLE}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"The database URL is malformed: {exc}. {_EXAMPLE}") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"The PostgreSQL store cannot open a {parts.scheme!r} URL. {_EXAMPLE}"
        )
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostinfo}"
    redacted = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))
    query = dict(parse_qsl(parts.query))
    host = parts.hostname or query.get("host") or "localhost"
    if port is not None:
        host = f"{host}:{port}"
    return PostgresTarget(dsn=dsn, redacted=redacted, host=host)
