"""The StateStore conformance suite: the same promises, checked against every backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botwarden.errors import FencedOut
from botwarden.state.base import HISTORY, LIVE, Change, Delete, KeyRange, Put, StateStore
from tests.conftest import Backend


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[StateStore]:
    store = backend.store()
    await store.open()
    yield store
    await store.close()


def docs(snapshot: dict[str, dict[str, str]], collection: str) -> dict[str, object]:
    """Decoded documents: backends may differ in JSON spacing, never in content."""
    return {key: json.loads(text) for key, text in snapshot[collection].items()}


async def test_a_new_bot_loads_every_live_collection_empty(store: StateStore) -> None:
    snapshot = await store.load("nobody")
    assert snapshot == {name: {} for name in LIVE}
    assert await store.epoch("nobody") == 0
    for name in HISTORY:
        assert await store.scan("nobody", name) == []
        assert await store.get("nobody", name, ["x"]) == {}


async def test_put_documents_load_back_equal(store: StateStore) -> None:
    position = {"id": "p1", "size": "1.5", "nested": {"list": [1, 2, None]}, "text": "é ✓"}
    await store.apply(
        "bot",
        Change(
            [
                Put("positions", "p1", position),
                Put("intents", "c1", {"status": "new"}),
                Put("meta", "risk", {"daily_pnl": "-3.2"}),
            ]
        ),
    )
    snapshot = await store.load("bot")
    assert docs(snapshot, "positions") == {"p1": position}
    assert docs(snapshot, "intents") == {"c1": {"status": "new"}}
    assert docs(snapshot, "meta") == {"risk": {"daily_pnl": "-3.2"}}


async def test_a_put_replaces_the_document_with_the_same_key(store: StateStore) -> None:
    await store.apply("bot", Change([Put("positions", "p1", {"size": "1"})]))
    await store.apply("bot", Change([Put("positions", "p1", {"size": "2"})]))
    assert docs(await store.load("bot"), "positions") == {"p1": {"size": "2"}}


async def test_delete_removes_only_that_record(store: StateStore) -> None:
    await store.apply(
        "bot", Change([Put("positions", "p1", {"a": 1}), Put("positions", "p2", {"a": 2})])
    )
    await store.apply("bot", Change([Delete("positions", "p1"), Delete("positions", "absent")]))
    assert docs(await store.load("bot"), "positions") == {"p2": {"a": 2}}


async def test_ops_on_one_key_in_one_change_apply_in_order(store: StateStore) -> None:
    await store.apply(
        "bot",
        Change(
            [
                Put("positions", "gone", {"v": 1}),
                Delete("positions", "gone"),
                Delete("positions", "back"),
                Put("positions", "back", {"v": 2}),
                Put("positions", "twice", {"v": 3}),
                Put("positions", "twice", {"v": 4}),
            ]
        ),
    )
    assert docs(await store.load("bot"), "positions") == {"back": {"v": 2}, "twice": {"v": 4}}


async def test_bots_are_namespaced(store: StateStore) -> None:
    assert await store.claim_epoch("alpha", 3) == 3
    await store.apply("alpha", Change([Put("positions", "p1", {"owner": "alpha"})], epoch=3))
    await store.apply("beta", Change([Put("positions", "p1", {"owner": "beta"})]))
    assert docs(await store.load("alpha"), "positions") == {"p1": {"owner": "alpha"}}
    assert docs(await store.load("beta"), "positions") == {"p1": {"owner": "beta"}}
    assert await store.flows() == ["alpha", "beta"]
    assert (await store.epoch("alpha"), await store.epoch("beta")) == (3, 0)


async def test_a_change_that_fails_halfway_leaves_nothing_applied(store: StateStore) -> None:
    await store.apply("bot", Change([Put("positions", "p0", {"v": "before"})]))
    broken = Change(
        [
            Put("positions", "p0", {"v": "after"}),
            Put("fills", "t1", {"qty": "1"}),
            Put("positions", "p1", {"price": float("nan")}),  # cannot be encoded
            Put("intents", "c1", {"status": "filled"}),
        ]
    )
    with pytest.raises(ValueError, match="JSON"):
        await store.apply("bot", broken)
    snapshot = await store.load("bot")
    assert docs(snapshot, "positions") == {"p0": {"v": "before"}}
    assert snapshot["intents"] == {}
    assert await store.get("bot", "fills", ["t1"]) == {}
    assert await store.scan("bot", "fills") == []


async def test_history_is_never_loaded_and_is_read_by_key(store: StateStore) -> None:
    await store.apply(
        "bot",
        Change(
            [
                Put("intents", "c2", {"status": "accepted"}),
                Put("past_intents", "c1", {"status": "filled"}),
                Put("fills", "T-9", {"qty": "1"}),
                Put("fills", "T-10", {"qty": "2"}),
                Put("events", "000000000001", {"kind": "fill"}),
            ]
        ),
    )
    await store.apply("other", Change([Put("fills", "T-9", {"qty": "other's"})]))
    snapshot = await store.load("bot")
    assert set(snapshot) == set(LIVE), "history stays in the store"
    assert docs(snapshot, "intents") == {"c2": {"status": "accepted"}}
    found = await store.get("bot", "fills", ["T-10", "absent", "T-9"])
    assert {key: json.loads(text) for key, text in found.items()} == {
        "T-9": {"qty": "1"},
        "T-10": {"qty": "2"},
    }
    assert list(await store.get("bot", "past_intents", ["c1"])) == ["c1"]
    assert await store.get("bot", "past_intents", []) == {}
    counts = [await store.count("bot", name) for name in ("fills", "events", "intents", "trades")]
    assert counts == [2, 1, 1, 0]


async def test_a_history_scan_is_in_key_order_within_its_bounds(store: StateStore) -> None:
    # Keys made to sort as time does: digits, upper and lower case, ':' and '-'.
    keys = [f"{n:012d}" for n in (1, 2, 10, 11, 100)] + ["2026-12-01T10:00:00Z:a", "A", "a"]
    await store.apply(
        "bot", Change([Put("events", key, {"n": i}) for i, key in enumerate(reversed(keys))])
    )
    every = sorted(keys)

    async def scanned(*args: Any, **kwargs: Any) -> list[str]:
        within = KeyRange(*args, **kwargs)
        return [key for key, _ in await store.scan("bot", "events", within)]

    assert await scanned() == every
    assert await scanned(newest_first=True) == every[::-1]
    assert await scanned(f"{2:012d}", f"{100:012d}") == [f"{n:012d}" for n in (2, 10, 11)]
    assert await scanned(f"{11:012d}", limit=2) == [f"{11:012d}", f"{100:012d}"]
    assert await scanned(stop=f"{11:012d}", limit=2, newest_first=True) == [
        f"{10:012d}",
        f"{2:012d}",
    ]
    assert await scanned("b") == []
    [(key, text)] = await store.scan("bot", "events", KeyRange("a"))
    assert (key, json.loads(text)) == ("a", {"n": 0})


async def test_deleting_history_removes_it_from_reads_and_scans(store: StateStore) -> None:
    await store.apply("bot", Change([Put("fills", f"T{n}", {"n": n}) for n in range(5)]))
    await store.apply("bot", Change([Delete("fills", "T1"), Delete("fills", "T3")]))
    assert [key for key, _ in await store.scan("bot", "fills")] == ["T0", "T2", "T4"]
    assert await store.get("bot", "fills", ["T1"]) == {}


async def test_a_record_moves_from_live_to_history_in_one_change(store: StateStore) -> None:
    await store.apply("bot", Change([Put("intents", "c1", {"status": "accepted"})]))
    await store.apply(
        "bot",
        Change([Delete("intents", "c1"), Put("past_intents", "c1", {"status": "filled"})]),
    )
    assert (await store.load("bot"))["intents"] == {}
    assert json.loads((await store.get("bot", "past_intents", ["c1"]))["c1"]) == {
        "status": "filled"
    }


async def test_fencing_refuses_writes_from_an_older_epoch(store: StateStore) -> None:
    assert await store.claim_epoch("bot") == 1
    await store.apply("bot", Change([Put("positions", "p1", {"by": "first"})], epoch=1))
    assert await store.claim_epoch("bot") == 2  # a new instance takes over
    assert await store.epoch("bot") == 2

    with pytest.raises(FencedOut) as refused:
        await store.apply("bot", Change([Put("positions", "p1", {"by": "zombie"})], epoch=1))
    assert (refused.value.epoch, refused.value.current) == (1, 2)

    await store.apply("bot", Change([Put("positions", "p2", {"by": "second"})], epoch=2))
    assert docs(await store.load("bot"), "positions") == {
        "p1": {"by": "first"},
        "p2": {"by": "second"},
    }
    assert await store.epoch("bot") == 2


async def test_an_epoch_the_store_never_granted_is_refused(store: StateStore) -> None:
    """Computed by an instance itself (the last epoch + 1, as two hosts starting at
    once would both compute), an epoch is not the store's: refused, nothing written."""
    await store.claim_epoch("bot")
    with pytest.raises(FencedOut, match="never granted") as refused:
        await store.apply("bot", Change([Put("positions", "p1", {"by": "self-made"})], epoch=2))
    assert (refused.value.epoch, refused.value.current) == (2, 1)
    with pytest.raises(FencedOut):  # nor on a bot the store has never heard of
        await store.apply("new", Change([Put("positions", "p1", {})], epoch=1))
    assert await store.load("bot") == {name: {} for name in LIVE}
    assert await store.load("new") == {name: {} for name in LIVE}
    assert (await store.epoch("bot"), await store.epoch("new")) == (1, 0)


