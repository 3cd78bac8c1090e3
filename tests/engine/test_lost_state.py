"""A state lost mid-life (emptied, garbage, or just missing a position) and a restart:
the bot knows itself again from the venue's records, keeps the stop that protects what
it holds, and never makes a client order id the venue has seen. Every promise is read
from the paper exchange's own book."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from botwarden.domain.orders import Purpose
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.engine.runner import Runner
from botwarden.errors import StateCorruptError, StateLost
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.base import OrderState
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.engine.harness import Exchange

BUSY = {"strategy": {"name": "coin_flip", "params": {"seed": 3}, "timeframe": "1h"}}


async def holding(exchange: Exchange) -> tuple[Runner, str]:
    """A bot that trades until it holds a position with its stop resting; the stop's id."""
    runner = await exchange.runner(**BUSY)
    for _ in range(24 * 10):
        await exchange.hours(runner, 1)
        state = await whole(runner.state)
        for position in state.positions.values():
            stop = state.intents.get(position.stop_client_order_id or "")
            if stop is not None and stop.status.value == "accepted":
                return runner, stop.client_order_id
    raise AssertionError("the coin never entered")


def venue_order(exchange: Exchange, client_order_id: str):
    (order,) = [o for o in exchange.book.all_orders() if o.client_order_id == client_order_id]
    return order


async def assert_the_bot_knows_itself_again(exchange: Exchange, first: Runner, stop: str) -> None:
    epoch_before = first.ctx.ids.epoch
    held_before = exchange.book.positions()
    runner = await exchange.runner(**BUSY)
    state = await whole(runner.state)
    assert any("STATE LOST" in e.message for e in state.events.values())
    assert runner.ctx.ids.epoch > epoch_before, "never an epoch of the lost life again"
    assert exchange.book.positions() == held_before, "the bot's own position is not sold"
    assert venue_order(exchange, stop).state is OrderState.OPEN, "its stop never canceled"
    (position,) = state.positions.values()
    assert position.stop_client_order_id == stop, "kept as the position's stop"
    await exchange.hours(runner, 24 * 3)  # every promise checked after every hour
    orders = exchange.book.all_orders()
    ids = [o.client_order_id for o in orders]
    assert len(ids) == len(set(ids))
    rejected = [o for o in orders if o.state is OrderState.REJECTED]
    assert rejected == [], "no order refused as a duplicate client order id"
    later = [i for i in (await whole(runner.state)).intents.values() if i.sent_by]
    assert any(i.purpose is Purpose.ENTRY and i.sent_by == runner.ctx.ids.epoch for i in later)
    await runner.state.close()


async def test_a_state_file_emptied_is_a_lost_state_rebuilt_from_the_venue(
    exchange: Exchange,
) -> None:
    """SQLite opens an empty file as a brand-new database: the bot used to start as a
    new bot at epoch 1, cancel its own position's stop and sell the position."""
    runner, stop = await holding(exchange)
    await runner.state.close()
    exchange.state_path.write_bytes(b"")
    await assert_the_bot_knows_itself_again(exchange, runner, stop)


async def test_a_garbage_state_is_rebuilt_above_every_epoch_the_venue_has_seen(
    exchange: Exchange,
) -> None:
    runner, stop = await holding(exchange)
    await runner.state.close()
    exchange.state_path.write_bytes(b"\x8f" * 8192)
    try:
        await StateManager("golden", SqliteStore(exchange.state_path)).open()
        raise AssertionError("garbage must not open")
    except StateCorruptError:
        pass  # moved aside: the next open starts empty
    await assert_the_bot_knows_itself_again(exchange, runner, stop)


async def test_a_position_its_own_fills_explain_is_the_bots_whatever_the_orphan_policy(
    exchange: Exchange,
) -> None:
    runner, stop = await holding(exchange)
    (position,) = (await whole(runner.state)).positions.values()
    assert position.stop_client_order_id == stop
    await runner.state.remove_position(position.id)  # lost from the state, not the venue
    held = exchange.book.positions()
    again = await exchange.runner(**BUSY, state={"recovery": {"orphan_positions": "close"}})
    assert exchange.book.positions() == held, "restored, not closed at market"
    state = await whole(again.state)
    assert any("its own fills at the venue explain it" in e.message for e in state.events.values())
    violations = check_promises(state, exchange.book, again.ctx.ids)
    assert violations == [], "\n".join(map(str, violations))
    assert venue_order(exchange, stop).state is OrderState.OPEN, "its stop kept"
    await exchange.hours(again, 24)
    await again.state.close()


async def test_an_older_copy_of_the_state_put_back_never_reuses_a_client_order_id(
    tmp_path: Path,
) -> None:
    """A backup restored over the state (or a file replaced by an older copy) is not
    empty: its epoch is one the venue has already seen. On Binance's rules the reused
    ids were accepted, and old and new orders shared them."""
    exchange = Exchange(tmp_path, client_ids="binance")
    runner = await exchange.runner(**BUSY)
    await exchange.hours(runner, 6)
    await runner.state.close()
    backup = exchange.state_path.read_bytes()
    for _ in range(3):  # later lives, with orders of their own
        runner = await exchange.runner(**BUSY)
        await exchange.hours(runner, 6)
        await runner.state.close()
    highest = max(ClientIds.epoch_of(o.client_order_id) for o in exchange.book.all_orders())
    for name in ("state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    exchange.state_path.write_bytes(backup)  # the older copy, put back
    runner = await exchange.runner(**BUSY)
    assert runner.ctx.ids.epoch > highest
    await exchange.hours(runner, 24)
    ids = [o.client_order_id for o in exchange.book.all_orders()]
    assert len(ids) == len(set(ids)), "no client order id twice at the venue"
    told = [e.message for e in (await whole(runner.state)).events.values()]
    assert any("an older copy of the state put back?" in m for m in told)
    await runner.state.close()


async def test_a_state_file_deleted_as_the_bot_starts_stops_it_saying_state_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleted between the store's opening and the instance's first write (a real
    campaign's trial did this): the start used to end as a bare "stopped by an error",
    and a deletion found during recovery was retried as if the store would come back."""
    exchange = Exchange(tmp_path)
    first, stop = await holding(exchange)
    await first.state.close()
    settings = first.settings
    state = StateManager("golden", SqliteStore(exchange.state_path), clock=exchange.clock)
    await state.open()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    runner = Runner(settings, state, PaperVenue(exchange.book, exchange.clock), exchange.clock)
    with caplog.at_level(logging.ERROR), pytest.raises(StateLost, match="was deleted"):
        await runner.start()
    assert any("STATE LOST" in r.getMessage() for r in caplog.records)
    assert venue_order(exchange, stop).state is OrderState.OPEN, "what it holds keeps its stop"
    await state.close()
