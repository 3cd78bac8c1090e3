"""A look at a bot (`status`, the API, the dashboard's watcher) reads what the bot
holds now, writes nothing (a file, a Redis key, a PostgreSQL row), runs no integrity
check, and does not decode again a bot that did not change; every change is seen at
the next look, however fast it came."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.models import Position, Side
from botwarden.errors import StateCorruptError
from botwarden.process.supervisor import Supervisor
from botwarden.state.factory import StateReader, StoredBot, open_store, read_bot
from botwarden.state.history import History
from botwarden.state.manager import StateManager
from botwarden.state.records import document
from botwarden.state.settings import StateSettings
from tests.conftest import FILE_BACKENDS, Backend
from tests.disks import read_only
from tests.state.as_stored import as_stored
from tests.state.files import fold_wal, state_file
from tests.state.test_manager import entry, fill
from tests.support.processes import CONFIG

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def position(bot: str, size: int, n: int = 0) -> Position:
    return Position(
        id=f"pos-{n}",
        bot_id=bot,
        symbol="SPY",
        side=Side.LONG,
        size=Decimal(size),
        entry_price=Decimal(100),
        entry_time=T0 + timedelta(minutes=n),
        stop_price=Decimal(98),
    )


async def traded(backend: Backend, bot: str = "bot", positions: int = 1) -> None:
    """A bot that ran: its positions, events, and a heartbeat; its store closed."""
    async with StateManager.from_config(bot, backend.settings, base_dir=backend.base_dir) as m:
        await m.claim()
        for n in range(positions):
            await m.save_position(position(bot, 10, n))
        async with m.transaction() as tx:
            for n in range(3):
                tx.add_event(T0, "status", f"event {n}")
        await m.heartbeat()


def settings_of(backend: Backend) -> StateSettings:
    return StateSettings.model_validate(backend.settings)


def files_as_they_are(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(params=FILE_BACKENDS)
def file_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name = request.param
    return Backend(
        name, {"backend": name, name: {"path": str(tmp_path / f"state.{name}")}}, tmp_path
    )


def test_a_look_writes_nothing_and_reads_a_folder_nobody_may_write(
    file_backend: Backend,
) -> None:
    """A stopped bot's SQLite state in a folder the reader may not write (a backup,
    another user's bot) could not be read at all: SQLite wanted to make its -shm."""
    asyncio.run(traded(file_backend))
    folder = file_backend.base_dir
    before = files_as_they_are(folder)

    with read_only(folder):
        stored = asyncio.run(read_bot(settings_of(file_backend), "bot", folder, events_after=0))

    assert list(stored.state.positions) == ["pos-0"]
    assert [e.message for e in stored.events] == ["event 1", "event 2"]
    assert stored.state.bot.seen_at is not None
    assert files_as_they_are(folder) == before, "a look changed a byte or a time"


def test_a_look_leaves_every_file_as_it_was(file_backend: Backend) -> None:
    asyncio.run(traded(file_backend))
    before = files_as_they_are(file_backend.base_dir)
    supervisor_reader = StateReader()
    for _ in range(3):
        asyncio.run(
            supervisor_reader.read_bot(settings_of(file_backend), "bot", file_backend.base_dir)
        )
    after = files_as_they_are(file_backend.base_dir)
    # (a reader of a WAL database may leave the empty -wal and -shm SQLite keeps beside)
    assert {name: after[name] for name in before} == before
    assert all(not after[name][0] or name.endswith("-shm") for name in set(after) - set(before))


async def look_at_everything(backend: Backend, bot: str = "bot") -> StoredBot:
    """What the looks read: `status`, `state show` and the dashboard's watcher (again
    and again), and the API's history pages; the last look's bot."""
    settings, folder = settings_of(backend), backend.base_dir
    store = open_store(settings, bot, folder, readonly=True)
    await store.open()
    try:
        history = History(store, bot)
        await history.trades(limit=10, newest_first=True)
        await history.days()
        await history.orders()
        await history.has_fill("T1")
        await store.flows()
        await store.epoch(bot)
    finally:
        await store.close()
    reader = StateReader()
    asked = {"events_after": 0, "newest_events": 5, "newest_fills": 5, "count_fills": True}
    for _ in range(2):
        stored = await reader.read_bot(settings, bot, folder, **asked)
    return stored


async def test_a_look_at_a_server_never_written_creates_nothing(
    server_backend: Backend,
) -> None:
    """No Redis key, no PostgreSQL schema: it holds no bots, and stays so."""
    assert as_stored(server_backend) == {}

    stored = await look_at_everything(server_backend)

    assert stored.state.positions == {} and stored.state.bot.seen_at is None
    assert stored.fill_count == 0 and stored.fills == [] and stored.events == []
    assert as_stored(server_backend) == {}, "a look created something"


async def test_a_look_at_a_server_store_changes_nothing(server_backend: Backend) -> None:
    """Every key and row as it was, down to the bytes of a Redis value and the
    transaction that last wrote a PostgreSQL row."""
    await traded(server_backend)
    async with StateManager.from_config(
        "bot", server_backend.settings, base_dir=server_backend.base_dir
    ) as m:
        await m.claim()
        sent = entry("bot-1-000001").submit(T0, 1)
        await m.save_order(sent)
        await m.record_fill(fill(), intent=sent.fill(T0, Decimal(10), Decimal(450)))
    before = as_stored(server_backend)

    stored = await look_at_everything(server_backend)

    assert list(stored.state.positions) == ["pos-0"]
    assert [f.trade_id for f in stored.fills] == ["T1"] and stored.fill_count == 1
    assert [e.message for e in stored.events][:2] == ["event 1", "event 2"]
    assert as_stored(server_backend) == before, "a look changed what is stored"