async def test_an_epoch_is_granted_above_every_one_before_and_at_least_as_asked(
    store: StateStore,
) -> None:
    assert await store.claim_epoch("bot", 1_700_000_000) == 1_700_000_000
    assert await store.claim_epoch("bot", 5) == 1_700_000_001  # (never lower)
    assert await store.claim_epoch("bot") == 1_700_000_002
    assert await store.flows() == ["bot"]  # a claim registers the bot


async def test_an_unfenced_write_never_lowers_the_epoch(store: StateStore) -> None:
    await store.claim_epoch("bot", 5)
    await store.apply("bot", Change([Put("meta", "note", {"by": "operator tool"})]))
    assert await store.epoch("bot") == 5


async def test_instances_claiming_at_once_are_granted_distinct_epochs(
    durable_backend: Backend,
) -> None:
    """Two instances (two connections, as two hosts have) claim together, again and
    again: never the same epoch twice, and only the last granted can write."""
    stores = [durable_backend.store() for _ in range(2)]
    for each in stores:
        await each.open()
    try:
        granted: list[int] = []
        for _ in range(10):
            granted += await asyncio.gather(*(each.claim_epoch("bot") for each in stores))
        assert sorted(granted) == list(range(1, 21))
        newest = max(granted)
        for each in stores:
            with pytest.raises(FencedOut):
                await each.apply("bot", Change([Put("meta", "m", {})], epoch=newest - 1))
        await stores[0].apply("bot", Change([Put("meta", "m", {"by": newest})], epoch=newest))
    finally:
        for each in stores:
            await each.close()


