"""Settings of an app: keyword arguments of ``App``, else ``GENDURABLE_*`` variables, else defaults."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._insert import MAX_SECONDS


class Settings(BaseSettings):
    """Every setting of an app. Durations are seconds; a ``timedelta`` is accepted too."""

    model_config = SettingsConfigDict(env_prefix="GENDURABLE_", extra="forbid")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; with none, an embedded server runs in data_dir.",
    )
    data_dir: Path = Field(
        default=Path(".gendurable"),
        description="Folder of the embedded server, relative to the working directory.",
    )
    lease_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a picked row stays leased."
    )
    poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between picks with no wakeup."
    )
    reaper_interval: float = Field(default=5.0, gt=0, description="Seconds between reaper passes.")
    gc_interval: float = Field(default=60.0, gt=0, description="Seconds between GC passes.")
    gc_retention: float = Field(
        default=86400.0, ge=0, description="Seconds a terminal row is kept before GC deletes it."
    )
    gc_batch: int = Field(default=1000, ge=1, description="Rows GC deletes per statement.")
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="Seconds a draining worker waits for running steps."
    )
    timezone: str = Field(
        default="UTC", description="Time zone of beat_schedule crontabs that name none."
    )
    beat_interval: float = Field(
        default=1.0, gt=0, description="Seconds between scheduler passes of beat."
    )
    wakeup: str = Field(
        default="postgres",
        description="Wakeup channel: postgres (LISTEN/NOTIFY), or a redis:// or amqp:// URL.",
    )
    pool_size: int = Field(default=4, ge=1, description="Connections the app's pool keeps open.")

    @field_validator("wakeup")
    @classmethod
    def _wakeup_channel(cls, value: str) -> str:
        schemes = ("redis", "rediss", "amqp", "amqps", "pyamqp")
        scheme, separator, _ = value.partition("://")
        if value == "postgres" or (separator and scheme in schemes):
            return value
        raise ValueError(
            f"invalid wakeup channel {value!r}: use 'postgres', or a URL starting with "
            + ", ".join(f"{name}://" for name in schemes)
        )

    @field_validator(
        "lease_timeout",
        "poll_interval",
        "reaper_interval",
        "gc_interval",
        "gc_retention",
        "shutdown_grace",
        "beat_interval",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        return value.total_seconds() if isinstance(value, timedelta) else value

    @field_validator(
        "lease_timeout",
        "poll_interval",
        "reaper_interval",
        "gc_interval",
        "gc_retention",
        "shutdown_grace",
    )
    @classmethod
    def _schedulable(cls, value: float) -> float:
        # The database adds these to now(), and its interval type cannot store infinity or a
        # value far beyond MAX_SECONDS.
        if not math.isfinite(value) or value > MAX_SECONDS:
            raise ValueError(
                f"must be a finite number of seconds up to {MAX_SECONDS:.0f} (1000 years)"
            )
        return value
