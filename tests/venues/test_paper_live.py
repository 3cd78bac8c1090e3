"""The paper exchange on live prices: its book fills locally on what a real venue's
market data says, here the emulators', read over HTTP through the real SDKs (ccxt on
Binance's API, alpaca-py on Alpaca's).

What is checked comes from the source's side: the emulator's own price path says
what a market order should have filled at and where a stop was first crossed. The
source is taken away from outside (its server stopped, then started again on the
same port), never by telling the feed."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from botwarden.config import BotConfig
from botwarden.domain.markets import MarketRules
from botwarden.domain.models import Bar, BotStatus, OrderSide
from botwarden.domain.orders import OrderType
from botwarden.engine.checks import check_promises
from botwarden.engine.runner import Runner
from botwarden.errors import UntradableSymbol
from botwarden.venues.base import ClockReading, OrderRequest, OrderState, Retryable
from botwarden.venues.emulators.server import serving
from botwarden.venues.factory import open_paper_venue
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.live import LiveFeed
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.settings import PaperVenueSettings
from tests.conftest import whole
from tests.engine.harness import CONFIG, started
from tests.state.test_crash import free_port
from tests.support.binance import KEY, SECRET, VOLATILE, feed
from tests.venues.test_paper import Clock

pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")


@dataclass
class Source:
    """The emulator the paper exchange takes its prices from."""

    api: str
    url: str
    exchange: PaperVenue
    app: Any
    port: int
    clock: Clock

    @contextmanager
    def down(self) -> Iterator[None]:
        """The source's server is gone for the block, then back on the same port."""
        self._serving.__exit__(None, None, None)
        try:
            yield
        finally:
            self._serving = serving(self.app, self.port)
            self._serving.__enter__()

    def price(self, at: datetime) -> Decimal:
        return self.exchange.book.feed.price(VOLATILE, at)

    def first_below(self, level: Decimal, after: datetime) -> datetime:
        """When the source's path first traded at or below `level` after `after`."""
        path = self.exchange.book.feed
        index = path.step_index(after) + 1
        while path.price_at_step(VOLATILE, index) > level:
            index += 1
        return path.step_time(index)


@pytest.fixture(params=["binance", "alpaca"])
def source(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Source]:
    from botwarden.venues.emulators import alpaca, binance

    clock = Clock()
    settings = BookSettings(currency="USDT", client_ids="binance", shorting=False)
    exchange = PaperVenue(PaperBook(tmp_path / "source.db", feed(), settings), clock)
    if request.param == "binance":
        app = binance.create_app(exchange, "spot", KEY, SECRET)
    else:
        app = alpaca.create_app(exchange, KEY, SECRET)
    port = free_port()
    running = serving(app, port)
    url = running.__enter__()
    world = Source(request.param, url, exchange, app, port, clock)
    world._serving = running
    try:
        yield world
    finally:
        world._serving.__exit__(None, None, None)
        exchange.book.close()


def paper_on(
    source: Source,
    tmp_path: Path,
    on_outage: str = "refuse",
    host: Clock | None = None,
    symbols: tuple[str, ...] = (VOLATILE,),
) -> PaperVenue:
    """The paper exchange on `source`'s prices, on a host whose clock is `host` (by
    default the source's)."""
    if source.api == "binance":
        prices = {"from": "ccxt", "exchange": "binance", "throttle": False}
    else:
        prices = {"from": "alpaca", "data_url": source.url, "api_key": KEY, "secret_key": SECRET}
    prices |= {"base_url": source.url, "on_outage": on_outage}
    settings = PaperVenueSettings(path="paper.db", currency="USDT", prices=prices)
    clock = host or source.clock
    return open_paper_venue(settings, "live", tmp_path, clock, symbols=list(symbols))


ORDERS = itertools.count(1)


def order(
    kind: OrderType, side: OrderSide, qty: str, symbol: str = VOLATILE, **prices: Decimal
) -> OrderRequest:
    return OrderRequest(client_order_id=f"order-{next(ORDERS)}", symbol=symbol, side=side,
                        type=kind, qty=Decimal(qty), **prices)  # fmt: skip


async def test_orders_fill_at_the_sources_prices_with_its_rules(
    source: Source, tmp_path: Path
) -> None:
    venue = paper_on(source, tmp_path)
    await venue.connect()
    rules = await venue.market(VOLATILE)
    assert (rules.price_tick, rules.qty_step) == (Decimal("0.01"), Decimal("0.001"))
    for _ in range(3):  # the source's price moves; each fill follows it
        bought = await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "1.5"))
        assert bought.state is OrderState.FILLED
        assert bought.avg_price == source.price(source.clock.now)
        source.clock.now += timedelta(hours=1)
    assert await venue.last_price(VOLATILE) == source.price(source.clock.now)
    # Its bars are the source's own.
    assert await venue.bars(VOLATILE, "1h", 5) == await source.exchange.bars(VOLATILE, "1h", 5)
    [held] = await venue.positions()
    assert held.qty == Decimal("4.5")
    await venue.close()


