"""``SqlSettings``: the ``sql`` settings namespace (``CARRIER_SQL_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SqlSettings"]


class SqlSettings(BaseSettings):
    """Settings of the SQL store; options in the URL win over them."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_SQL_", extra="ignore")

    #: ``numpy``: exact search in RAM (fastest); ``sqlite-vec``: exact, inside SQLite.
    vector_search: Literal["auto", "numpy", "sqlite-vec"] = "auto"
    #: Seconds SQLite waits for another process's write lock.
    busy_timeout_s: float = 5.0
    #: Seconds a call keeps retrying while the file stays locked.
    write_retry_s: float = 30.0
