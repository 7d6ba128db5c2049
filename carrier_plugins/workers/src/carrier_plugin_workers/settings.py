"""``WorkersSettings``: the ``workers`` settings namespace (``CARRIER_WORKERS_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WorkersSettings"]


class WorkersSettings(BaseSettings):
    """Settings of the job queue, the ``workers`` executor and ``carrier worker``."""

    model_config = SettingsConfigDict(env_prefix="CARRIER_WORKERS_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the job queue; default: CARRIER_DATABASE_URL.",
    )
    concurrency: int = Field(default=4, ge=1, description="Messages one worker handles at once.")
    heartbeat_s: float = Field(default=2.0, gt=0, description="Seconds between heartbeats.")
    stalled_after_s: float = Field(
        default=10.0,
        gt=0,
        description="A worker silent this long is dead; its messages go back to the queue.",
    )
    poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between queue polls; LISTEN/NOTIFY wakes workers sooner.",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Tries per message before its job is marked failed."
    )
    retry_wait_s: float = Field(
        default=1.0, ge=0, description="Seconds before the first retry; doubles each time."
    )
    reply_poll_s: float = Field(
        default=0.02, gt=0, description="Seconds between a client's checks for finished jobs."
    )
    reply_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds a client waits for a worker's answer."
    )
    keep_jobs: bool = Field(
        default=False,
        description="Keep succeeded jobs in procrastinate_jobs (an audit trail) instead of "
        "deleting them; the table then grows with every message.",
    )
    task_poll_s: float = Field(
        default=0.5, gt=0, description="Seconds between a worker's looks for due task runs."
    )
    task_horizon_s: float = Field(
        default=5.0,
        ge=0,
        description="Task runs due within this many seconds are deferred as scheduled jobs.",
    )
    task_batch: int = Field(
        default=50,
        ge=1,
        description="Most due task runs a worker takes on at once: a fetched run's job "
        "claims up to this many minus one other due runs' jobs in one statement.",
    )
    task_sweep_s: float = Field(
        default=5.0, gt=0, description="Seconds between sweeps for expired approvals."
    )
    pool_size: int = Field(default=10, ge=1, description="Most queue connections per process.")