def test_a_look_runs_no_integrity_check(tmp_path: Path) -> None:
    """The bot's own open checks its live records (and moves a damaged file aside); a
    look, taken of every bot each second, reads what it shows and no more: damage in
    another bot's records of a shared file is for that bot's start to find."""
    backend = Backend(
        "sqlite", {"backend": "sqlite", "sqlite": {"path": str(tmp_path / "s.db")}}, tmp_path
    )
    asyncio.run(traded(backend, "a"))
    asyncio.run(traded(backend, "b", positions=300))  # after a's records, to the file's end
    fold_wal(backend)
    path = state_file(backend)
    raw = bytearray(path.read_bytes())
    for page in range(len(raw) // 4096 - 8, len(raw) // 4096):  # b's last leaves
        raw[page * 4096 + 100 : page * 4096 + 164] = b"\xde\xad\xbe\xef" * 16
    path.write_bytes(bytes(raw))

    stored = asyncio.run(read_bot(settings_of(backend), "a", tmp_path))
    assert list(stored.state.positions) == ["pos-0"]

    checked = open_store(settings_of(backend), "a", tmp_path, readonly=True)
    with pytest.raises(StateCorruptError, match="left as it is"):
        asyncio.run(checked.open())
    with pytest.raises(StateCorruptError, match="left as it is"):  # b's own look: said
        asyncio.run(read_bot(settings_of(backend), "b", tmp_path))
    assert path.read_bytes() == bytes(raw)


def test_a_bot_that_did_not_change_is_not_decoded_again(file_backend: Backend) -> None:
    asyncio.run(traded(file_backend))
    reader = StateReader()
    settings, folder = settings_of(file_backend), file_backend.base_dir

    looks = [
        asyncio.run(reader.read_bot(settings, "bot", folder, newest_events=2)) for _ in range(3)
    ]
    assert reader.decoded == 1
    assert all(look.state is looks[0].state for look in looks)
    assert [e.message for e in looks[-1].recent_events] == ["event 1", "event 2"]
    # More than the bot holds: all of them, at the next look too (it once lost some).
    for _ in range(2):
        more = asyncio.run(reader.read_bot(settings, "bot", folder, newest_events=5))
        assert [e.message for e in more.recent_events] == [f"event {n}" for n in range(3)]

    async def beat() -> None:
        async with StateManager.from_config("bot", file_backend.settings, base_dir=folder) as m:
            await m.claim()
            await m.heartbeat()

    asyncio.run(beat())
    changed = asyncio.run(reader.read_bot(settings, "bot", folder, newest_events=2))
    assert reader.decoded == 2
    assert changed.state.bot.seen_at != looks[0].state.bot.seen_at


async def test_every_change_is_seen_at_the_next_look(durable_backend: Backend) -> None:
    """Changes as fast as the store takes them, some keeping every record's size (a
    file's size and time would not tell them apart): each look equals a fresh read."""
    backend = durable_backend
    reader = StateReader()
    settings, folder = settings_of(backend), backend.base_dir

    async def look() -> StoredBot:
        return await reader.read_bot(settings, "bot", folder, events_after=-1, newest_events=5)

    async def fresh() -> StoredBot:
        return await StateReader().read_bot(
            settings, "bot", folder, events_after=-1, newest_events=5
        )

    def shown(stored: StoredBot) -> str:
        state = stored.state
        return json.dumps(
            {
                "bot": document(state.bot),
                "positions": [document(p) for p in state.positions.values()],
                "ledger": document(state.ledger),
                "events": [document(e) for e in stored.events],
                "recent": [document(e) for e in stored.recent_events],
            },
            sort_keys=True,
        )

    manager = StateManager.from_config("bot", backend.settings, base_dir=folder)
    changes = [
        lambda m: m.save_position(position("bot", 10)),
        lambda m: m.save_position(position("bot", 11)),  # same size of record
        lambda m: m.save_position(position("bot", 12)),
        lambda m: m.heartbeat(),
        lambda m: m.set_cooldown("SPY", timedelta(hours=1)),
        lambda m: m.remove_position("pos-0"),
    ]
    seen = []
    for n, change in enumerate(changes):
        await manager.open()
        if n == 0:
            await manager.claim()
        await change(manager)
        async with manager.transaction() as tx:
            tx.add_event(T0, "status", f"after change {n}")
        await manager.close()  # (DuckDB: one process at a time, and a look is another)
        ours, theirs = await look(), await fresh()
        assert shown(ours) == shown(theirs), f"change {n} not seen"
        seen.append(shown(ours))
    assert len(set(seen)) == len(changes)
    assert reader.decoded == len(changes)


def test_a_config_edited_is_read_again_by_the_next_look(
    botwarden_home: Path, tmp_path: Path
) -> None:
    """Even when its edit keeps the file's size and time: a look compares the bytes."""
    config = tmp_path / "bot.yaml"
    config.write_text(CONFIG)
    supervisor = Supervisor(botwarden_home)
    bot = supervisor.register(config)
    first = asyncio.run(supervisor.report(bot))
    assert first.strategy == "golden_cross"
    assert asyncio.run(supervisor.report(bot)) == first

    was = config.stat()
    old = "golden_cross, params: {fast: 3, slow: 8}"
    new = "coin_flip, params: {seed: 3}"
    config.write_text(CONFIG.replace(old, new.replace(" ", " " * (1 + len(old) - len(new)), 1)))
    os.utime(config, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert config.stat().st_size == was.st_size

    assert asyncio.run(supervisor.report(bot)).strategy == "coin_flip"