async def test_a_stop_fills_where_the_sources_market_crossed_it_even_while_the_bot_was_down(
    source: Source, tmp_path: Path
) -> None:
    venue = paper_on(source, tmp_path)
    await venue.connect()
    await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "2"))
    stop = (source.price(source.clock.now) * Decimal("0.9")).quantize(Decimal("0.01"))
    placed = source.clock.now
    await venue.submit(order(OrderType.STOP, OrderSide.SELL, "2", stop_price=stop))
    crossed = source.first_below(stop, placed)
    await venue.close()  # the bot (and its paper exchange) is down while the market moves
    source.clock.now = crossed + timedelta(hours=6)

    again = paper_on(source, tmp_path)
    await again.connect()
    assert await again.positions() == [], "the stop filled while nobody looked"
    [_, exit_fill] = (await again.fills()).fills
    assert (exit_fill.price, exit_fill.time) == (stop, crossed)
    [stopped] = [o for o in await again.all_orders(VOLATILE) if o.type is OrderType.STOP]
    assert stopped.state is OrderState.FILLED
    await again.close()


async def test_without_prices_it_refuses_everything_and_replays_the_outage_after(
    source: Source, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    venue = paper_on(source, tmp_path)
    await venue.connect()
    await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "2"))
    stop = (source.price(source.clock.now) * Decimal("0.9")).quantize(Decimal("0.01"))
    placed = source.clock.now
    await venue.submit(order(OrderType.STOP, OrderSide.SELL, "2", stop_price=stop))
    crossed = source.first_below(stop, placed)
    processed = venue.book.processed_until()
    with source.down(), caplog.at_level(logging.WARNING):
        source.clock.now = crossed + timedelta(minutes=30)
        for call in (venue.positions, venue.balance, lambda: venue.last_price(VOLATILE)):
            with pytest.raises(Retryable, match=f"price source {source.api} does not answer"):
                await call()
        with pytest.raises(Retryable):
            await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "1"))
        assert venue.book.processed_until() == processed, "nothing was guessed meanwhile"
        assert [p.qty for p in venue.book.positions()] == [Decimal(2)]
    assert "refuses every request until it does" in caplog.text
    source.clock.now += timedelta(minutes=5)
    assert await venue.positions() == []
    exit_fill = (await venue.fills()).fills[-1]
    assert (exit_fill.price, exit_fill.time) == (stop, crossed)
    assert len(venue.book.fills()) == 2, "the refused order never reached the book"
    await venue.close()


async def test_on_the_last_known_prices_when_declared(source: Source, tmp_path: Path) -> None:
    venue = paper_on(source, tmp_path, on_outage="last_known")
    await venue.connect()
    known = source.price(source.clock.now)
    with source.down():
        source.clock.now += timedelta(hours=3)
        assert source.price(source.clock.now) != known, "(the market moved meanwhile)"
        bought = await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "1"))
        assert bought.avg_price == known
        assert await venue.last_price(VOLATILE) == known
        # (the strategy's bars are never guessed: there are none)
        with pytest.raises(Retryable):
            await venue.bars(VOLATILE, "1h", 5)
    source.clock.now += timedelta(minutes=1)
    assert await venue.last_price(VOLATILE) == source.price(source.clock.now)
    await venue.close()


async def test_on_the_last_known_prices_a_stop_the_outage_crossed_fills_once_it_is_seen(
    source: Source, tmp_path: Path
) -> None:
    venue = paper_on(source, tmp_path, on_outage="last_known")
    await venue.connect()
    await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "2"))
    stop = (source.price(source.clock.now) * Decimal("0.9")).quantize(Decimal("0.01"))
    placed = source.clock.now
    await venue.submit(order(OrderType.STOP, OrderSide.SELL, "2", stop_price=stop))
    crossed = source.first_below(stop, placed)
    with source.down():
        source.clock.now = crossed + timedelta(minutes=30)
        assert [p.qty for p in await venue.positions()] == [Decimal(2)], "(nothing seen yet)"
    processed = venue.book.processed_until()
    source.clock.now += timedelta(minutes=5)
    assert await venue.positions() == []
    exit_fill = (await venue.fills()).fills[-1]
    assert exit_fill.price == stop, "at its price, as the market crossed it"
    assert exit_fill.time == processed, "stamped when it could first be seen, never before"
    await venue.close()


