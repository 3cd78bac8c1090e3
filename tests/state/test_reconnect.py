"""Shared stores outlive a dropped connection (a server restart, a failover, an idle
timeout): the bot is told when a write's fate is unknown, and the next call reconnects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botwarden.errors import StoreUnavailable
from botwarden.state.base import Change, Put
from tests.conftest import make_backend


async def test_postgres_reports_the_lost_write_then_reconnects(tmp_path: Path) -> None:
    import psycopg

    for backend in make_backend("postgres", tmp_path):
        store = backend.store()
        await store.open()
        await store.apply("bot", Change([Put("positions", "p1", {"v": 1})]))
        with psycopg.connect(backend.settings["postgres"]["dsn"], autocommit=True) as admin:
            # (only this store's: other tests run beside this one)
            mine = f"botwarden:{backend.settings['postgres']['schema']}"
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (mine,),
            ).fetchall()
            assert killed, f"the store's connection should be named {mine}"

        with pytest.raises(StoreUnavailable, match="may or may not have committed"):
            await store.apply("bot", Change([Put("positions", "p2", {"v": 2})]))
        await store.apply("bot", Change([Put("positions", "p3", {"v": 3})]))

        positions = (await store.load("bot"))["positions"]
        assert {json.loads(doc)["v"] for doc in positions.values()} == {1, 3}
        await store.close()


async def test_redis_replays_an_idempotent_write_on_a_new_connection(tmp_path: Path) -> None:
    """redis-py retries a command once its connection drops. That is safe for a
    change: it is a set of puts and deletes, so applying it twice leaves the same state."""
    import redis

    for backend in make_backend("redis", tmp_path):
        store = backend.store()
        await store.open()
        await store.apply("bot", Change([Put("positions", "p1", {"v": 1})]))
        admin = redis.Redis.from_url(backend.settings["redis"]["url"], decode_responses=True)
        mine = f"botwarden:{backend.settings['redis']['key_prefix']}"  # (not other tests')
        killed = [c["id"] for c in admin.client_list() if c.get("name") == mine]
        assert killed, f"the store's connection should be named {mine}"
        for client_id in killed:
            admin.client_kill_filter(_id=client_id)
        admin.close()

        await store.apply("bot", Change([Put("positions", "p2", {"v": 2})]))
        positions = (await store.load("bot"))["positions"]
        assert {json.loads(doc)["v"] for doc in positions.values()} == {1, 2}
        await store.close()
