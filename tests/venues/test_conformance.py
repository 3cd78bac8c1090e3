"""The venue conformance suite: the same promises, checked against every venue.

- `paper`: the simulated exchange, called directly;
- `alpaca`: the real alpaca-py, over HTTP, against the Alpaca emulator;
- `ccxt-binance` and `ccxt-binanceusdm`: the real ccxt, over HTTP, against the Binance
  spot and USD-M futures emulators.

Every emulator runs on a paper exchange whose clock the test moves, which is how a stop
gets triggered on a price move. Each venue trades its own instrument (SPY at Alpaca,
BTC/USDT at Binance), in quantities that fit its market.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from botwarden.domain.timeframes import TIMEFRAMES, last_completed_bar_open
from botwarden.venues.base import (
    Ambiguous,
    DuplicateOrder,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    Retryable,
    Venue,
)
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from tests.venues.test_paper import FEED, T0, Clock, first_time_price, order


@dataclass
class Harness:
    venue: Venue
    clock: Clock
    symbol: str
    """The venue's name for the instrument traded."""
    feed_symbol: str
    """The paper feed's name for it (its prices)."""
    qty: Decimal
    tick: Decimal
    futures: bool = False
    """A futures account: buying a position does not spend the wallet."""

    def order(self, cid: str, qty: Decimal | None = None, **extra: object) -> OrderRequest:
        fields: dict[str, object] = {"symbol": self.symbol, **extra}
        return order(cid, qty=str(qty or self.qty), **fields)

    def price(self) -> Decimal:
        return FEED.price(self.feed_symbol, self.clock.now)

    def away(self, fraction: str) -> Decimal:
        """The current price times `fraction`, on the tick."""
        return (self.price() * Decimal(fraction)).quantize(self.tick)


@asynccontextmanager
async def paper_venue(tmp_path: Path, faults: str) -> AsyncIterator[Harness]:
    clock = Clock()
    book = PaperBook(tmp_path / "paper.db", FEED, BookSettings())
    yield Harness(
        PaperVenue(book, clock, FaultPlan.parse(faults)),
        clock,
        "SPY",
        "SPY",
        Decimal(10),
        Decimal("0.01"),
    )
    book.close()


@asynccontextmanager
async def alpaca_venue(tmp_path: Path, faults: str) -> AsyncIterator[Harness]:
    pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")
    from tests.support.alpaca import emulated_alpaca

    async with emulated_alpaca(tmp_path, faults) as (venue, clock):
        yield Harness(venue, clock, "SPY", "SPY", Decimal(10), Decimal("0.01"))


def ccxt_venue(flavour: str) -> Callable[[Path, str], AbstractAsyncContextManager[Harness]]:
    @asynccontextmanager
    async def opened(tmp_path: Path, faults: str) -> AsyncIterator[Harness]:
        pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")
        from tests.venues.test_ccxt_adapter import emulated_ccxt

        async with emulated_ccxt(tmp_path, flavour, faults) as emulated:
            yield Harness(
                emulated.venue,
                emulated.clock,
                emulated.symbol,
                "BTC/USDT",
                Decimal("0.01"),
                Decimal("0.1"),
                futures=flavour == "usdm",
            )

    return opened


VENUES = {
    "paper": paper_venue,
    "alpaca": alpaca_venue,
    "ccxt-binance": ccxt_venue("spot"),
    "ccxt-binanceusdm": ccxt_venue("usdm"),
}


@pytest.fixture(params=sorted(VENUES))
def opened(request: pytest.FixtureRequest, tmp_path: Path):
    """`opened(faults)`: an async context manager giving the venue's `Harness`."""
    return lambda faults="": VENUES[request.param](tmp_path, faults)


