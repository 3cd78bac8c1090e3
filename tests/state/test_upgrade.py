"""A state written by layout 1 (fixtures/make_layout_1.py, run with that release's
code) upgrades on its first open by a writer, on every durable backend, in one
atomic step; a reader reads it as it is and changes nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botwarden.domain.orders import IntentStatus
from botwarden.state.base import SCHEMA_VERSION
from botwarden.state.factory import read_bot
from botwarden.state.manager import StateManager
from botwarden.state.settings import StateSettings
from tests.conftest import Backend, make_backend
from tests.state.as_stored import as_stored
from tests.state.test_manager import entry

LAYOUT_1 = Path(__file__).parent / "fixtures" / "layout_1"
FILES = {"sqlite": "state.sqlite", "duckdb": "state.duckdb", "jsonfile": "state.json"}
BOTS = ("alpha", "beta")


@pytest.fixture(params=["sqlite", "duckdb", "jsonfile", "redis", "postgres"])
def layout_1(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A backend holding the layout-1 fixture, put back as that version wrote it."""
    for backend in make_backend(request.param, tmp_path):
        settings = backend.settings
        if backend.name in FILES:
            shutil.copy(LAYOUT_1 / FILES[backend.name], settings[backend.name]["path"])
        elif backend.name == "redis":
            _restore_redis(settings["redis"]["url"], settings["redis"]["key_prefix"])
        else:
            _restore_postgres(settings["postgres"]["dsn"], settings["postgres"]["schema"])
        yield backend


def _restore_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    for key, stored in json.loads((LAYOUT_1 / "redis.json").read_text()).items():
        key = prefix + key.removeprefix("layout1")
        value = stored["value"]
        if stored["type"] == "hash":
            client.hset(key, mapping=value)
        elif stored["type"] == "set":
            client.sadd(key, *value)
        else:
            client.set(key, value)
    client.close()


