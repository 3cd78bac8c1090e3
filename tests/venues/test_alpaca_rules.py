"""Alpaca's order rules, for stocks and for crypto: what the emulator refuses (with
Alpaca's status codes and bodies, through the real alpaca-py), and what the adapter
sends instead so that the real venue would take it.

The rules, as Alpaca states and answers them:
- a fractional or notional stock order must be a DAY order: 422, code 42210000,
  "fractional orders must be DAY orders"; it may not sell short ("fractional orders
  cannot be sold short");
- crypto takes `gtc` and `ioc` only ("invalid crypto time_in_force"), market, limit and
  stop-limit orders only (422, code 40010001, "invalid order type for crypto order"),
  and is never sold short (403, 40310000, "insufficient balance for BTC ...");
- crypto prices and bars are served by the crypto data API (`/v1beta3/crypto/us/...`);
  the stock data API knows no `BTC/USD`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca", reason="needs alpaca-py: pip install 'botwarden[alpaca]'")

from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestTradeRequest,
    StockLatestTradeRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopLimitOrderRequest, StopOrderRequest

from botwarden.domain.markets import OrderRefused
from botwarden.domain.markets import TimeInForce as Tif
from botwarden.domain.orders import OrderType
from botwarden.venues.alpaca import AlpacaVenue
from botwarden.venues.base import NotFound, OrderState, Rejected
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.feed import Instrument, RandomWalkFeed
from botwarden.venues.paper.venue import PaperVenue
from tests.support.alpaca import KEY, SECRET, adapter, client, start
from tests.venues.test_paper import T0, Clock, order

FEED = RandomWalkFeed(
    {
        "SPY": Instrument("SPY", Decimal("450")),
        "BTC/USD": Instrument(
            "BTC/USD", Decimal("60000"), Decimal("0.01"), Decimal("0.000000001"), Decimal(1)
        ),
    },
    seed=11,
)


class Emulated:
    """An Alpaca emulator over a paper exchange that lists a stock and a coin."""

    def __init__(self, url: str, exchange: PaperVenue, app: Any, clock: Clock) -> None:
        self.url, self.exchange, self.app, self.clock = url, exchange, app, clock
        self.trading: TradingClient = client(url)

    def price(self, symbol: str) -> Decimal:
        return FEED.price(symbol, self.clock.now)

    async def venue(self, **settings: Any) -> AlpacaVenue:
        venue = adapter(self.url, **settings)
        await venue.connect()
        return venue


@pytest.fixture
def emulated(tmp_path: Path) -> Iterator[Emulated]:
    clock = Clock()
    exchange, app = start(tmp_path, clock=clock, feed=FEED)
    with serving(app) as url:
        yield Emulated(url, exchange, app, clock)
    exchange.book.close()


@pytest.fixture
async def alpaca(emulated: Emulated) -> AsyncIterator[AlpacaVenue]:
    venue = await emulated.venue()
    yield venue
    await venue.close()


def refusal(call: Any) -> tuple[int, int, str]:
    with pytest.raises(APIError) as refused:
        call()
    return refused.value.status_code, refused.value.code, refused.value.message


def buy(symbol: str, tif: TimeInForce, cid: str, **size: float) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol, side=OrderSide.BUY, time_in_force=tif, client_order_id=cid, **size
    )


# -- the emulator refuses what Alpaca refuses --------------------------------------------


def test_a_fractional_stock_order_must_be_a_day_order(emulated: Emulated) -> None:
    trading = emulated.trading
    assert refusal(lambda: trading.submit_order(buy("SPY", TimeInForce.GTC, "f-1", qty=0.5))) == (
        422, 42210000, "fractional orders must be DAY orders"
    )  # fmt: skip
    taken = trading.submit_order(buy("SPY", TimeInForce.DAY, "f-2", qty=0.5))
    assert (taken.status, taken.filled_qty) == (OrderStatus.FILLED, "0.5")
    whole = trading.submit_order(buy("SPY", TimeInForce.GTC, "w-1", qty=2))
    assert whole.status is OrderStatus.FILLED, "whole shares may be GTC"


def test_a_notional_order_must_be_a_day_order_and_buys_that_many_dollars(
    emulated: Emulated,
) -> None:
    trading = emulated.trading
    assert refusal(
        lambda: trading.submit_order(buy("SPY", TimeInForce.GTC, "n-1", notional=1000))
    ) == (422, 42210000, "fractional orders must be DAY orders")
    taken = trading.submit_order(buy("SPY", TimeInForce.DAY, "n-2", notional=1000))
    assert (taken.status, taken.notional, taken.qty) == (OrderStatus.FILLED, "1000", None)
    bought = Decimal(taken.filled_qty)
    assert bought == (Decimal(1000) / emulated.price("SPY")).quantize(Decimal("1e-9"), "ROUND_DOWN")


def sell(symbol: str, qty: float, tif: TimeInForce) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide.SELL, time_in_force=tif)


def test_a_fractional_quantity_is_never_sold_short(emulated: Emulated) -> None:
    trading = emulated.trading
    trading.submit_order(buy("SPY", TimeInForce.DAY, "long", qty=1.5))
    assert refusal(lambda: trading.submit_order(sell("SPY", 2.5, TimeInForce.DAY))) == (
        422, 42210000, "fractional orders cannot be sold short"
    )  # fmt: skip
    assert trading.submit_order(sell("SPY", 1.5, TimeInForce.DAY)).status is OrderStatus.FILLED
    short = trading.submit_order(sell("SPY", 3, TimeInForce.GTC))
    assert short.status is OrderStatus.FILLED, "whole shares may go short"


def test_crypto_takes_gtc_and_ioc_only(emulated: Emulated) -> None:
    trading = emulated.trading
    for tif in (TimeInForce.DAY, TimeInForce.FOK, TimeInForce.OPG):
        assert refusal(
            lambda t=tif: trading.submit_order(buy("BTC/USD", t, f"c-{t.value}", qty=0.01))
        ) == (422, 42210000, "invalid crypto time_in_force")
    assert trading.submit_order(buy("BTC/USD", TimeInForce.GTC, "c-1", qty=0.01)).status is (
        OrderStatus.FILLED
    )
    assert trading.submit_order(buy("BTC/USD", TimeInForce.IOC, "c-2", qty=0.01)).status is (
        OrderStatus.FILLED
    )


def test_crypto_has_no_plain_stop_order_but_rests_a_stop_limit(emulated: Emulated) -> None:
    trading = emulated.trading
    trading.submit_order(buy("BTC/USD", TimeInForce.GTC, "c-1", qty=0.01))
    stop = float((emulated.price("BTC/USD") * Decimal("0.95")).quantize(Decimal("0.01")))
    plain = StopOrderRequest(
        symbol="BTC/USD", qty=0.01, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
        stop_price=stop, client_order_id="c-stop",
    )  # fmt: skip
    assert refusal(lambda: trading.submit_order(plain)) == (
        422, 40010001, "invalid order type for crypto order"
    )  # fmt: skip
    limited = StopLimitOrderRequest(
        **plain.model_dump(exclude={"type", "order_type"}), limit_price=round(stop * 0.98, 2)
    )
    resting = trading.submit_order(limited.model_copy(update={"client_order_id": "c-stop-2"}))
    assert (resting.status, resting.order_type.value) == (OrderStatus.NEW, "stop_limit")
    assert (float(resting.stop_price), float(resting.limit_price)) == (stop, round(stop * 0.98, 2))


def test_crypto_is_never_sold_short(emulated: Emulated) -> None:
    short = sell("BTC/USD", 0.01, TimeInForce.GTC)
    assert refusal(lambda: emulated.trading.submit_order(short)) == (
        403, 40310000, "insufficient balance for BTC (requested: 0.01, available: 0)"
    )  # fmt: skip


def test_a_crypto_position_is_listed_without_its_slash(emulated: Emulated) -> None:
    """As Alpaca lists it (while orders, fills and market data say `BTC/USD`)."""
    emulated.trading.submit_order(buy("BTC/USD", TimeInForce.GTC, "c-1", qty=0.01))
    [position] = emulated.trading.get_all_positions()
    assert (position.symbol, position.asset_class.value) == ("BTCUSD", "crypto")


def test_assets_say_what_is_fractionable_and_shortable(emulated: Emulated) -> None:
    stock, coin = emulated.trading.get_asset("SPY"), emulated.trading.get_asset("BTC/USD")
    assert (stock.asset_class.value, stock.fractionable, stock.shortable) == (
        "us_equity", True, True
    )  # fmt: skip
    assert (coin.asset_class.value, coin.fractionable, coin.shortable) == ("crypto", True, False)
    assert (coin.min_trade_increment, coin.price_increment) == (0.000000001, 0.01)
    assert refusal(lambda: emulated.trading.get_asset("NOPE"))[0] == 404


def test_crypto_market_data_is_served_by_the_crypto_data_api(emulated: Emulated) -> None:
    crypto = CryptoHistoricalDataClient(KEY, SECRET, url_override=emulated.url)
    latest = crypto.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD"))
    assert Decimal(str(latest["BTC/USD"].price)) == emulated.price("BTC/USD")
    bars = crypto.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Hour, start=T0 - timedelta(hours=5)
        )
    )
    assert len(bars.data["BTC/USD"]) > 0
    stocks = StockHistoricalDataClient(KEY, SECRET, url_override=emulated.url)
    for ask in (
        lambda: stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="BTC/USD")),
        lambda: crypto.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="SPY")),
    ):
        with pytest.raises(APIError) as wrong_api:
            ask()
        assert wrong_api.value.status_code == 400
        assert "invalid symbol" in str(wrong_api.value)


# -- the adapter sends what Alpaca takes ------------------------------------------------


async def test_a_fractional_stock_order_goes_as_a_day_order(alpaca: AlpacaVenue) -> None:
    """The engine asks for GTC (its default); a fractional quantity is sent as DAY, the
    only time in force Alpaca takes for it. Whole shares stay GTC."""
    entry = await alpaca.submit(order("bot-1", qty="0.5"))
    assert (entry.state, entry.time_in_force) == (OrderState.FILLED, Tif.DAY)
    stop_price = (FEED.price("SPY", T0) * Decimal("0.95")).quantize(Decimal("0.01"))
    stop = await alpaca.submit(
        order("bot-2", side="sell", qty="0.5", type="stop", stop_price=stop_price)
    )
    assert (stop.state, stop.time_in_force) == (OrderState.OPEN, Tif.DAY)
    whole = await alpaca.submit(order("bot-3", qty="2"))
    assert whole.time_in_force is Tif.GTC


async def test_a_fractional_order_that_cannot_be_a_day_order_is_refused_before_sending(
    emulated: Emulated, alpaca: AlpacaVenue
) -> None:
    with pytest.raises(OrderRefused, match="fractional orders must be DAY orders"):
        await alpaca.submit(order("bot-ioc", qty="0.5", time_in_force="ioc"))
    assert "POST /v2/orders" not in emulated.app.state.calls


async def test_what_alpaca_will_not_sell_short_is_rejected_with_its_reason(
    alpaca: AlpacaVenue,
) -> None:
    with pytest.raises(Rejected, match="fractional orders cannot be sold short"):
        await alpaca.submit(order("bot-1", side="sell", qty="0.5"))
    with pytest.raises(Rejected, match="insufficient balance for BTC"):
        await alpaca.submit(order("bot-2", symbol="BTC/USD", side="sell", qty="0.01"))
    assert (await alpaca.market("BTC/USD")).shortable is False


async def test_stock_entries_are_sized_in_whole_shares_unless_fractional_is_chosen(
    emulated: Emulated, alpaca: AlpacaVenue
) -> None:
    """A whole-share position's stop is GTC and rests while the bot is down; a fractional
    one's is a DAY order that ends at the close. So whole shares, unless asked."""
    assert (await alpaca.market("SPY")).qty_step == 1
    fractional = await emulated.venue(fractional=True)
    rules = await fractional.market("SPY")
    assert (rules.qty_step, rules.min_notional) == (Decimal("0.000000001"), 1)
    await fractional.close()


