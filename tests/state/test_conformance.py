"""The StateStore conformance suite: the same promises, checked against every backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from botwarden.errors import FencedOut
from botwarden.state.base import COLLECTIONS, Change, Delete, Put, StateStore
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


async def test_a_new_bot_loads_every_collection_empty(store: StateStore) -> None:
    snapshot = await store.load("nobody")
    assert snapshot == {name: {} for name in COLLECTIONS}
    assert await store.epoch("nobody") == 0


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
    assert snapshot["fills"] == {}


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
    assert snapshot["fills"] == {} and snapshot["intents"] == {}


async def test_fencing_refuses_writes_from_an_older_epoch(store: StateStore) -> None:
    await store.apply("bot", Change([Put("positions", "p1", {"by": "first"})], epoch=1))
    await store.apply("bot", Change([], epoch=2))  # a new instance takes over
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


async def test_an_unfenced_write_never_lowers_the_epoch(store: StateStore) -> None:
    await store.apply("bot", Change([], epoch=5))
    await store.apply("bot", Change([Put("meta", "note", {"by": "operator tool"})]))
    assert await store.epoch("bot") == 5


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