async def test_an_order_is_found_by_its_client_order_id_open_and_filled(opened) -> None:
    async with opened() as h:
        filled = await h.venue.submit(h.order("conf-000001"))
        assert filled.state is OrderState.FILLED
        found = await h.venue.order("conf-000001", h.symbol)
        assert (found.state, found.filled_qty, found.venue_order_id) == (
            OrderState.FILLED, h.qty, filled.venue_order_id
        )  # fmt: skip

        limit = h.away("0.9")
        await h.venue.submit(h.order("conf-000002", type="limit", limit_price=limit))
        assert (await h.venue.order("conf-000002", h.symbol)).state is OrderState.OPEN
        assert [o.client_order_id for o in await h.venue.open_orders()] == ["conf-000002"]
        with pytest.raises(NotFound):
            await h.venue.order("never-sent", h.symbol)


async def test_positions_balance_and_fills_after_trading(opened) -> None:
    async with opened() as h:
        cash = (await h.venue.balance()).cash
        await h.venue.submit(h.order("conf-buy", qty=h.qty * 10))
        await h.venue.submit(h.order("conf-sell", side="sell", qty=h.qty * 4))
        [position] = await h.venue.positions()
        assert (position.symbol, position.qty) == (h.symbol, h.qty * 6)
        spent = Decimal(0) if h.futures else h.qty * 6 * h.price()
        assert (await h.venue.balance()).cash == cash - spent
        page = await h.venue.fills()
        assert [(f.client_order_id, f.side.value, f.qty) for f in page.fills] == [
            ("conf-buy", "buy", h.qty * 10),
            ("conf-sell", "sell", h.qty * 4),
        ]
        assert not page.more, "all there is, in one page"
        assert (await h.venue.fills(cursor=page.cursor)).fills == []


async def test_a_resting_order_can_be_canceled(opened) -> None:
    async with opened() as h:
        await h.venue.submit(h.order("conf-limit", type="limit", limit_price=h.away("0.9")))
        assert (await h.venue.cancel("conf-limit", h.symbol)).state is OrderState.CANCELED
        assert await h.venue.open_orders() == []


async def test_a_stop_triggers_on_a_price_move(opened) -> None:
    async with opened() as h:
        await h.venue.submit(h.order("conf-entry"))
        stop_price = h.away("0.99")
        stop = await h.venue.submit(
            h.order("conf-stop", side="sell", type="stop", stop_price=stop_price)
        )
        assert stop.state is OrderState.OPEN
        crossed = first_time_price(h.feed_symbol, T0, lambda p: p <= stop_price)
        h.clock.now = crossed + timedelta(hours=1)
        assert await h.venue.positions() == []
        assert (await h.venue.order("conf-stop", h.symbol)).state is OrderState.FILLED
        assert [f.client_order_id for f in (await h.venue.fills()).fills] == [
            "conf-entry",
            "conf-stop",
        ]


async def test_prices_and_bars(opened) -> None:
    async with opened() as h:
        assert await h.venue.last_price(h.symbol) == h.price()
        assert await h.venue.last_prices([h.symbol]) == {h.symbol: h.price()}
        bars = await h.venue.bars(h.symbol, "1h", 5)
        assert len(bars) == 5
        assert all(b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in bars)
        assert [b.time for b in bars] == [bars[0].time + timedelta(hours=n) for n in range(5)]
        assert bars[-1].time + timedelta(hours=1) <= h.clock.now, "only completed bars"


async def test_bars_of_every_timeframe_are_the_exchanges_on_utc_boundaries(opened) -> None:
    """Each timeframe through each venue's own wire (Alpaca's `4Hour` and `1Week`,
    Binance's `4h` and `1w` klines): the newest completed bars, opening where Binance
    and Alpaca open theirs (weeks on Mondays), priced as the exchange traded."""
    async with opened() as h:
        for timeframe, width in TIMEFRAMES.items():
            bars = await h.venue.bars(h.symbol, timeframe, 3)
            newest = last_completed_bar_open(timeframe, h.clock.now)
            assert [b.time for b in bars] == [newest - n * width for n in (2, 1, 0)], timeframe
            for b in bars:
                ohlc = FEED.ohlc(h.feed_symbol, b.time, b.time + width)
                assert (b.open, b.high, b.low, b.close) == ohlc, (timeframe, b.time)
        assert {b.time.weekday() for b in await h.venue.bars(h.symbol, "1w", 3)} == {0}
        with pytest.raises(NotFound, match="'2h'; use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w"):
            await h.venue.bars(h.symbol, "2h", 3)


