"""Build the configured backend. SDKs are imported only for the backend chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from botwarden.domain.models import Event, Fill
from botwarden.state.base import Snapshot, StateStore
from botwarden.state.history import History
from botwarden.state.records import BotState, decode
from botwarden.state.settings import StateSettings, resolve_path

if TYPE_CHECKING:
    from botwarden.state.lease import Leases


def open_store(
    settings: StateSettings,
    flow_id: str,
    base_dir: Path,
    *,
    readonly: bool = False,
    check: bool = True,
) -> StateStore:
    """The configured backend (not yet opened). SDKs are imported only when chosen.

    `readonly`, for commands that only look: the store never creates, lays out,
    upgrades or moves anything (a file, a Redis key, a PostgreSQL schema or table),
    reads an older layout as it is, and refuses writes. `check=False` with it, for
    looks taken again and again (`status`, the API): no integrity check at open (the
    bot's own open checks); damage in what is read is reported where it is read. The
    servers' stores run no integrity check at open, so take no `check`."""
    backend = settings.backend
    if backend == "memory":
        from botwarden.state.memory import MemoryStore

        return MemoryStore()
    if backend == "sqlite":
        from botwarden.state.sqlite import SqliteStore

        path = resolve_path(settings.sqlite.path, flow_id, base_dir)
        return SqliteStore(path, readonly, check)
    if backend == "duckdb":
        from botwarden.state.duckdb import DuckdbStore

        path = resolve_path(settings.duckdb.path, flow_id, base_dir)
        return DuckdbStore(path, readonly, check)
    if backend == "jsonfile":
        from botwarden.state.jsonfile import JsonFileStore

        return JsonFileStore(resolve_path(settings.jsonfile.path, flow_id, base_dir), readonly)
    if backend == "redis":
        from botwarden.state.redis import RedisStore

        return RedisStore(settings.redis.url, settings.redis.key_prefix, readonly=readonly)
    if backend == "postgres":
        from botwarden.state.postgres import PostgresStore

        return PostgresStore(settings.postgres.dsn, settings.postgres.db_schema, readonly=readonly)
    raise ValueError(f"unknown state backend {backend!r}")  # config validation prevents this


def open_leases(settings: StateSettings, store: StateStore, *, readonly: bool = False) -> Leases:
    """The leases of the configured backend (not yet opened): a server's on a store
    object of their own (their own connection), another host's those of `store`, the
    bot's own (`HostLeases`)."""
    from botwarden.state.lease import HostLeases

    backend = settings.backend
    if backend == "redis":
        from botwarden.state.redis import RedisLeases, RedisStore

        own = RedisStore(settings.redis.url, settings.redis.key_prefix, readonly=readonly)
        return RedisLeases(own)
    if backend == "postgres":
        from botwarden.state.postgres import PostgresLeases, PostgresStore

        own = PostgresStore(settings.postgres.dsn, settings.postgres.db_schema, readonly=readonly)
        return PostgresLeases(own)
    return HostLeases(store)


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
    async def read(cls, store: StateStore, flow_id: str, **asked: Unpack[Asked]) -> StoredBot:
        """From an open store: see `read_bot`."""
        return await StateReader().read(store, flow_id, **asked)


class Asked(TypedDict, total=False):
    """What a look asks of the history beside the live state (see `read_bot`)."""

    events_after: int | None
    newest_events: int
    newest_fills: int
    count_fills: bool


@dataclass(frozen=True)
class _Seen:
    records: Snapshot
    """The live state's records as read, encoded: what says the bot changed."""
    state: BotState
    recent_events: list[Event]
    newest_events: int


class StateReader:
    """Reads bots' states for a process that looks at them again and again (the API
    server, its watcher): a bot whose live state holds the same records as at the
    last read is not decoded again, nor are its newest events read again (an event is
    written with the ledger that counts it, which is in the live state).

    The live state itself is read at every look (one query of what the bot holds
    now), so what a bot changed is seen at the next look: the records are the key.
    What is returned is shared between looks: read it, never change it."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], _Seen] = {}
        self.decoded = 0
        """Live states decoded so far (a look at a bot that did not change adds none)."""

    async def read(
        self,
        store: StateStore,
        flow_id: str,
        *,
        events_after: int | None = None,
        newest_events: int = 0,
        newest_fills: int = 0,
        count_fills: bool = False,
    ) -> StoredBot:
        """From an open store: see `read_bot`."""
        where = store.describe()
        records = await store.load(flow_id)
        seen = self._seen.get((where, flow_id))
        if seen is None or seen.records != records:
            seen = None
            state = decode(records, flow_id, where)
            self.decoded += 1
        else:
            state = seen.state
        history = History(store, flow_id)
        events = [] if events_after is None else await history.events(after=events_after)
        if seen is not None and seen.newest_events >= newest_events:
            # (from 0 at most: a bot may hold fewer events than asked for)
            recent = seen.recent_events[max(0, len(seen.recent_events) - newest_events) :]
        else:
            newest = (
                await history.events(limit=newest_events, newest_first=True)
                if newest_events
                else []
            )
            recent = list(reversed(newest))
            self._seen[(where, flow_id)] = _Seen(records, state, recent, newest_events)
        fills = await history.recent_fills(newest_fills) if newest_fills else []
        count = await store.count(flow_id, "fills") if count_fills else 0
        return StoredBot(state, events, recent, fills, count)

    async def read_bot(
        self, settings: StateSettings, flow_id: str, base_dir: Path, **asked: Unpack[Asked]
    ) -> StoredBot:
        """`read_bot`, through what this reader has seen."""
        store = open_store(settings, flow_id, base_dir, readonly=True, check=False)
        path = getattr(store, "path", None)
        if path is not None and not path.exists():
            return StoredBot(BotState.empty(flow_id))
        await store.open()
        try:
            return await self.read(store, flow_id, **asked)
        finally:
            await store.close()


async def read_bot(
    settings: StateSettings, flow_id: str, base_dir: Path, **asked: Unpack[Asked]
) -> StoredBot:
    """A bot's state as stored, read without writing (another process may own it);
    empty if it has none yet. Looking never creates, changes, upgrades or moves a
    state file, and runs no integrity check (the bot's own open does).

    Asked (`Asked`), from its history: the events after sequence `events_after`, the
    newest `newest_events` events, its newest `newest_fills` fills, and (`count_fills`)
    how many fills it has."""
    return await StateReader().read_bot(settings, flow_id, base_dir, **asked)


async def read_state(settings: StateSettings, flow_id: str, base_dir: Path) -> BotState:
    """A bot's live state as stored; see `read_bot`."""
    return (await read_bot(settings, flow_id, base_dir)).state
