"""A real trial's past (`torture --real --history N`): the bot's closed round trips,
written on the exchange's side and in the bot's state as a bot that had traded them
would have left them, so that every promise holds over them unchanged; and what of
them a trial lost or rewrote is told."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")

from botwarden.config import load_config
from botwarden.engine.checks import check_promises
from botwarden.engine.ids import ClientIds
from botwarden.state.base import Change, Delete, Put
from botwarden.state.history import WholeState
from botwarden.state.manager import StateManager
from botwarden.torture import past
from botwarden.torture.processes import Exchange
from botwarden.torture.real import STILL
from botwarden.torture.real_venues import ALPACA, KEY, SECRET, VENUES, RealVenue, write_config


def seeded(folder: Path, venue: RealVenue, records: int) -> tuple[Path, Exchange, past.Past]:
    exchange = Exchange(folder, venue.api, 7, KEY, SECRET)
    config = write_config(folder, venue, exchange, random.Random(7))
    try:
        written = past.seed(config, venue, exchange, records, random.Random(7), STILL)
    finally:
        exchange.stop()
    return config, exchange, written


async def whole_state(config_path: Path) -> WholeState:
    config = load_config(config_path)
    async with StateManager.from_config(config.bot_id, config) as manager:
        return await WholeState.read(await manager.snapshot(), manager.history)


async def change(config_path: Path, *ops: Put | Delete) -> None:
    config = load_config(config_path)
    async with StateManager.from_config(config.bot_id, config) as manager:
        await manager.store.apply(config.bot_id, Change(ops, epoch=past.EPOCH))


@pytest.mark.parametrize("venue", VENUES, ids=lambda v: v.name)
def test_a_seeded_past_keeps_every_promise_as_written(tmp_path: Path, venue: RealVenue) -> None:
    config, exchange, written = seeded(tmp_path, venue, 400)
    state = asyncio.run(whole_state(config))
    book = exchange.open_book()
    try:
        ids = ClientIds(state.bot.bot_id, past.EPOCH)
        mine = [o for o in book.all_orders() if ids.owns(o.client_order_id)]
        assert len(mine) == len(state.intents) == len(state.fills) == 200
        assert not book.positions(), "flat at the end"
        assert check_promises(state, book, ids, book_trade_id=venue.book_trade_id) == []
    finally:
        book.close()
    assert state.bot.instance.epoch == past.EPOCH and state.ledger.next_order_seq == 200
    assert state.ledger.fills_cursor is not None, "the cursor the API handed out"
    assert len(written.records["trades"]) == 100 and state.pnl.total.trades == 100
    assert past.not_kept(config, written) == ([], False)


def test_a_past_lost_or_rewritten_is_told(tmp_path: Path) -> None:
    config, exchange, written = seeded(tmp_path, ALPACA, 40)
    fill, trade = next(iter(written.records["fills"])), next(iter(written.records["trades"]))
    event = next(iter(written.records["events"]))
    ops = (
        Delete("fills", fill),
        Put("trades", trade, {"other": "than written"}),
        Delete("events", event),
    )
    asyncio.run(change(config, *ops))
    problems, rebuilt = past.not_kept(config, written)
    assert not rebuilt
    assert problems == [
        f"fills: 1 missing (the first: {fill})",
        f"trades: 1 rewritten (the first: {trade})",
        f"events: 1 missing (the first: {event})",
    ]
    # Once rebuilt from the venue, its events are not owed again: its fills and trades are.
    assert written.missing(asyncio.run(_history(config)), rebuilt=True) == problems[:2]
    # And the promise checks see the past too: the lost fill is one the venue has.
    state = asyncio.run(whole_state(config))
    book = exchange.open_book()
    try:
        ids = ClientIds(state.bot.bot_id, past.EPOCH)
        [violation] = check_promises(state, book, ids, ["I3"], book_trade_id=ALPACA.book_trade_id)
    finally:
        book.close()
    assert violation.promise == "I3" and "is not in the bot's ledger" in violation.message


async def _history(config_path: Path) -> dict[str, dict[str, str]]:
    config = load_config(config_path)
    async with StateManager.from_config(config.bot_id, config) as manager:
        return await past.read_history(manager)


def test_a_past_that_cannot_be_written_fails_its_trial_saying_why(tmp_path: Path) -> None:
    nowhere = replace(ALPACA, book_symbol=lambda symbol: "NOWHERE")
    with pytest.raises(past.SeedingFailed) as failed:
        seeded(tmp_path, nowhere, 40)
    said = str(failed.value)
    assert said.startswith("seeding the trial's past of 40 records failed: ValueError:"), said
    assert "the exchange lists no 'NOWHERE', only AAPL, BTC/USD" in said
