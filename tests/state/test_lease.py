"""The lease conformance suite: the same promises of every shared lease (Redis,
PostgreSQL), each lease object on its own connection as two hosts would have, checked
against the store the bot's state is written to; and the one-host lease's epochs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from botwarden.errors import FencedOut
from botwarden.state.base import Change, Put, StateStore
from botwarden.state.factory import open_leases
from botwarden.state.lease import (
    SAFE_FRACTION,
    Holder,
    LeaseExpired,
    LeaseHeld,
    LeaseLost,
    Leases,
    Tenure,
)
from botwarden.state.settings import StateSettings
from tests.conftest import Backend, make_backend

A = Holder("host-a", 101, "token-a")
B = Holder("host-b", 202, "token-b")
TTL = 30.0


@pytest.fixture
async def store(server_backend: Backend) -> AsyncIterator[StateStore]:
    store = server_backend.store()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def hosts(server_backend: Backend, store: StateStore) -> AsyncIterator[Callable[[], Leases]]:
    """Leases as another host opens them: on a connection of their own, each call."""
    opened: list[Leases] = []

    def host() -> Leases:
        leases = open_leases(StateSettings.model_validate(server_backend.settings), store)
        opened.append(leases)
        return leases

    yield host
    for leases in opened:
        await leases.close()


async def opened(leases: Leases) -> Leases:
    await leases.open()
    return leases


async def test_the_first_holder_is_granted_the_lease_with_the_stores_next_epoch(
    hosts: Callable[[], Leases], store: StateStore
) -> None:
    await store.claim_epoch("bot", 4)  # (a bot that ran before leases)
    a = await opened(hosts())
    assert a.shared
    assert await a.acquire("bot", A, TTL) == 5
    assert await store.epoch("bot") == 5
    record = await a.read("bot")
    assert record is not None
    assert (record.epoch, record.holder, record.live, record.released) == (5, A, True, False)
    assert 29 < (record.expires_at - record.read_at).total_seconds() <= 30
    await store.apply("bot", Change([Put("meta", "m", {"by": "a"})], epoch=5))


async def test_a_second_start_elsewhere_is_refused_naming_the_holder(
    hosts: Callable[[], Leases], store: StateStore
) -> None:
    a, b = await opened(hosts()), await opened(hosts())
    await a.acquire("bot", A, TTL)
    with pytest.raises(LeaseHeld) as refused:
        await b.acquire("bot", B, TTL)
    message = str(refused.value)
    assert "bot bot is already running on host-a (pid 101), epoch 1, held " in message
    assert "renewed 0." in message and "--takeover" in message
    assert await store.epoch("bot") == 1, "a refused start is granted nothing"
    record = await b.read("bot")
    assert record is not None and record.holder == A
    await a.renew("bot", A, 1, TTL)  # the healthy holder goes on


async def test_a_takeover_fences_the_old_holder_out_of_the_lease_and_the_state(
    hosts: Callable[[], Leases], store: StateStore
) -> None:
    a, b = await opened(hosts()), await opened(hosts())
    await a.acquire("bot", A, TTL)
    assert await b.acquire("bot", B, TTL, takeover=True) == 2
    with pytest.raises(LeaseLost, match=r"lease of epoch 1 lost; the bot is held on host-b"):
        await a.renew("bot", A, 1, TTL)
    with pytest.raises(FencedOut):  # (its state writes, by the epoch)
        await store.apply("bot", Change([Put("meta", "m", {"by": "a"})], epoch=1))
    await a.release("bot", A, 1)  # letting go of what is not its own does nothing
    record = await a.read("bot")
    assert record is not None and (record.holder, record.epoch, record.live) == (B, 2, True)
    with pytest.raises(LeaseHeld, match="on host-b"):  # and it cannot come back unasked
        await a.acquire("bot", A, TTL)


async def test_an_expired_lease_is_granted_to_the_next_without_a_takeover(
    hosts: Callable[[], Leases],
) -> None:
    a, b = await opened(hosts()), await opened(hosts())
    await a.acquire("bot", A, 0.3)
    with pytest.raises(LeaseHeld):
        await b.acquire("bot", B, 0.3)
    await asyncio.sleep(0.5)
    record = await b.read("bot")
    assert record is not None and not record.live
    assert await b.acquire("bot", B, TTL) == 2
    with pytest.raises(LeaseLost):
        await a.renew("bot", A, 1, TTL)


async def test_a_lease_expired_but_granted_to_nobody_is_renewed(
    hosts: Callable[[], Leases],
) -> None:
    """The store was out of reach for longer than a ttl (the holder stopped sending
    orders meanwhile): nobody else took the bot, so it carries on under its epoch."""
    a = await opened(hosts())
    await a.acquire("bot", A, 0.2)
    await asyncio.sleep(0.3)
    await a.renew("bot", A, 1, TTL)
    record = await a.read("bot")
    assert record is not None and record.live and record.epoch == 1


async def test_a_released_lease_is_free_at_once(hosts: Callable[[], Leases]) -> None:
    a, b = await opened(hosts()), await opened(hosts())
    await a.acquire("bot", A, TTL)
    await a.release("bot", A, 1)
    record = await b.read("bot")
    assert record is not None and record.released and not record.live
    assert await b.acquire("bot", B, TTL) == 2
    with pytest.raises(LeaseLost):
        await a.renew("bot", A, 1, TTL)


async def test_its_holder_acquires_it_again_for_a_higher_epoch(
    hosts: Callable[[], Leases], store: StateStore
) -> None:
    """As a start does when the venue holds client ids of a higher epoch."""
    a = await opened(hosts())
    await a.acquire("bot", A, TTL)
    first = await a.read("bot")
    assert await a.acquire("bot", A, TTL, at_least=40) == 40
    again = await a.read("bot")
    assert first is not None and again is not None
    assert again.epoch == 40 and again.acquired_at == first.acquired_at
    assert await store.epoch("bot") == 40
    with pytest.raises(LeaseLost):  # (its own older epoch is gone too)
        await a.renew("bot", A, 1, TTL)


async def test_of_many_hosts_starting_at_once_exactly_one_is_granted(
    hosts: Callable[[], Leases], store: StateStore
) -> None:
    many = [await opened(hosts()) for _ in range(4)]
    holders = [Holder(f"host-{i}", i, f"token-{i}") for i in range(4)]
    for round_ in range(10):
        bot = f"bot-{round_}"
        answers = await asyncio.gather(
            *(leases.acquire(bot, h, TTL) for leases, h in zip(many, holders, strict=True)),
            return_exceptions=True,
        )
        granted = [answer for answer in answers if isinstance(answer, int)]
        refused = [answer for answer in answers if isinstance(answer, LeaseHeld)]
        assert (granted, len(refused)) == ([1], 3), answers
        assert await store.epoch(bot) == 1
    assert [record.bot_id for record in await many[0].every()] == [f"bot-{i}" for i in range(10)]


async def test_a_tenure_stops_orders_before_the_store_could_grant_the_lease_again(
    hosts: Callable[[], Leases],
) -> None:
    """Counted from when the renewal was sent, on the holder's monotonic clock."""
    now = [1000.0]
    a = await opened(hosts())
    tenure = Tenure(a, "bot", TTL, A, monotonic=lambda: now[0])
    assert not tenure.may_send  # (nothing acquired yet)
    await tenure.acquire()
    tenure.require()
    now[0] += TTL * SAFE_FRACTION - 0.01
    assert tenure.may_send
    now[0] += 0.02
    with pytest.raises(LeaseExpired, match=r"not renewed for 24\.0 s"):
        tenure.require()
    await tenure.renew()
    tenure.require()
    b = await opened(hosts())
    await b.acquire("bot", B, TTL, takeover=True)
    with pytest.raises(LeaseLost):
        await tenure.renew()
    with pytest.raises(LeaseLost):  # for good
        tenure.require()
    await tenure.release()  # (not its own: nothing let go)
    record = await b.read("bot")
    assert record is not None and record.live and record.holder == B


