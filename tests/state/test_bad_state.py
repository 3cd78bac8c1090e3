"""Corrupt, truncated, misconfigured and too-new state: a clear error, and not one
byte lost; a store opened only to read never moves or changes anything."""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from botwarden.errors import SchemaVersionError, StateCorruptError, StateError, WrongBackend
from botwarden.state.base import HISTORY, SCHEMA_VERSION, Change, Put
from botwarden.state.manager import StateManager
from tests.conftest import FILE_BACKENDS, Backend
from tests.state.as_stored import as_stored
from tests.state.files import (
    empty,
    file_backend_at,
    fingerprint,
    fold_wal,
    garble,
    read_only_store,
    set_aside_copies,
    state_file,
    truncate,
    write_some_state,
    zero_header,
)


@pytest.mark.parametrize("damage", [truncate, zero_header, garble], ids=lambda f: f.__name__)
async def test_a_damaged_state_file_is_moved_aside_untouched(file_backend: Backend, damage) -> None:
    await write_some_state(file_backend)
    path = state_file(file_backend)
    fold_wal(file_backend)
    damage(path)
    damaged_bytes = path.read_bytes()

    store = file_backend.store()
    with pytest.raises(StateCorruptError) as caught:
        await store.open()

    error = caught.value
    assert str(path) in str(error) and "corrupt" in str(error)
    assert error.moved_to is not None and error.moved_to.name.startswith(path.name + ".corrupt-")
    assert error.moved_to.read_bytes() == damaged_bytes, "the bad file must be kept byte for byte"
    assert not path.exists()

    # The bot can now start afresh (from the venue's truth) without touching the copy.
    fresh = file_backend.store()
    await fresh.open()
    assert (await fresh.load("bot"))["positions"] == {}
    await fresh.apply("bot", Change([Put("positions", "new", {})]))
    await fresh.close()
    assert error.moved_to.read_bytes() == damaged_bytes


FORMAT_NAMES = {"sqlite": "a SQLite database", "duckdb": "a DuckDB database", "jsonfile": "JSON"}


def another_backends_file(path: Path) -> None:
    """Healthy state of another backend in its place: what a config naming the wrong
    backend (jsonfile over the SQLite file, say) meets."""
    path.unlink()
    if path.suffix == ".jsonfile":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE botwarden_schema (id INTEGER PRIMARY KEY, version INTEGER)")
        return
    document = {"botwarden_state": {"schema_version": SCHEMA_VERSION}, "flows": {"bot": {}}}
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "damage",
    [empty, truncate, zero_header, garble, another_backends_file],
    ids=lambda f: f.__name__,
)
async def test_a_store_opened_to_read_reports_a_bad_file_and_leaves_it_as_it_is(
    file_backend: Backend, damage: Callable[[Path], None]
) -> None:
    """`state show` with a config naming the wrong backend once called a healthy file
    corrupt and moved it aside: the next `run` started as a new bot."""
    await write_some_state(file_backend)
    fold_wal(file_backend)
    path = state_file(file_backend)
    damage(path)
    before = fingerprint(path)

    with pytest.raises(StateError) as caught:
        await read_only_store(file_backend).open()

    assert isinstance(caught.value, StateCorruptError | WrongBackend)
    assert str(path) in str(caught.value) and "left as it is" in str(caught.value)
    assert fingerprint(path) == before, "a reader changed the state file"
    assert not set_aside_copies(path)


async def test_reading_healthy_state_changes_no_byte_and_writes_nothing(
    durable_backend: Backend,
) -> None:
    await write_some_state(durable_backend)
    before = as_stored(durable_backend)

    store = read_only_store(durable_backend)
    await store.open()
    assert len((await store.load("bot"))["positions"]) == 200
    assert await store.flows() == ["bot"]
    with pytest.raises(StateError, match="opened read-only, not for writing"):
        await store.apply("bot", Change([Put("positions", "p0", {"i": "changed"})]))
    with pytest.raises(StateError, match="opened read-only, not for writing"):
        await store.apply("new-bot", Change([Put("positions", "p0", {"i": 0})]))
    await store.close()

    assert as_stored(durable_backend) == before
    if durable_backend.name in FILE_BACKENDS:
        assert not set_aside_copies(state_file(durable_backend))


async def test_a_store_opened_to_read_creates_no_file(file_backend: Backend) -> None:
    path = state_file(file_backend)
    moved = file_backend_at(file_backend.name, path.parent / "not-yet" / path.name)
    with pytest.raises(StateError, match="does not exist"):
        await read_only_store(moved).open()
    assert not (path.parent / "not-yet").exists()


