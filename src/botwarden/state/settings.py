"""A bot's state store, as its config's `state:` section says: the backend, where
each keeps its records, what recovery does with them, how long a processed signal
is remembered and how long the history is kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from botwarden.domain.models import Duration, format_duration
from botwarden.settings import Settings

Backend = Literal["memory", "sqlite", "duckdb", "jsonfile", "redis", "postgres"]
BACKENDS: tuple[str, ...] = Backend.__args__

DEFAULT_BACKEND: Backend = "sqlite"
"""The embedded default, chosen by measurement: see docs/benchmarks.md."""


class FileSettings(Settings):
    path: str
    """May contain `{flow_id}`; relative to the config file's folder."""


class SqliteSettings(FileSettings):
    path: str = "state/{flow_id}.db"


class DuckdbSettings(FileSettings):
    path: str = "state/{flow_id}.duckdb"


class JsonfileSettings(FileSettings):
    path: str = "state/{flow_id}.json"


class RedisSettings(Settings):
    url: str = "redis://localhost:6379/0"
    key_prefix: str = Field(default="bw", pattern=r"^[A-Za-z0-9_.:-]+$")


class PostgresSettings(Settings):
    dsn: str = "postgresql://localhost/botwarden"
    db_schema: str = Field(default="public", alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class RecoverySettings(Settings):
    mode: Literal["sync", "restore", "close_all", "manual"] = "sync"
    orphan_positions: Literal["close", "adopt", "manual"] = "close"
    max_state_age: Duration = timedelta(hours=24)
    on_stale: Literal["continue", "manual"] = "continue"
    """What a heartbeat older than `max_state_age` means: recover as usual (the venue is
    the truth anyway), or wait for an operator."""


MIN_KEEP = timedelta(days=1)
"""The shortest history retention takes: a day's trades and events stay on record."""


class HistorySettings(Settings):
    keep: Duration | None = None
    """How long the history (terminal orders, fills, closed trades, their days and the
    event log) is kept, by the time each thing ended; None: forever. Anything recovery
    needs is kept whatever its age (docs/state.md, "Retention")."""

    @field_validator("keep")
    @classmethod
    def _at_least_a_day(cls, keep: timedelta | None) -> timedelta | None:
        if keep is not None and keep < MIN_KEEP:
            raise ValueError(f"keep {format_duration(keep)} is too short: at least 1d")
        return keep


class LeaseSettings(Settings):
    """The lease that decides which one instance of a bot trades, on a store hosts
    share (redis, postgres): see docs/operating.md, "Several hosts, one store"."""

    ttl: Duration = timedelta(seconds=10)
    """How long a lease lasts unless renewed (four times a ttl): a killed instance's
    bot may be started elsewhere a ttl after its last renewal; an instance that cannot
    renew stops sending orders after 80% of it."""

    @field_validator("ttl")
    @classmethod
    def _sensible(cls, ttl: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= ttl <= timedelta(minutes=10):
            raise ValueError(f"ttl {format_duration(ttl)} is out of range: 1s to 10m")
        return ttl


class StateSettings(Settings):
    backend: Backend = DEFAULT_BACKEND
    sqlite: SqliteSettings = SqliteSettings()
    duckdb: DuckdbSettings = DuckdbSettings()
    jsonfile: JsonfileSettings = JsonfileSettings()
    redis: RedisSettings = RedisSettings()
    postgres: PostgresSettings = PostgresSettings()
    recovery: RecoverySettings = RecoverySettings()
    signal_retention: Duration = timedelta(days=7)
    """How long a processed signal id is remembered (de-duplication window)."""
    history: HistorySettings = HistorySettings()
    lease: LeaseSettings = LeaseSettings()


def resolve_path(template: str, flow_id: str, base_dir: Path) -> Path:
    path = Path(template.replace("{flow_id}", flow_id)).expanduser()
    return path if path.is_absolute() else base_dir / path