async def test_an_open_order_id_is_never_taken_twice(opened) -> None:
    async with opened() as h:
        limit = h.away("0.9")
        await h.venue.submit(h.order("conf-000001", type="limit", limit_price=limit))
        with pytest.raises(DuplicateOrder, match=r"(?i)duplicate|must be unique"):
            await h.venue.submit(h.order("conf-000001", type="limit", limit_price=limit))
        with pytest.raises(Rejected):
            await h.venue.submit(h.order("conf-000002", symbol="NOPE"))


async def test_a_filled_orders_id_follows_the_venues_rule(opened) -> None:
    """`unique` venues (Alpaca) refuse a reused id forever. `unique_while_open` venues
    (Binance) accept it once the first order filled, and fill it again: the reason an
    ambiguous order is looked up, never blindly resent."""
    async with opened() as h:
        await h.venue.submit(h.order("conf-000001"))
        if h.venue.capabilities.client_ids == "unique":
            with pytest.raises(DuplicateOrder, match=r"(?i)duplicate|must be unique"):
                await h.venue.submit(h.order("conf-000001"))
            return
        again = await h.venue.submit(h.order("conf-000001"))
        assert again.state is OrderState.FILLED
        [position] = await h.venue.positions()
        assert position.qty == h.qty * 2, "the blind resend doubled the position"


@pytest.mark.parametrize(
    ("fault", "error", "applied"),
    [
        ("error_before", Retryable, False),
        ("rate_limit", Retryable, False),
        ("outage", Retryable, False),
        ("timeout_before", Ambiguous, False),
        ("timeout_after", Ambiguous, True),
    ],
)
async def test_every_fault_reaches_the_caller_as_its_error_class(
    opened, fault: str, error: type, applied: bool
) -> None:
    async with opened(f"{fault}:on=submit,nth=1") as h:
        with pytest.raises(error):
            await h.venue.submit(h.order("conf-000001"))
        if applied:
            assert (await h.venue.order("conf-000001", h.symbol)).state is OrderState.FILLED
        else:
            with pytest.raises(NotFound):
                await h.venue.order("conf-000001", h.symbol)
            await h.venue.submit(h.order("conf-000001"))  # known absent: the same id again
        assert len((await h.venue.fills()).fills) == 1, "never two orders for one intent"


async def test_a_server_error_is_ambiguous_and_the_lookup_says_what_happened(opened) -> None:
    """A 5xx may or may not have applied the order (a seeded coin decides, per call):
    either way the caller learns which by looking the order up, never by resending."""
    async with opened("server_error:on=submit,nth=1") as h:
        with pytest.raises(Ambiguous):
            await h.venue.submit(h.order("conf-000001"))
        try:
            found = await h.venue.order("conf-000001", h.symbol)
        except NotFound:
            assert await h.venue.positions() == []
        else:
            assert found.state is OrderState.FILLED
            [position] = await h.venue.positions()
            assert position.qty == h.qty


async def test_a_partial_fill_completes_later(opened) -> None:
    async with opened("partial_fill:fraction=0.3,times=1") as h:
        first = await h.venue.submit(h.order("conf-000001", qty=h.qty * 10))
        assert (first.state, first.filled_qty) == (OrderState.PARTIALLY_FILLED, h.qty * 3)
        h.clock.now += timedelta(seconds=1)
        done = await h.venue.order("conf-000001", h.symbol)
        assert (done.state, done.filled_qty) == (OrderState.FILLED, h.qty * 10)
        assert [f.qty for f in (await h.venue.fills()).fills] == [h.qty * 3, h.qty * 7]