def _restore_postgres(dsn: str, schema: str) -> None:
    import psycopg

    dump = json.loads((LAYOUT_1 / "postgres.json").read_text())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        # Layout 1's tables, as that version made them.
        conn.execute(
            "CREATE TABLE botwarden_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE botwarden_flows (flow_id TEXT PRIMARY KEY,"
            " epoch BIGINT NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "CREATE TABLE botwarden_records (flow_id TEXT NOT NULL, collection TEXT NOT NULL,"
            " key TEXT NOT NULL, doc JSONB NOT NULL, PRIMARY KEY (flow_id, collection, key))"
        )
        for row in dump["botwarden_schema"]:
            conn.execute(
                "INSERT INTO botwarden_schema VALUES (%s, %s)", (row["id"], row["version"])
            )
        for row in dump["botwarden_flows"]:
            conn.execute(
                "INSERT INTO botwarden_flows VALUES (%s, %s)", (row["flow_id"], row["epoch"])
            )
        for row in dump["botwarden_records"]:
            conn.execute(
                "INSERT INTO botwarden_records VALUES (%s, %s, %s, %s)",
                (row["flow_id"], row["collection"], row["key"], json.dumps(row["doc"])),
            )


def _stored_version(backend: Backend) -> int:
    """The layout version as the store holds it, read beside botwarden."""
    settings = backend.settings
    if backend.name == "jsonfile":
        document = json.loads(Path(settings["jsonfile"]["path"]).read_text())
        return document["botwarden_state"]["schema_version"]
    if backend.name == "redis":
        import redis

        client = redis.Redis.from_url(settings["redis"]["url"])
        version = int(client.get(f"{settings['redis']['key_prefix']}:schema"))
        client.close()
        return version
    if backend.name == "postgres":
        import psycopg

        with psycopg.connect(settings["postgres"]["dsn"]) as conn:
            schema = settings["postgres"]["schema"]
            return conn.execute(f"SELECT version FROM {schema}.botwarden_schema").fetchone()[0]
    path = settings[backend.name]["path"]
    if backend.name == "sqlite":
        import sqlite3

        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT version FROM botwarden_schema").fetchone()[0]
    import duckdb

    with duckdb.connect(path, read_only=True) as conn:
        return conn.execute("SELECT version FROM botwarden_schema").fetchone()[0]


def _bot_settings(backend: Backend) -> StateSettings:
    return StateSettings.model_validate(backend.settings)


async def test_a_writer_upgrades_layout_1_keeping_every_record(layout_1: Backend) -> None:
    assert _stored_version(layout_1) == 1
    for bot in BOTS:
        async with StateManager.from_config(
            bot, _bot_settings(layout_1), base_dir=layout_1.base_dir
        ) as state:
            live = await state.snapshot()
            assert {i.client_order_id: i.status for i in live.intents.values()} == {
                f"{bot}-1-1": IntentStatus.ACCEPTED,
                f"{bot}-1-4": IntentStatus.UNKNOWN,
                f"{bot}-1-5": IntentStatus.NEW,
            }, "only the intents not yet terminal stay live"
            past = {i.client_order_id: i.status for i in await state.history.orders()}
            assert past == {
                f"{bot}-1-0": IntentStatus.FILLED,
                f"{bot}-1-2": IntentStatus.CANCELED,
                f"{bot}-1-3": IntentStatus.REJECTED,
            }
            assert (await state.get_order(f"{bot}-1-0")).avg_price == 450.25
            assert [f.trade_id for f in await state.get_fills()] == [f"{bot}-T1"]
            assert await state.has_fill(f"{bot}-T1")
            assert [e.message for e in await state.history.events()] == [
                f"{bot} event {n}" for n in range(3)
            ]
            assert [p.id for p in live.positions.values()] == ["pos-alpha-1-0"]
            assert live.ledger.fills_cursor == "cursor-7"
            assert live.ledger.next_order_seq == 1 and live.ledger.next_event_seq == 3
            assert list(live.cooldowns) == ["QQQ"]
            assert list(live.signals) == [f"golden_cross:SPY:buy:{bot}"]
            assert str(live.risk.daily_pnl) == "12.5"
            assert await state.store.epoch(bot) == 1
            # And it goes on from there: a terminal intent of today's code is history.
            assert await state.claim() == 2
            await state.save_order(
                live.intents[f"{bot}-1-5"].cancel(live.intents[f"{bot}-1-5"].created_at)
            )
            assert f"{bot}-1-5" not in (await state.snapshot()).intents
    assert _stored_version(layout_1) == SCHEMA_VERSION


async def test_a_reader_reads_layout_1_as_it_is_and_changes_nothing(
    layout_1: Backend,
) -> None:
    before = as_stored(layout_1)
    stored = await read_bot(
        _bot_settings(layout_1),
        "alpha",
        layout_1.base_dir,
        events_after=0,
        newest_events=10,
        newest_fills=5,
        count_fills=True,
    )
    assert sorted(stored.state.intents) == ["alpha-1-1", "alpha-1-4", "alpha-1-5"]
    assert [p.symbol for p in stored.state.positions.values()] == ["SPY"]
    assert [e.message for e in stored.events] == ["alpha event 1", "alpha event 2"]
    assert [e.message for e in stored.recent_events] == [f"alpha event {n}" for n in range(3)]
    assert [f.trade_id for f in stored.fills] == ["alpha-T1"] and stored.fill_count == 1
    assert as_stored(layout_1) == before
    assert _stored_version(layout_1) == 1


@pytest.mark.parametrize("layout_1", ["sqlite", "duckdb"], indirect=True)
async def test_an_upgrade_that_fails_halfway_leaves_layout_1_whole(
    layout_1: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move and the new version number are one atomic step: a crash (here, an
    error at the second intent moved) leaves the old layout, which upgrades later."""
    store_class = type(layout_1.store())
    moved: list[Any] = []
    real_upsert = store_class._upsert

    def failing(self: Any, cursor: Any, row: Any) -> None:
        if moved:
            raise OSError("the disk went away")
        moved.append(row)
        real_upsert(self, cursor, row)

    monkeypatch.setattr(store_class, "_upsert", failing)
    settings = _bot_settings(layout_1)
    with pytest.raises(OSError, match="the disk went away"):
        await StateManager.from_config("alpha", settings, base_dir=layout_1.base_dir).open()
    assert _stored_version(layout_1) == 1
    monkeypatch.undo()
    async with StateManager.from_config("alpha", settings, base_dir=layout_1.base_dir) as state:
        assert len(await state.history.orders()) == 3
        assert len((await state.snapshot()).intents) == 3


LAYOUT_1_COLLECTIONS = ("positions", "intents", "fills", "signals", "cooldowns", "events", "meta")
"""The collections in the order layout 1's Redis script numbers them."""


@pytest.mark.parametrize("layout_1", ["sqlite", "duckdb", "redis", "postgres"], indirect=True)
async def test_a_process_of_layout_1_still_running_is_refused_after_the_upgrade(
    layout_1: Backend,
) -> None:
    """Layout 1 checks the version only at open: a bot of it running while a newer one
    upgrades the store must fail on its next write, not write a fill where layout 2
    never reads (to be recorded a second time after its restart). Its own writes, from
    fixtures/layout_1/writes.json, are what is refused."""
    async with StateManager.from_config(
        "alpha", _bot_settings(layout_1), base_dir=layout_1.base_dir
    ) as state:
        assert await state.has_fill("alpha-T1")
    writes = json.loads((LAYOUT_1 / "writes.json").read_text())
    fill = ("beta", "fills", "beta-T-after", json.dumps({"trade_id": "beta-T-after"}))
    settings = layout_1.settings
    if layout_1.name == "sqlite":
        import sqlite3

        with sqlite3.connect(settings["sqlite"]["path"]) as conn, pytest.raises(sqlite3.Error):
            conn.execute(writes["sql_upsert"]["?"], fill)
    elif layout_1.name == "duckdb":
        import duckdb

        # Layout 1's DuckDB store wrote by its one-column key (its `_upsert`'s insert).
        insert = (
            "INSERT INTO botwarden_records (id, flow_id, collection, key, doc)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        with duckdb.connect(settings["duckdb"]["path"]) as conn, pytest.raises(duckdb.Error):
            conn.execute(insert, ("beta/fills/beta-T-after", *fill))
    elif layout_1.name == "postgres":
        import psycopg

        with psycopg.connect(settings["postgres"]["dsn"]) as conn:
            conn.execute(f"SET search_path TO {settings['postgres']['schema']}")
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute(writes["sql_upsert"]["%s"], fill)
    else:
        import redis

        prefix = settings["redis"]["key_prefix"]
        client = redis.Redis.from_url(settings["redis"]["url"], decode_responses=True)
        keys = [f"{prefix}:flows", f"{prefix}:{{beta}}:epoch"]
        keys += [f"{prefix}:{{beta}}:{c}" for c in LAYOUT_1_COLLECTIONS]
        index = LAYOUT_1_COLLECTIONS.index("fills") + 1
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            client.eval(writes["redis_apply"], len(keys), *keys, "", "beta", "p", index, *fill[2:])
        client.close()
    async with StateManager.from_config(
        "beta", _bot_settings(layout_1), base_dir=layout_1.base_dir
    ) as state:
        assert not await state.has_fill("beta-T-after"), "nothing of it landed"
        assert [f.trade_id for f in await state.get_fills()] == ["beta-T1"]


async def test_a_redis_prefix_of_layout_1_with_no_bot_yet_upgrades(tmp_path: Path) -> None:
    """Only looked at so far by a release whose looks set the schema key (`status`,
    `serve`): the key set, no bot in it."""
    import redis

    for backend in make_backend("redis", tmp_path):
        settings = backend.settings["redis"]
        client = redis.Redis.from_url(settings["url"])
        client.set(f"{settings['key_prefix']}:schema", 1)
        client.close()
        async with StateManager.from_config(
            "alpha", _bot_settings(backend), base_dir=tmp_path
        ) as state:
            await state.save_order(entry())
        assert _stored_version(backend) == SCHEMA_VERSION