async def test_an_empty_change_registers_the_bot(store: StateStore) -> None:
    await store.apply("quiet", Change([]))
    assert await store.flows() == ["quiet"]


async def test_a_large_change_is_applied_whole(store: StateStore) -> None:
    ops = [Put("positions", f"p{i:04d}", {"i": i}) for i in range(1500)]
    await store.apply("bot", Change(ops))
    assert len((await store.load("bot"))["positions"]) == 1500


def test_an_unknown_collection_is_refused_before_any_backend_sees_it() -> None:
    with pytest.raises(ValueError, match="unknown collection 'orders'"):
        Change([Put("orders", "x", {})])


async def test_state_survives_closing_and_reopening(durable_backend: Backend) -> None:
    first = durable_backend.store()
    await first.open()
    await first.claim_epoch("bot", 7)
    await first.apply("bot", Change([Put("positions", "p1", {"size": "3"})], epoch=7))
    await first.close()

    second = durable_backend.store()
    await second.open()
    try:
        assert docs(await second.load("bot"), "positions") == {"p1": {"size": "3"}}
        assert await second.epoch("bot") == 7
        assert await second.flows() == ["bot"]
    finally:
        await second.close()


async def test_memory_says_it_keeps_nothing() -> None:
    from botwarden.state.memory import MemoryStore

    store = MemoryStore()
    assert store.durable is False
    assert "nothing survives" in store.describe()
