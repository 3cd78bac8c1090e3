"""Build the configured backend. SDKs are imported only for the backend chosen."""

from __future__ import annotations

from pathlib import Path

from botwarden.state.base import StateStore
from botwarden.state.records import BotState, decode
from botwarden.state.settings import StateSettings, resolve_path


def open_store(
    settings: StateSettings, flow_id: str, base_dir: Path, *, readonly: bool = False
) -> StateStore:
    """The configured backend (not yet opened). SDKs are imported only when chosen.

    `readonly`, for commands that only look: a file store never creates, lays out or
    moves its file, and refuses writes. The servers' stores do not take it yet."""
    backend = settings.backend
    if backend == "memory":
        from botwarden.state.memory import MemoryStore

        return MemoryStore()
    if backend == "sqlite":
        from botwarden.state.sqlite import SqliteStore

        return SqliteStore(resolve_path(settings.sqlite.path, flow_id, base_dir), readonly)
    if backend == "duckdb":
        from botwarden.state.duckdb import DuckdbStore

        return DuckdbStore(resolve_path(settings.duckdb.path, flow_id, base_dir), readonly)
    if backend == "jsonfile":
        from botwarden.state.jsonfile import JsonFileStore

        return JsonFileStore(resolve_path(settings.jsonfile.path, flow_id, base_dir), readonly)
    if backend == "redis":
        from botwarden.state.redis import RedisStore

        return RedisStore(settings.redis.url, settings.redis.key_prefix)
    if backend == "postgres":
        from botwarden.state.postgres import PostgresStore

        return PostgresStore(settings.postgres.dsn, settings.postgres.db_schema)
    raise ValueError(f"unknown state backend {backend!r}")  # config validation prevents this


async def read_state(settings: StateSettings, flow_id: str, base_dir: Path) -> BotState:
    """A bot's state as stored, read without writing (another process may own it);
    empty if it has none yet. Looking never creates, changes or moves a state file."""
    store = open_store(settings, flow_id, base_dir, readonly=True)
    path = getattr(store, "path", None)
    if path is not None and not path.exists():
        return BotState.empty(flow_id)
    await store.open()
    try:
        return decode(await store.load(flow_id), flow_id, store.describe())
    finally:
        await store.close()