async def test_a_tenure_keeps_its_lease_renewed_in_the_background(
    hosts: Callable[[], Leases],
) -> None:
    a, b = await opened(hosts()), await opened(hosts())
    tenure = Tenure(a, "bot", 0.4, A)
    await tenure.acquire()
    tenure.keep()
    await asyncio.sleep(1.0)  # more than two ttls
    tenure.require()
    with pytest.raises(LeaseHeld):
        await b.acquire("bot", B, TTL)
    await tenure.release()
    assert await b.acquire("bot", B, TTL) == 2


async def test_a_reader_sees_leases_without_writing(
    hosts: Callable[[], Leases], server_backend: Backend, store: StateStore
) -> None:
    a = await opened(hosts())
    settings = StateSettings.model_validate(server_backend.settings)
    reader = open_leases(settings, store, readonly=True)
    await reader.open()
    try:
        assert await reader.read("bot") is None
        await a.acquire("bot", A, TTL)
        record = await reader.read("bot")
        assert record is not None and record.holder == A and record.live
        assert [r.bot_id for r in await reader.every()] == ["bot"]
        with pytest.raises(Exception, match="read-only"):
            await reader.acquire("other", B, TTL)
    finally:
        await reader.close()


@pytest.mark.parametrize("name", ["sqlite", "jsonfile", "memory"])
async def test_a_one_host_store_grants_epochs_and_leaves_the_rest_to_the_lock_file(
    name: str, tmp_path: Path
) -> None:
    for backend in make_backend(name, tmp_path):
        store = backend.store()
        await store.open()
        leases = open_leases(StateSettings.model_validate(backend.settings), store)
        assert not leases.shared
        assert await leases.acquire("bot", A, TTL) == 1
        assert await leases.acquire("bot", B, TTL) == 2  # (the lock file refused B before)
        assert await leases.read("bot") is None and await leases.every() == []
        tenure = Tenure(leases, "bot", TTL, A, monotonic=lambda: 0.0)
        await tenure.acquire()
        tenure.require()  # never expires
        assert tenure.epoch == 3 and await store.epoch("bot") == 3
        await store.close()


