"""A store that fails to write (a full disk, an I/O error), in the spirit of SQLite's
own I/O-error tests: the bot opens nothing new, the stops already on the venue keep
protecting what it holds, a failed write is never taken as durable (nor as lost),
and the bot carries on by itself once the store works again."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from botwarden.config import BotConfig
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.errors import StoreUnavailable
from botwarden.state.base import Change, Put
from botwarden.state.manager import StateManager
from botwarden.state.sqlite import SqliteStore
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.venue import PaperVenue
from tests.conftest import whole
from tests.venues.test_paper import FEED, Clock

# Flat: enter; holding: exit. Every bar asks for an order.
CONFIG = {
    "bot_id": "busy",
    "symbols": ["SPY"],
    "order": {"qty": 10},
    "strategy": {"name": "coin_flip", "params": {"enter": 1, "exit": 1}, "timeframe": "1h"},
    "stop": {"distance": 5},
    "engine": {"check_interval": "1h"},
}


class FailingStore(SqliteStore):
    """SQLite whose writes fail on demand: with nothing written, or written and then
    reported failed (the data reached the file; its sync did not)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fails: Callable[[Change], bool] = lambda change: False
        self.landed = False
        self.failures = 0

    async def apply(self, flow_id: str, change: Change) -> None:
        if self.fails(change):
            self.failures += 1
            if self.landed:
                await super().apply(flow_id, change)
            raise StoreUnavailable(f"{self.describe()}: {os.strerror(errno.ENOSPC)}")
        await super().apply(flow_id, change)


class Bot:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
        self.store = FailingStore(tmp_path / "state.db")
        self.state = StateManager("busy", self.store, clock=self.clock)
        venue = PaperVenue(self.book, self.clock)
        self.runner = Runner(
            BotConfig.model_validate(CONFIG).bot_settings(), self.state, venue, self.clock
        )

    async def hour(self) -> None:
        self.clock.now += timedelta(hours=1)
        await self.runner.tick()

    def orders(self) -> list:
        return self.book.all_orders()

    def resting_stops(self) -> list:
        return [o for o in self.book.open_orders() if o.type is OrderType.STOP]

    async def promises(self) -> list:
        state = await whole(self.state)
        return check_promises(state, self.book, self.runner.ctx.ids)


async def test_a_full_disk_stops_new_orders_keeps_the_stops_and_recovers(tmp_path: Path) -> None:
    bot = Bot(tmp_path)
    await bot.state.open()
    await bot.runner.start()
    await bot.hour()  # flat: enters, and protects the position
    held = bot.book.positions()
    assert len(held) == 1 and len(bot.resting_stops()) == 1
    sent = len(bot.orders())

    bot.store.fails = lambda change: True  # the disk is full
    for _ in range(3):
        await bot.hour()  # each hour's exit signal: not one order goes out
    assert bot.store.failures >= 3, "it kept trying"
    assert len(bot.orders()) == sent, "no order sent without its intent stored"
    assert bot.book.positions() == held and len(bot.resting_stops()) == 1, "still protected"

    bot.store.fails = lambda change: False  # space freed
    await bot.hour()
    await bot.hour()
    assert len(bot.orders()) > sent, "trading again, by itself"
    assert await bot.promises() == []
    await bot.state.close()
    bot.book.close()


async def test_a_write_that_landed_but_failed_is_neither_trusted_nor_repeated(
    tmp_path: Path,
) -> None:
    bot = Bot(tmp_path)
    await bot.state.open()
    await bot.runner.start()

    def entry_intent(change: Change) -> bool:
        return any(
            isinstance(op, Put)
            and op.collection == "intents"
            and op.value["purpose"] == Purpose.ENTRY
            and op.value["status"] == IntentStatus.SUBMITTING
            for op in change.ops
        )

    bot.store.fails, bot.store.landed = entry_intent, True
    await bot.hour()  # the entry's intent reached the file, but the write said it failed
    assert bot.store.failures == 1
    assert bot.orders() == [], "a write that failed is not durable: nothing was sent"
    bot.store.fails = lambda change: False

    await bot.hour()  # the intent is found, looked up, and dropped: it never went out
    state = await whole(bot.state)
    first = min(state.intents.values(), key=lambda i: i.created_at)
    assert first.status is IntentStatus.CANCELED and "never reached the venue" in first.reason
    assert not any(o.client_order_id == first.client_order_id for o in bot.orders())
    await bot.hour()
    entries = [i for i in (await whole(bot.state)).intents.values() if i.purpose == "entry"]
    assert [i.status for i in entries] == [IntentStatus.CANCELED, IntentStatus.FILLED]
    assert await bot.promises() == []
    await bot.state.close()
    bot.book.close()