@pytest.mark.parametrize(
    ("configured", "written"),
    [
        pytest.param(configured, written, id=f"{configured}-config-{written}-file")
        for configured, written in itertools.permutations(FILE_BACKENDS, 2)
    ],
)
async def test_a_file_of_another_backend_is_a_config_mistake_never_moved(
    tmp_path: Path, configured: str, written: str
) -> None:
    """Even a store that may write: the file is healthy, the config is wrong."""
    path = tmp_path / "state.file"
    written_backend = file_backend_at(written, path)
    await write_some_state(written_backend)
    fold_wal(written_backend)
    before = fingerprint(path)

    with pytest.raises(WrongBackend) as caught:
        await file_backend_at(configured, path).store().open()

    message = str(caught.value)
    assert f"{path} is {FORMAT_NAMES[written]}" in message
    assert f"the config says state.backend {configured}" in message
    assert caught.value.exit_code == 2
    assert fingerprint(path) == before
    assert not set_aside_copies(path)
    # The right config still finds the bot.
    store = written_backend.store()
    await store.open()
    assert await store.flows() == ["bot"]
    await store.close()


async def test_a_second_corruption_never_overwrites_the_first_copy(tmp_path: Path) -> None:
    from botwarden.state.jsonfile import JsonFileStore

    path = tmp_path / "state.json"
    copies = []
    for content in (b"{ first broken", b"{ second broken"):
        path.write_bytes(content)
        with pytest.raises(StateCorruptError) as caught:
            await JsonFileStore(path).open()
        copies.append(caught.value.moved_to)
    assert copies[0] != copies[1]
    assert copies[0].read_bytes() == b"{ first broken"
    assert copies[1].read_bytes() == b"{ second broken"


async def test_an_empty_jsonfile_is_corrupt_not_a_fresh_start(tmp_path: Path) -> None:
    from botwarden.state.jsonfile import JsonFileStore

    path = tmp_path / "state.json"
    path.write_bytes(b"")
    with pytest.raises(StateCorruptError, match="empty"):
        await JsonFileStore(path).open()


def set_stored_version(backend: Backend, version: int) -> None:
    name = backend.name
    if name == "sqlite":
        with sqlite3.connect(state_file(backend)) as conn:
            conn.execute("UPDATE botwarden_schema SET version = ?", (version,))
    elif name == "duckdb":
        import duckdb

        with duckdb.connect(str(state_file(backend))) as conn:
            conn.execute("UPDATE botwarden_schema SET version = ?", [version])
    elif name == "jsonfile":
        path = state_file(backend)
        document = json.loads(path.read_text())
        document["botwarden_state"]["schema_version"] = version
        path.write_text(json.dumps(document))
    elif name == "redis":
        import redis

        settings = backend.settings["redis"]
        client = redis.Redis.from_url(settings["url"])
        client.set(f"{settings['key_prefix']}:schema", version)
        client.close()
    elif name == "postgres":
        import psycopg

        settings = backend.settings["postgres"]
        with psycopg.connect(settings["dsn"], autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{settings["schema"]}".botwarden_schema SET version = %s', (version,)
            )


async def test_state_from_a_newer_schema_is_refused_and_left_alone(
    durable_backend: Backend,
) -> None:
    await write_some_state(durable_backend)
    set_stored_version(durable_backend, SCHEMA_VERSION + 1)
    before = as_stored(durable_backend)

    for store in (durable_backend.store(), read_only_store(durable_backend)):  # a bot, a look
        with pytest.raises(SchemaVersionError) as caught:
            await store.open()

        assert f"schema version {SCHEMA_VERSION + 1}" in str(caught.value)
        assert "upgrade botwarden" in str(caught.value)
    assert as_stored(durable_backend) == before
    if durable_backend.name in FILE_BACKENDS:
        assert not list(state_file(durable_backend).parent.glob("*.corrupt-*"))


def stored_version(backend: Backend) -> int:
    name = backend.name
    if name in ("sqlite", "duckdb"):
        module = sqlite3 if name == "sqlite" else __import__("duckdb")
        conn = module.connect(str(state_file(backend)))
        try:
            return conn.execute("SELECT version FROM botwarden_schema").fetchone()[0]
        finally:
            conn.close()
    if name == "jsonfile":
        return json.loads(state_file(backend).read_text())["botwarden_state"]["schema_version"]
    if name == "redis":
        import redis

        settings = backend.settings["redis"]
        client = redis.Redis.from_url(settings["url"])
        try:
            return int(client.get(f"{settings['key_prefix']}:schema"))
        finally:
            client.close()
    import psycopg

    settings = backend.settings["postgres"]
    with psycopg.connect(settings["dsn"], autocommit=True) as conn:
        query = f'SELECT version FROM "{settings["schema"]}".botwarden_schema'
        return conn.execute(query).fetchone()[0]