async def test_a_late_renewal_and_a_grant_never_both_succeed(hosts: Callable[[], Leases]) -> None:
    """The lease ran out; its holder renews just as another host asks for it: one of
    the two wins, never both (the other host told it may trade, the holder that it
    still holds the bot)."""
    a, b = await opened(hosts()), await opened(hosts())
    for round_ in range(12):
        bot = f"race-{round_}"
        epoch = await a.acquire(bot, A, 0.05)
        await asyncio.sleep(0.08)
        renewed, granted = await asyncio.gather(
            a.renew(bot, A, epoch, TTL), b.acquire(bot, B, TTL), return_exceptions=True
        )
        won = (renewed is None, isinstance(granted, int))
        assert won in ((True, False), (False, True)), (renewed, granted)
        assert isinstance(renewed, LeaseLost) or isinstance(granted, LeaseHeld)
    record = await b.read("race-0")
    assert record is not None and record.live


async def test_a_renewal_under_way_never_loses_the_lease_to_its_own_new_epoch(
    hosts: Callable[[], Leases],
) -> None:
    a = await opened(hosts())
    tenure = Tenure(a, "bot", TTL, A)
    await tenure.acquire()
    for at_least in (10, 20, 30):
        await asyncio.gather(tenure.renew(), tenure.acquire(at_least=at_least), tenure.renew())
        assert tenure.lost is None and tenure.epoch == at_least
    tenure.require()
