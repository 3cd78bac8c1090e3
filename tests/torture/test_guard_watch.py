"""The full-disk check of the real campaign, shown able to fail: a position left bare on
a real exchange process (the Alpaca emulator, driven by alpaca-py) is an I2 violation
once the bot's passes, counted in the exchange's access log, have gone past the bound,
or once the bot has asked nothing for too long; covered by a stop of the bot's, or
declared bare by the bot, it is none. The watch's clock is given: nothing here waits
on the wall clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopOrderRequest

from botwarden.engine.ids import ClientIds
from botwarden.state.records import BotState
from botwarden.torture.guard_watch import BOUND, SILENT_FOR, GuardWatch, Passes
from botwarden.torture.processes import Exchange
from botwarden.torture.real import STILL
from botwarden.torture.real_venues import ALPACA, BOT_ID, KEY, SECRET

IDS = ClientIds(BOT_ID, 1)


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[Exchange]:
    exchange = Exchange(tmp_path, ALPACA.api, 7, KEY, SECRET)
    exchange.start(STILL)  # nearly frozen: no stop fires while the test looks
    yield exchange
    exchange.stop()


def a_watch(exchange: Exchange, said: str = "") -> GuardWatch:
    passes = Passes(exchange.log, ALPACA.held_request)
    book = exchange.open_book(readonly=True)
    return GuardWatch(book, passes, lambda: BotState.empty(BOT_ID), lambda: said, IDS)


class Clock:
    """The harness's clock, a tenth of a second a look: passes well within the silence."""

    def __init__(self) -> None:
        self.now = 0.0

    def tick(self) -> float:
        self.now += 0.1
        return self.now


def a_pass(trading: TradingClient, watch: GuardWatch, clock: Clock) -> None:
    """What a pass of a bot whose store fails begins with, then the harness's look."""
    before = watch.passes.count
    trading.get_all_positions()
    deadline = time.monotonic() + 10
    while watch.passes.now() == before:  # the exchange writes its line after answering
        assert time.monotonic() < deadline, "the exchange logged no request"
        time.sleep(0.01)
    watch.look(clock.tick())


def buy(trading: TradingClient, qty: int = 5) -> None:
    trading.submit_order(
        MarketOrderRequest(
            symbol="SPY",
            qty=qty,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            client_order_id=IDS.make(1),
        )
    )


def test_a_position_bare_past_the_bound_is_an_i2_violation(exchange: Exchange) -> None:
    trading = TradingClient(KEY, SECRET, url_override=exchange.url)
    watch, clock = a_watch(exchange), Clock()
    buy(trading)
    watch.look(clock.tick())  # seen bare before any pass
    for _ in range(BOUND + 1):  # the first may have read the venue before the fill
        a_pass(trading, watch, clock)
    assert watch.violations == [], "within the bound"
    a_pass(trading, watch, clock)
    [violation] = watch.violations
    assert violation.promise == "I2" and violation.message.startswith("SPY: 5.0 held, 0 covered")
    assert f"through {BOUND} whole passes" in violation.message
    assert any("venue position SPY" in line for line in violation.evidence)
    assert watch.owed == {"SPY"} and watch.checks == BOUND + 3
    a_pass(trading, watch, clock)
    assert len(watch.violations) == 1, "told once"
    watch.book.close()


def test_a_position_covered_by_a_stop_of_the_bots_owes_nothing(exchange: Exchange) -> None:
    trading = TradingClient(KEY, SECRET, url_override=exchange.url)
    watch, clock = a_watch(exchange), Clock()
    buy(trading)
    a_pass(trading, watch, clock)
    trading.submit_order(
        StopOrderRequest(
            symbol="SPY",
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=1,
            client_order_id=IDS.guard_stop_id("pos-1"),
        )
    )
    for _ in range(BOUND + 3):
        a_pass(trading, watch, clock)
    assert watch.violations == [] and watch.owed == {"SPY"}
    watch.book.close()


def test_a_position_the_bot_said_it_leaves_bare_owes_nothing(exchange: Exchange) -> None:
    trading = TradingClient(KEY, SECRET, url_override=exchange.url)
    said = (
        "botwarden: error: realtorture: 5 SPY held without a stop, the store failing: price"
        " 480.1 is 6.20% past the stop 511.9; nothing placed (it would fire at once): an"
        " operator must decide\n"
    )
    watch, clock = a_watch(exchange, said), Clock()
    buy(trading)
    for _ in range(BOUND + 3):
        a_pass(trading, watch, clock)
    assert watch.violations == []
    watch.book.close()


def test_a_position_bare_while_the_bot_asks_nothing_is_an_i2_violation(
    exchange: Exchange,
) -> None:
    """A bot that does nothing while its store fails (no guard) sends no request to
    count: the position's time bare without a pass is what finds it."""
    trading = TradingClient(KEY, SECRET, url_override=exchange.url)
    watch = a_watch(exchange)
    buy(trading)
    watch.look(0.0)
    watch.look(SILENT_FOR)
    assert watch.violations == [], "not yet"
    watch.look(SILENT_FOR + 0.5)
    [violation] = watch.violations
    assert violation.message.startswith("SPY: 5.0 held, 0 covered")
    assert "for 2.5 s no pass of the bot's asked the venue what it holds" in violation.message
    watch.book.close()


def test_a_pass_of_the_bots_restarts_the_silence(exchange: Exchange) -> None:
    trading = TradingClient(KEY, SECRET, url_override=exchange.url)
    watch, clock = a_watch(exchange), Clock()
    buy(trading)
    watch.look(clock.tick())
    clock.now += SILENT_FOR - 0.5
    a_pass(trading, watch, clock)
    clock.now += SILENT_FOR - 0.5
    watch.look(clock.tick())
    assert watch.violations == [], "asked what it holds within the time: judged by passes"
    watch.book.close()