async def test_the_schema_version_is_stored_by_every_durable_backend(
    durable_backend: Backend,
) -> None:
    await write_some_state(durable_backend)
    assert stored_version(durable_backend) == SCHEMA_VERSION


async def test_an_invalid_record_names_the_record_and_the_field(backend: Backend) -> None:
    store = backend.store()
    await store.open()
    await store.apply("bot", Change([Put("positions", "p1", {"id": "p1", "size": "lots"})]))
    await store.close()

    manager = StateManager("bot", backend.store())
    with pytest.raises(StateError, match=r"record positions/p1 is invalid at"):
        await manager.open()


@pytest.mark.parametrize(
    ("collection", "key", "record", "complaint"),
    [
        ("positions", "WRONG", {"id": "p1"}, "positions/WRONG holds id 'p1'"),
        ("intents", "c-other", {"client_order_id": "c1"}, "holds client_order_id 'c1'"),
        ("fills", "T-other", {"trade_id": "T1"}, "holds trade_id 'T1'"),
        ("past_intents", "c-other", {"client_order_id": "c1"}, "holds client_order_id 'c1'"),
        ("positions", "p1", {"id": "p1", "bot_id": "somebody_else"}, "belongs to bot"),
    ],
)
async def test_a_record_filed_under_another_id_or_bot_is_refused(
    backend: Backend, collection: str, key: str, record: dict, complaint: str
) -> None:
    """Loaded as is, it would be a second copy of the same position or order the moment
    the bot saved it again."""
    from tests.state.test_manager import T0, entry, fill, position

    valid = {
        "positions": lambda: position().model_dump(mode="json"),
        "intents": lambda: entry().model_dump(mode="json"),
        "past_intents": lambda: entry().cancel(T0).model_dump(mode="json"),
        "fills": lambda: fill().model_dump(mode="json"),
    }[collection]()
    store = backend.store()
    await store.open()
    await store.apply("bot", Change([Put(collection, key, {**valid, **record})]))
    await store.close()

    manager = StateManager("bot", backend.store())
    if collection in HISTORY:  # history is not loaded at open: checked where it is read
        await manager.open()
        read = manager.get_fills() if collection == "fills" else manager.get_order(key)
        with pytest.raises(StateError, match=complaint):
            await read
        await manager.close()
        return
    with pytest.raises(StateError, match=complaint):
        await manager.open()


async def test_a_wrong_typed_redis_key_leaves_the_change_unapplied(tmp_path: Path) -> None:
    """Redis never rolls a script back, so the script must check before its first write."""
    import redis

    from tests.conftest import make_backend

    for backend in make_backend("redis", tmp_path):
        store = backend.store()
        await store.open()
        await store.claim_epoch("bot")
        await store.apply("bot", Change([Put("positions", "p0", {"v": "before"})], epoch=1))
        prefix = backend.settings["redis"]["key_prefix"]
        client = redis.Redis.from_url(backend.settings["redis"]["url"], decode_responses=True)
        client.set(f"{prefix}:{{bot}}:history:fills", "an operator's mistake")

        with pytest.raises(StateError, match="WRONGTYPE"):
            await store.apply(
                "bot",
                Change([Put("positions", "p0", {"v": "after"}), Put("fills", "t1", {})], epoch=2),
            )
        assert client.hget(f"{prefix}:{{bot}}:positions", "p0") == '{"v":"before"}'
        assert await store.epoch("bot") == 1
        client.close()
        await store.close()


@pytest.mark.parametrize("name", ["sqlite", "duckdb"])
async def test_garbage_that_begins_with_a_brace_is_damage_not_a_json_state(
    tmp_path: Path, name: str
) -> None:
    """Found by the simulator (seed 5468 of 10,000): random bytes whose first is `{`
    were named JSON, "another backend's file", and the bot refused to start instead of
    rebuilding; only a JSON object is a jsonfile's state."""
    backend = file_backend_at(name, tmp_path / f"state.{name}")
    await write_some_state(backend)
    fold_wal(backend)
    path = state_file(backend)
    path.write_bytes(b"{" + random.Random(5468).randbytes(8191))
    with pytest.raises(StateCorruptError):
        await read_only_store(backend).open()