async def test_a_fresh_order_may_be_missing_from_lookups_for_a_while(opened) -> None:
    """Why "not found" right after an ambiguous submission proves nothing: the venue's
    lookups may lag its book. The engine waits, and asks everywhere, before it concludes."""
    async with opened("stale_lookup:seconds=30") as h:
        await h.venue.submit(h.order("conf-000001"))
        with pytest.raises(NotFound):
            await h.venue.order("conf-000001", h.symbol)
        assert [f.client_order_id for f in (await h.venue.fills()).fills] == ["conf-000001"]
        h.clock.now += timedelta(seconds=30)
        assert (await h.venue.order("conf-000001", h.symbol)).state is OrderState.FILLED


async def test_a_stop_and_take_profit_pair_fills_once_and_one_cancel_takes_both(opened) -> None:
    """Where the venue says `oco`: a stop and a take-profit named by the engine's ids,
    each leg naming the other; whichever the price reaches first fills and the other
    goes with it; and a cancel of either leg takes both."""
    async with opened() as h:
        if not h.venue.capabilities.oco:
            pytest.skip(f"{h.venue.name} holds no one-cancels-other pairs")
        await h.venue.submit(h.order("conf-entry", qty=h.qty * 2))
        stop = h.order("conf-1", side="sell", type="stop", stop_price=h.away("0.99"))
        target = h.order("conf-1t", side="sell", type="limit", limit_price=h.away("1.01"))
        taken = await h.venue.submit_oco(stop, target)
        assert [(o.client_order_id, o.oco_with) for o in taken] == [
            ("conf-1", "conf-1t"), ("conf-1t", "conf-1")
        ]  # fmt: skip
        listed = {o.client_order_id: o.oco_with for o in await h.venue.open_orders()}
        assert listed == {"conf-1": "conf-1t", "conf-1t": "conf-1"}
        h.clock.now = first_time_price(
            h.feed_symbol, T0, lambda p: not stop.stop_price < p < target.limit_price
        )
        legs = [await h.venue.order(cid, h.symbol) for cid in ("conf-1", "conf-1t")]
        assert sorted(o.state.is_final for o in legs) == [True, True]
        assert [o.state for o in legs].count(OrderState.FILLED) == 1, legs
        [held] = await h.venue.positions()
        assert held.qty == h.qty, "one leg's quantity sold, not two"

        again = h.order("conf-2", side="sell", type="stop", stop_price=h.away("0.99"))
        beside = h.order("conf-2t", side="sell", type="limit", limit_price=h.away("1.01"))
        await h.venue.submit_oco(again, beside)
        assert (await h.venue.cancel("conf-2t", h.symbol)).state is OrderState.CANCELED
        assert (await h.venue.order("conf-2", h.symbol)).state.is_final
        assert await h.venue.open_orders() == []


async def test_a_replaced_stop_rests_no_more_and_its_replacement_does(opened) -> None:
    """Where the venue says `replaces`: one request takes the old stop away and rests
    the new one, under the engine's new id, at the new price; the old one is found
    closed by its own id. A replace of an order no longer open is refused, and places
    nothing."""
    async with opened() as h:
        if not h.venue.capabilities.replaces:
            pytest.skip(f"{h.venue.name} replaces no orders (its exits rest side by side)")
        await h.venue.submit(h.order("conf-entry"))
        first = h.order("conf-1", side="sell", type="stop", stop_price=h.away("0.97"))
        await h.venue.submit(first)
        moved = h.order("conf-2", side="sell", type="stop", stop_price=h.away("0.98"))
        taken = await h.venue.replace(first, moved)
        assert (taken.client_order_id, taken.stop_price) == ("conf-2", moved.stop_price)
        assert [o.client_order_id for o in await h.venue.open_orders()] == ["conf-2"]
        assert (await h.venue.order("conf-1", h.symbol)).state is OrderState.CANCELED
        late = h.order("conf-3", side="sell", type="stop", stop_price=h.away("0.96"))
        with pytest.raises(Rejected):
            await h.venue.replace(first, late)
        assert [o.client_order_id for o in await h.venue.open_orders()] == ["conf-2"]