async def test_nothing_to_trade_on_before_the_source_ever_answered(
    source: Source, tmp_path: Path
) -> None:
    venue = paper_on(source, tmp_path, on_outage="last_known")
    with source.down(), pytest.raises(Retryable):
        await venue.connect()
    await venue.connect()  # (once it answers)
    assert await venue.last_price(VOLATILE) == source.price(source.clock.now)
    await venue.close()


async def test_a_symbol_the_source_does_not_list_is_the_configs_mistake_not_an_outage(
    source: Source, tmp_path: Path
) -> None:
    venue = paper_on(source, tmp_path, symbols=(VOLATILE, "NOPE/USDT"))
    with pytest.raises(UntradableSymbol, match="'NOPE/USDT' cannot be traded on"):
        await venue.connect()
    await venue.close()


async def test_its_time_is_the_sources_on_a_host_whose_clock_is_a_week_ahead(
    source: Source, tmp_path: Path
) -> None:
    host = Clock(source.clock.now + timedelta(days=7))
    venue = paper_on(source, tmp_path, host=host)
    await venue.connect()
    reading = await venue.read_clock()
    assert reading.venue_time == source.clock.now and reading.host_time == host.now
    assert reading.skewed, "the host is told its clock is off, as a real venue would"
    bought = await venue.submit(order(OrderType.MARKET, OrderSide.BUY, "1"))
    assert bought.avg_price == source.price(source.clock.now)
    [fill] = (await venue.fills()).fills
    assert fill.time == source.clock.now
    # The host's clock set right: the exchange's time does not jump, nor run back.
    host.now = source.clock.now = source.clock.now + timedelta(minutes=10)
    await venue.positions()
    assert venue.book.processed_until() == source.clock.now
    await venue.close()


async def test_a_bot_on_live_prices_keeps_its_promises_through_a_crash_and_an_outage(
    source: Source, tmp_path: Path
) -> None:
    """The bot's promises checked from the paper book after every hour; the source
    taken away for hours while it holds a position: it sends nothing, and its stop on
    the book is still there, filled (if the market crossed it) where it was crossed."""
    config = BotConfig.model_validate(
        {**CONFIG, "symbols": [VOLATILE], "order": {"notional": 1000},
         "strategy": {"name": "golden_cross", "params": {"fast": 2, "slow": 5},
                      "timeframe": "1h"}}
    )  # fmt: skip
    state_path = tmp_path / "state.db"

    async def start() -> Runner:
        return await started(config, state_path, paper_on(source, tmp_path), source.clock)

    async def hours(runner: Runner, count: int) -> None:
        for _ in range(count):
            source.clock.now += timedelta(hours=1)
            await runner.tick()
            book = runner.venue.book
            violations = check_promises(await whole(runner.state), book, runner.ctx.ids)
            assert violations == [], "\n".join(map(str, violations))

    runner = await start()
    for _ in range(72):
        await hours(runner, 1)
        if runner.venue.book.positions():
            break
    [held] = runner.venue.book.positions()
    await runner.venue.close()  # a crash: nothing of it runs on
    await runner.state.close()
    source.clock.now += timedelta(hours=2)
    runner = await start()
    await hours(runner, 1)
    book = runner.venue.book
    orders = len(book.all_orders())
    with source.down():
        for _ in range(4):
            source.clock.now += timedelta(hours=1)
            await runner.tick()
            assert "price source" in str(runner.pass_error), "each pass ends, saying why"
        assert len(book.all_orders()) == orders, "nothing was sent on a guess"
    await hours(runner, 3)
    assert runner.pass_error is None
    assert (await runner.state.snapshot()).bot.status is BotStatus.RUNNING
    assert held.symbol == VOLATILE
    await runner.venue.close()
    await runner.state.close()


# -- the timing a real source has and an emulator does not ----------------------------