async def test_a_crypto_stop_rests_as_a_stop_limit_and_fires(
    emulated: Emulated, alpaca: AlpacaVenue
) -> None:
    await alpaca.submit(order("bot-1", symbol="BTC/USD", qty="0.01"))
    stop_price = (emulated.price("BTC/USD") * Decimal("0.97")).quantize(Decimal("0.01"))
    stop = await alpaca.submit(
        order("bot-2", symbol="BTC/USD", side="sell", qty="0.01", type="stop",
              stop_price=stop_price, reduce_only=True)
    )  # fmt: skip
    assert (stop.state, stop.type, stop.stop_price) == (OrderState.OPEN, OrderType.STOP, stop_price)
    assert stop.limit_price is not None and stop.limit_price < stop_price
    assert [o.client_order_id for o in await alpaca.open_orders("BTC/USD")] == ["bot-2"]

    for _ in range(288 * 60):  # until the price path falls through the stop
        emulated.clock.now += FEED.step
        if FEED.price("BTC/USD", emulated.clock.now) <= stop_price:
            break
    assert (await alpaca.order("bot-2", "BTC/USD")).state is OrderState.FILLED
    assert await alpaca.positions() == []


async def test_a_crypto_position_is_known_by_its_pair(alpaca: AlpacaVenue) -> None:
    """Recovery matches positions by symbol: `BTCUSD` from Alpaca is the bot's `BTC/USD`."""
    await alpaca.submit(order("bot-1", symbol="BTC/USD", qty="0.01"))
    await alpaca.submit(order("bot-2", qty="2"))
    held = {(p.symbol, p.qty) for p in await alpaca.positions()}
    assert held == {("BTC/USD", Decimal("0.01")), ("SPY", Decimal(2))}


