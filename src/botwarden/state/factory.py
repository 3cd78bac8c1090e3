"""Build the configured backend. SDKs are imported only for the backend chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from botwarden.domain.models import Event, Fill
from botwarden.state.base import StateStore
from botwarden.state.history import History
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


@dataclass
class StoredBot:
    """A bot as stored, read by a command that only looks."""

    state: BotState
    """Its live state."""
    events: list[Event] = field(default_factory=list)
    """The events after the sequence number asked for, oldest first."""
    recent_events: list[Event] = field(default_factory=list)
    """The newest events, as many as asked for, oldest first."""
    fills: list[Fill] = field(default_factory=list)
    """The newest fills asked for, oldest first."""
    fill_count: int = 0
    """How many fills its history holds, when asked (`count_fills`: a count walks the
    fills' keys, which a look at every bot each second should not pay)."""

    @classmethod
    async def read(
        cls,
        store: StateStore,
        flow_id: str,
        *,
        events_after: int | None = None,
        newest_events: int = 0,
        newest_fills: int = 0,
        count_fills: bool = False,
    ) -> StoredBot:
        """From an open store: see `read_bot`."""
        state = decode(await store.load(flow_id), flow_id, store.describe())
        history = History(store, flow_id)
        events = [] if events_after is None else await history.events(after=events_after)
        recent = []
        if newest_events:
            recent = list(reversed(await history.events(limit=newest_events, newest_first=True)))
        fills = await history.recent_fills(newest_fills) if newest_fills else []
        count = await store.count(flow_id, "fills") if count_fills else 0
        return cls(state, events, recent, fills, count)


async def read_bot(
    settings: StateSettings,
    flow_id: str,
    base_dir: Path,
    *,
    events_after: int | None = None,
    newest_events: int = 0,
    newest_fills: int = 0,
    count_fills: bool = False,
) -> StoredBot:
    """A bot's state as stored, read without writing (another process may own it);
    empty if it has none yet. Looking never creates, changes or moves a state file.

    With it, from its history, the events after sequence `events_after`, the newest
    `newest_events` events, its newest `newest_fills` fills, and (`count_fills`) how
    many fills it has."""
    store = open_store(settings, flow_id, base_dir, readonly=True)
    path = getattr(store, "path", None)
    if path is not None and not path.exists():
        return StoredBot(BotState.empty(flow_id))
    await store.open()
    try:
        return await StoredBot.read(
            store,
            flow_id,
            events_after=events_after,
            newest_events=newest_events,
            newest_fills=newest_fills,
            count_fills=count_fills,
        )
    finally:
        await store.close()


async def read_state(settings: StateSettings, flow_id: str, base_dir: Path) -> BotState:
    """A bot's live state as stored; see `read_bot`."""
    return (await read_bot(settings, flow_id, base_dir)).state
