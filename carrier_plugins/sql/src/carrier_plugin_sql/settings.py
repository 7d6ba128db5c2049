"""``SqlSettings``: the ``sql`` settings namespace (``CARRIER_SQL_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SqlSettings"]


class SqlSettings(BaseSettings):
    """Settings of the SQL store; options in a ``sqlite://`` URL win over them.

    The ``pool_*`` and ``hnsw_*`` settings apply to the PostgreSQL store only.
    """

    model_config = SettingsConfigDict(env_prefix="CARRIER_SQL_", extra="ignore")

    #: ``numpy``: exact search in RAM (fastest); ``sqlite-vec``: exact, inside SQLite.
    vector_search: Literal["auto", "numpy", "sqlite-vec"] = "auto"
    #: Seconds SQLite waits for another process's write lock.
    busy_timeout_s: float = 5.0
    #: Seconds a call keeps retrying while the file stays locked.
    write_retry_s: float = 30.0
    #: SQLite: the budget of the memories kept validated in RAM (MiB, estimated), so
    #: the history windows of many active rooms are not read and validated again each
    #: turn. About 3 KB a chat message: 128 MiB holds ~1,000 rooms of 32-message windows.
    memory_cache_mb: float = Field(default=128.0, ge=0)
    #: SQLite: the page cache of each connection (MiB; two connections).
    page_cache_mb: float = Field(default=32.0, gt=0)

    #: PostgreSQL: connections the pool keeps open.
    pool_min_size: int = Field(default=1, ge=0)
    #: PostgreSQL: most connections the pool opens.
    pool_max_size: int = Field(default=10, ge=1)
    #: PostgreSQL: HNSW links per node (pgvector's ``m``), used when the index is created.
    hnsw_m: int = Field(default=16, ge=2, le=100)
    #: PostgreSQL: HNSW candidate list while building (``ef_construction``), at least 2 * m.
    hnsw_ef_construction: int = Field(default=128, ge=4, le=1000)
    #: PostgreSQL: HNSW candidate list while searching (``hnsw.ef_search``, per connection).
    hnsw_ef_search: int = Field(default=200, ge=1, le=1000)

    @field_validator("pool_max_size")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("pool_min_size")
        if low is not None and value < low:
            raise ValueError(f"must be at least CARRIER_SQL_POOL_MIN_SIZE ({low})")
        return value

    @field_validator("hnsw_ef_construction")
    @classmethod
    def _ef_construction_at_least_2m(cls, value: int, info: ValidationInfo) -> int:
        m = info.data.get("hnsw_m")
        if m is not None and value < 2 * m:
            raise ValueError(f"must be at least 2 * CARRIER_SQL_HNSW_M ({2 * m}) for pgvector")
        return value