async def test_crypto_orders_follow_crypto_rules_before_sending(
    emulated: Emulated, alpaca: AlpacaVenue
) -> None:
    with pytest.raises(OrderRefused, match="gtc, ioc"):
        await alpaca.submit(order("bot-day", symbol="BTC/USD", qty="0.01", time_in_force="day"))
    assert "POST /v2/orders" not in emulated.app.state.calls
    rules = await alpaca.market("BTC/USD")
    assert (rules.qty_step, rules.price_tick) == (Decimal("0.000000001"), Decimal("0.01"))


async def test_crypto_prices_and_bars_come_from_the_crypto_data_api(
    emulated: Emulated, alpaca: AlpacaVenue
) -> None:
    emulated.app.state.calls.clear()
    prices = await alpaca.last_prices(["SPY", "BTC/USD"])
    assert prices == {"SPY": emulated.price("SPY"), "BTC/USD": emulated.price("BTC/USD")}
    bars = await alpaca.bars("BTC/USD", "1h", 5)
    assert len(bars) == 5 and all(b.low <= b.close <= b.high for b in bars)
    weeks = await alpaca.bars("BTC/USD", "1w", 3)  # a coin trades all week: Monday to Monday
    last_week = datetime(2026, 2, 23, tzinfo=UTC)  # T0 is Monday 2026-03-02
    assert [b.time for b in weeks] == [last_week - timedelta(weeks=n) for n in (2, 1, 0)]
    assert dict(emulated.app.state.calls) == {
        "GET /v2/stocks/trades/latest": 1,
        "GET /v1beta3/crypto/us/latest/trades": 1,
        "GET /v1beta3/crypto/us/bars": 2,
        "GET /v2/clock": 2,  # read beside each bars request: the newest completed by it
    }


async def test_an_unknown_symbol_is_not_found(alpaca: AlpacaVenue) -> None:
    with pytest.raises(NotFound):
        await alpaca.market("NOPE")
    with pytest.raises(Rejected, match="NOPE"):
        await alpaca.submit(order("bot-1", symbol="NOPE"))