class Scripted:
    """A source whose answers a test writes: the bars it has published so far and its
    last price (a minute's bar may come late, as Alpaca's aggregated bars do)."""

    name = "scripted"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.published: list[Bar] = []
        self.last = Decimal(100)
        self.down = False

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def market(self, symbol: str) -> MarketRules:
        return MarketRules(symbol=symbol, price_tick=Decimal("0.01"), qty_step=Decimal(1))

    async def read_clock(self) -> ClockReading:
        await self._answer()
        return ClockReading(self.clock.now, self.clock.now)

    async def history(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> list:
        await self._answer()
        return [b for b in self.published if start <= b.time < end]

    async def last_prices(self, symbols: list[str]) -> dict[str, Decimal]:
        await self._answer()
        return dict.fromkeys(symbols, self.last)

    async def _answer(self) -> None:
        await asyncio.sleep(0.01)  # (on the wire a moment: another call may come meanwhile)
        if self.down:
            raise Retryable(self.name, "could not connect")

    def publish(self, opened: datetime, low: str, high: str = "100") -> None:
        self.published.append(Bar(time=opened, open=Decimal(100), high=Decimal(high),
                                  low=Decimal(low), close=Decimal(100), volume=0))  # fmt: skip


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Scripted, PaperVenue]]:
    clock = Clock()
    source = Scripted(clock)
    feed = LiveFeed(source, ["X"], tmp_path / "prices.db", host=clock)
    book = PaperBook(tmp_path / "paper.db", feed, BookSettings(shorting=False))
    yield source, PaperVenue(book, clock, live=feed)
    book.close()


async def holding(venue: PaperVenue, qty: str) -> None:
    await venue.connect()
    await venue.submit(OrderRequest(client_order_id="buy", symbol="X", side=OrderSide.BUY,
                                    type=OrderType.MARKET, qty=Decimal(qty)))  # fmt: skip


async def test_a_minutes_bar_published_late_is_still_looked_at(
    scripted: tuple[Scripted, PaperVenue],
) -> None:
    source, venue = scripted
    await holding(venue, "2")
    placed = source.clock.now
    await venue.submit(
        order(OrderType.STOP, OrderSide.SELL, "2", stop_price=Decimal(95), symbol="X")
    )
    # The minute after it dips to 90, but its bar is not published when it ends...
    for _ in range(5):
        source.clock.now += timedelta(seconds=30)
        await venue.positions()
    assert venue.book.processed_until() > placed + timedelta(minutes=2)
    assert venue.book.positions(), "(nothing known yet of the dip)"
    source.publish(placed + timedelta(minutes=1), low="90")  # ...only now
    source.clock.now += timedelta(seconds=30)
    assert await venue.positions() == []
    exit_fill = (await venue.fills()).fills[-1]
    assert exit_fill.price == Decimal(95)


async def test_a_price_sampled_inside_a_minute_leaves_the_pair_to_the_minutes_stop(
    scripted: tuple[Scripted, PaperVenue],
) -> None:
    source, venue = scripted
    await holding(venue, "2")
    placed = source.clock.now
    stop = order(OrderType.STOP, OrderSide.SELL, "2", stop_price=Decimal(95), symbol="X")
    take_profit = order(OrderType.LIMIT, OrderSide.SELL, "2", limit_price=Decimal(105), symbol="X")
    await venue.submit_oco(stop, take_profit)
    # Inside the next minute 106 is read, and the bot dies before its book looks (the
    # price recorded, not yet processed)...
    source.last, source.clock.now = Decimal(106), placed + timedelta(minutes=1, seconds=30)
    assert venue.live is not None
    await venue.live.catch_up(venue.clock, venue.book.processed_until())
    # ...and the minute's bar, which it finds when it looks again, reached 90 too.
    source.publish(placed + timedelta(minutes=1), low="90", high="106")
    source.last, source.clock.now = Decimal(100), placed + timedelta(minutes=2, seconds=10)
    await venue.positions()
    exit_fill = (await venue.fills()).fills[-1]
    assert (exit_fill.client_order_id, exit_fill.price) == (stop.client_order_id, Decimal(95))


async def test_a_limit_reached_by_a_sampled_price_fills_at_its_own(
    scripted: tuple[Scripted, PaperVenue],
) -> None:
    source, venue = scripted
    await holding(venue, "1")
    await venue.submit(
        order(OrderType.LIMIT, OrderSide.SELL, "1", limit_price=Decimal(105), symbol="X")
    )
    source.last = Decimal(108)
    source.clock.now += timedelta(seconds=20)
    await venue.positions()
    exit_fill = (await venue.fills()).fills[-1]
    assert exit_fill.price == Decimal(105)


async def test_calls_sent_together_in_an_outage_are_all_refused(
    scripted: tuple[Scripted, PaperVenue],
) -> None:
    source, venue = scripted
    await holding(venue, "1")
    processed = venue.book.processed_until()
    source.down = True
    source.clock.now += timedelta(seconds=30)
    answers = await asyncio.gather(
        venue.positions(), venue.open_orders(), venue.balance(), return_exceptions=True
    )
    assert all(isinstance(a, Retryable) for a in answers), answers
    assert venue.book.processed_until() == processed
