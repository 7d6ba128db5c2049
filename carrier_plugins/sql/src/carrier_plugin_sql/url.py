"""Parsing ``sqlite://`` URLs. Pure Python; importing it loads no driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from carrier.errors import ConfigurationError

__all__ = ["SCHEMES", "SqliteTarget", "parse_sqlite_url"]

#: Schemes this plugin answers to; ``sqlite+aiosqlite`` is SQLAlchemy's spelling.
SCHEMES = ("sqlite", "sqlite+aiosqlite")

#: Options a URL may carry after ``?``.
URL_OPTIONS = ("vector_search", "busy_timeout_s", "write_retry_s")

_EXAMPLES = (
    "Expected 'sqlite:///relative/file.db', 'sqlite:////absolute/file.db' or 'sqlite://:memory:'."
)


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """Where a SQLite store lives.

    Attributes:
        path: The database file, or ``None`` for an in-memory database.
        options: Options given after ``?`` in the URL.
    """

    path: Path | None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in memory only."""
        return self.path is None


def parse_sqlite_url(url: str) -> SqliteTarget:
    """Parse a SQLite store URL.

    ``sqlite:///x.db`` is relative to the working directory, ``sqlite:////abs/x.db``
    absolute (SQLAlchemy's convention); ``sqlite://:memory:``, ``sqlite:///:memory:``
    and ``sqlite://`` are in memory.

    Args:
        url: The value of ``CARRIER_DATABASE_URL``.

    Returns:
        The parsed target.

    Raises:
        ConfigurationError: The URL is not a SQLite URL or is malformed.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"The database URL {url!r} is malformed: it has no '://'. {_EXAMPLES}"
        )
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"The SQL store cannot open {url!r}: its scheme is {scheme!r}, not 'sqlite'. "
            f"{_EXAMPLES}"
        )
    rest, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigurationError(
            f"The database URL {url!r} has a malformed query string {query!r}: {exc}."
        ) from exc
    options = dict(pairs)
    unknown = sorted(set(options) - set(URL_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"The database URL {url!r} has unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known options are {', '.join(map(repr, URL_OPTIONS))}."
        )
    if rest in ("", ":memory:", "/:memory:"):
        return SqliteTarget(path=None, options=options)
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"The database URL {url!r} names a host ({rest.split('/')[0]!r}); SQLite URLs "
            f"have none, so the path starts after three slashes. {_EXAMPLES}"
        )
    path = unquote(rest[1:])
    if not path or path.endswith("/"):
        raise ConfigurationError(
            f"The database URL {url!r} names a folder, not a file. {_EXAMPLES}"
        )
    if "\x00" in path:
        raise ConfigurationError(f"The database URL {url!r} contains a NUL character.")
    return SqliteTarget(path=Path(path), options=options)
