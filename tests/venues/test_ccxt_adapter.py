"""The ccxt adapter: real ccxt (asyncio) over real HTTP to the Binance emulators, spot
and USD-M futures, and every failure mapped to the error class that tells the engine
what it may do."""

from __future__ import annotations

import gc
import logging
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ccxt", reason="needs ccxt: pip install 'botwarden[ccxt]'")

from botwarden.venues.base import (
    Ambiguous,
    AuthError,
    NotFound,
    OrderState,
    Rejected,
    Retryable,
)
from botwarden.venues.ccxt import CcxtVenue, binance_error, rewrite_hosts
from botwarden.venues.emulators.binance import Flavour, create_app
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.book import BookSettings, PaperBook
from botwarden.venues.paper.faults import FaultPlan
from botwarden.venues.paper.venue import PaperVenue
from botwarden.venues.retry import RetryPolicy
from tests.state.test_crash import free_port
from tests.venues.test_paper import FEED, T0, Clock, first_time_price, order

KEY, SECRET = "binance-test-key", "binance-test-secret"
QUICK = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, deadline=5)
EXCHANGES: dict[Flavour, str] = {"spot": "binance", "usdm": "binanceusdm"}
SYMBOLS: dict[Flavour, str] = {"spot": "BTC/USDT", "usdm": "BTC/USDT:USDT"}


def start(
    tmp_path: Path,
    flavour: Flavour,
    faults: str = "",
    clock: Callable[[], datetime] | None = None,
) -> tuple[PaperVenue, object]:
    """A Binance emulator over a paper exchange kept the way Binance keeps accounts:
    USDT, client ids unique among open orders, no shorting on spot, reduce-only orders
    honoured on futures."""
    futures = flavour == "usdm"
    settings = BookSettings(
        currency="USDT", client_ids="binance", shorting=futures, reduce_only=futures
    )
    venue = PaperVenue(
        PaperBook(tmp_path / f"binance-{flavour}.db", FEED, settings),
        clock or Clock(),
        FaultPlan.parse(faults),
    )
    return venue, create_app(venue, flavour, KEY, SECRET)


def adapter(
    url: str, flavour: Flavour, key: str = KEY, timeout: float = 2.0, **extra: Any
) -> CcxtVenue:
    return CcxtVenue(
        EXCHANGES[flavour],
        key,
        SECRET,
        base_url=url,
        symbols=[SYMBOLS[flavour]],
        timeout=timeout,
        reads=QUICK,
        cancels=QUICK,
        throttle=False,  # ccxt paces requests to Binance's limits; the emulator has none
        **extra,
    )


@dataclass
class Emulated:
    venue: CcxtVenue
    clock: Clock
    exchange: PaperVenue
    calls: Counter[str]
    """`METHOD /path` -> requests the emulator served."""
    flavour: Flavour
    url: str

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.flavour]


@asynccontextmanager
async def emulated_ccxt(
    tmp_path: Path, flavour: Flavour, faults: str = ""
) -> AsyncIterator[Emulated]:
    """The adapter, connected to a Binance emulator over a paper exchange with
    `faults`, with the exchange, its clock and the emulator's call counts."""
    clock = Clock()
    exchange, app = start(tmp_path, flavour, faults, clock)
    with serving(app) as url:
        venue = adapter(url, flavour, host_clock=clock)  # the host and the venue agree
        await venue.connect()
        try:
            yield Emulated(venue, clock, exchange, app.state.calls, flavour, url)
        finally:
            await venue.close()
    exchange.book.close()


@pytest.fixture(params=["spot", "usdm"])
async def binance(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Emulated]:
    async with emulated_ccxt(tmp_path, request.param) as emulated:
        yield emulated


def btc(cid: str, **extra: object):
    return order(cid, symbol=extra.pop("symbol", "BTC/USDT"), qty=extra.pop("qty", "0.01"), **extra)


async def test_markets_come_from_exchange_info_with_binances_filters(binance) -> None:
    venue = binance.venue
    rules = await venue.market(binance.symbol)
    assert (rules.qty_step, rules.min_qty, rules.price_tick) == (
        Decimal("0.001"), Decimal("0.001"), Decimal("0.1")
    )  # fmt: skip
    assert rules.shortable is (binance.flavour == "usdm")
    assert venue.capabilities.client_ids == "unique_while_open"
    with pytest.raises(NotFound, match="unknown symbol"):
        await venue.market("DOGE/USDT")


async def test_a_stop_is_found_listed_and_canceled_by_its_client_id(binance) -> None:
    """On USD-M the stop lives in the algo-order service: found, listed and canceled
    there, with the same calls to the port as anywhere else."""
    venue, symbol = binance.venue, binance.symbol
    await venue.submit(btc("bw-entry", symbol=symbol))
    stop_price = (FEED.price("BTC/USDT", T0) * Decimal("0.95")).quantize(Decimal("0.1"))
    stop = await venue.submit(
        btc("bw-stop", symbol=symbol, side="sell", type="stop", stop_price=stop_price)
    )
    assert (stop.type.value, stop.state, stop.stop_price) == ("stop", OrderState.OPEN, stop_price)
    [listed] = await venue.open_orders()
    assert (listed.client_order_id, listed.type.value) == ("bw-stop", "stop")
    found = await venue.order("bw-stop", symbol)
    assert (found.state, found.stop_price, found.qty) == (
        OrderState.OPEN, stop_price, Decimal("0.01")
    )  # fmt: skip
    assert (await venue.cancel("bw-stop", symbol)).state is OrderState.CANCELED
    assert await venue.open_orders() == []
    if binance.flavour == "usdm":
        assert binance.calls["POST /fapi/v1/algoOrder"] == 1
        assert binance.calls["DELETE /fapi/v1/algoOrder"] == 1


async def test_a_spot_account_holds_coins_not_positions(tmp_path: Path) -> None:
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        venue = emulated.venue
        await venue.submit(btc("bw-buy", qty="0.02"))
        [held] = await venue.positions()
        assert (held.symbol, held.side.value, held.qty, held.avg_entry_price) == (
            "BTC/USDT", "long", Decimal("0.02"), None
        )  # fmt: skip
        with pytest.raises(Rejected, match="insufficient balance"):
            await venue.submit(btc("bw-short", side="sell", qty="0.05"))


async def test_a_futures_position_carries_its_entry_and_can_be_short(tmp_path: Path) -> None:
    async with emulated_ccxt(tmp_path, "usdm") as emulated:
        venue, symbol = emulated.venue, emulated.symbol
        await venue.submit(btc("bw-short", symbol=symbol, side="sell", qty="0.02"))
        [held] = await venue.positions()
        assert (held.symbol, held.side.value, held.qty, held.avg_entry_price) == (
            symbol, "short", Decimal("0.02"), FEED.price("BTC/USDT", T0)
        )  # fmt: skip
        balance = await venue.balance()
        assert balance.cash == Decimal("100000"), "a futures wallet does not pay for a position"


async def test_a_triggered_futures_stop_names_its_fills_by_the_stops_client_id(
    tmp_path: Path,
) -> None:
    """A USD-M stop trades as a new market order of its own; its fills still come back
    under the client id the bot gave the stop (through the stop's actualOrderId)."""
    async with emulated_ccxt(tmp_path, "usdm") as emulated:
        venue, clock, symbol = emulated.venue, emulated.clock, emulated.symbol
        await venue.submit(btc("bw-entry", symbol=symbol))
        stop_price = (FEED.price("BTC/USDT", T0) * Decimal("0.99")).quantize(Decimal("0.1"))
        await venue.submit(
            btc("bw-stop", symbol=symbol, side="sell", type="stop", stop_price=stop_price)
        )
        clock.now = first_time_price("BTC/USDT", T0, lambda p: p <= stop_price)
        found = await venue.order("bw-stop", symbol)
        assert (found.state, found.filled_qty) == (OrderState.FILLED, Decimal("0.01"))
        fills = (await venue.fills()).fills
        assert [(f.client_order_id, f.side.value) for f in fills] == [
            ("bw-entry", "buy"),
            ("bw-stop", "sell"),
        ]
        assert await venue.positions() == []


async def test_fills_page_by_cursor_and_since(binance) -> None:
    venue, clock, symbol = binance.venue, binance.clock, binance.symbol
    await venue.submit(btc("bw-1", symbol=symbol))
    first = await venue.fills()
    assert [f.client_order_id for f in first.fills] == ["bw-1"]
    assert (await venue.fills(cursor=first.cursor)).fills == []
    clock.now = T0 + timedelta(hours=1)
    await venue.submit(btc("bw-2", symbol=symbol))
    assert [f.client_order_id for f in (await venue.fills(cursor=first.cursor)).fills] == ["bw-2"]
    since = await venue.fills(since=T0 + timedelta(minutes=30))
    assert [f.client_order_id for f in since.fills] == ["bw-2"]


async def test_binance_refusals_are_rejected_with_their_codes(binance) -> None:
    venue, symbol, spot = binance.venue, binance.symbol, binance.flavour == "spot"
    limit = (FEED.price("BTC/USDT", T0) * Decimal("0.9")).quantize(Decimal("0.1"))
    await venue.submit(btc("bw-open", symbol=symbol, type="limit", limit_price=limit))
    with pytest.raises(Rejected) as duplicate:
        await venue.submit(btc("bw-open", symbol=symbol, type="limit", limit_price=limit))
    assert duplicate.value.code == ("-2010" if spot else "-4116")
    with pytest.raises(Rejected, match=r"(?i)insufficient"):
        await venue.submit(btc("bw-huge", symbol=symbol, qty="1000"))
    below = (FEED.price("BTC/USDT", T0) * Decimal("0.9")).quantize(Decimal("0.1"))
    with pytest.raises(Rejected, match="immediately"):  # a buy stop below the price
        await venue.submit(btc("bw-stop", symbol=symbol, side="buy", type="stop", stop_price=below))
    with pytest.raises(NotFound):
        await venue.order("never-sent", symbol)


async def test_an_order_off_the_lot_step_is_refused_before_it_is_sent(binance) -> None:
    from botwarden.domain.markets import OrderRefused

    with pytest.raises(OrderRefused, match=r"lot step 0\.001"):
        await binance.venue.submit(btc("bw-odd", symbol=binance.symbol, qty="0.0105"))
    assert await binance.exchange.all_orders() == []


async def test_a_timeframe_binance_has_but_botwarden_lacks_is_refused_unasked(binance) -> None:
    """ccxt lists Binance's every interval; a strategy gets botwarden's only, the same on
    every venue, so it never meets a timeframe that a change of venue would take away."""
    for timeframe in ("3m", "2h", "1M"):
        with pytest.raises(
            NotFound, match=f"'{timeframe}'; use one of 1m, 5m, 15m, 1h, 4h, 1d, 1w"
        ):
            await binance.venue.bars(binance.symbol, timeframe, 3)
    await binance.venue.bars(binance.symbol, "4h", 3)
    asked = sum(n for call, n in binance.calls.items() if call.endswith("/klines"))
    assert asked == 1, "only the 4h bars were asked for"


async def test_an_answer_lost_after_acceptance_is_ambiguous_and_found_again(
    tmp_path: Path,
) -> None:
    async with emulated_ccxt(tmp_path, "usdm", "timeout_after:on=submit,nth=1") as emulated:
        venue, symbol = emulated.venue, emulated.symbol
        with pytest.raises(Ambiguous, match="-1007"):
            await venue.submit(btc("bw-1", symbol=symbol))
        assert (await venue.order("bw-1", symbol)).state is OrderState.FILLED


async def test_an_answer_that_never_comes_is_ambiguous_after_the_timeout(tmp_path: Path) -> None:
    clock = Clock()
    exchange, app = start(tmp_path, "spot", "slow:on=submit,nth=1,seconds=3", clock)
    with serving(app) as url:
        venue = adapter(url, "spot", timeout=0.5)
        await venue.connect()
        with pytest.raises(Ambiguous):
            await venue.submit(btc("bw-slow"))
        assert (await venue.order("bw-slow", "BTC/USDT")).state is OrderState.FILLED
        await venue.close()
    exchange.book.close()


async def test_rate_limits_and_outages_are_retried_for_reads(tmp_path: Path) -> None:
    faults = "rate_limit:on=open_orders,nth=1; outage:on=open_orders,nth=2"
    async with emulated_ccxt(tmp_path, "usdm", faults) as emulated:
        assert await emulated.venue.open_orders() == []
        asked = (
            emulated.calls["GET /fapi/v1/openOrders"]
            + emulated.calls["GET /fapi/v1/openAlgoOrders"]
        )
        assert asked == 4, "a 429 and a 503 (the two listings go at once), each asked again"


async def test_wrong_keys_are_an_auth_error_at_connect(tmp_path: Path) -> None:
    exchange, app = start(tmp_path, "usdm")
    with serving(app) as url:
        venue = adapter(url, "usdm", key="stolen-key")
        with pytest.raises(AuthError, match="-2015"):
            await venue.connect()
        await venue.close()
    exchange.book.close()


async def test_a_venue_that_cannot_be_reached_is_retryable_and_a_later_connect_works(
    tmp_path: Path,
) -> None:
    """The bot waits for a venue that is down at start (the runner retries `connect`):
    a failed connect says why, and leaves nothing behind that the next one trips on."""
    port = free_port()
    venue = adapter(f"http://127.0.0.1:{port}", "usdm", timeout=1, host_clock=Clock())
    assert await failure(venue.connect()) == (
        "Retryable: binanceusdm: markets could not load: could not connect"
    )
    exchange, app = start(tmp_path, "usdm")
    with serving(app, port=port), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await venue.connect()
        assert await venue.positions() == []
        await venue.close()
        gc.collect()
    exchange.book.close()
    assert not [w for w in caught if "Unclosed" in str(w.message)], "a leaked HTTP session"


async def failure(call: Awaitable[object]) -> str:
    """How `call` failed, as a line; kept apart so that nothing of the failure (its
    traceback's frames) outlives it."""
    try:
        await call
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    raise AssertionError("it did not fail")


async def test_a_venue_that_answers_nothing_at_start_is_retryable_not_ambiguous(
    tmp_path: Path,
) -> None:
    """Connecting changes nothing at the venue, so no answer there is only "try later"."""
    exchange, app = start(tmp_path, "usdm", "server_error:on=balance")
    with serving(app) as url:
        venue = adapter(url, "usdm", host_clock=Clock())
        with pytest.raises(Retryable, match=r"the account could not be read: .*-100[07]"):
            await venue.connect()
        await venue.close()
    exchange.book.close()


def test_binance_errors_are_read_from_the_body_whatever_the_host() -> None:
    assert binance_error('binance {"code":-2019,"msg":"Margin is insufficient."}') == (
        -2019,
        "Margin is insufficient.",
    )
    assert binance_error("binance GET http://x/api/v3/order 502 Bad Gateway <html>") is None
    assert binance_error('binance {"code":200,"msg":"success"}') is None


def test_every_api_host_is_moved_and_its_path_kept() -> None:
    moved = rewrite_hosts(
        {
            "public": "https://api.binance.com/api/v3",
            "x": {"y": "https://fapi.binance.com/fapi/v1"},
        },
        "http://127.0.0.1:9/",
    )
    assert moved == {
        "public": "http://127.0.0.1:9/api/v3",
        "x": {"y": "http://127.0.0.1:9/fapi/v1"},
    }


async def test_a_stop_that_triggers_long_after_the_last_look_still_names_its_fills(
    tmp_path: Path,
) -> None:
    """The bot read its fills, then the stop fired 30 hours later: the new fill is named
    by the stop's client id, not by the number of the order it became."""
    async with emulated_ccxt(tmp_path, "usdm") as emulated:
        venue, clock, symbol = emulated.venue, emulated.clock, emulated.symbol
        await venue.submit(btc("bw-entry", symbol=symbol))
        stop_price = (FEED.price("BTC/USDT", T0) * Decimal("0.97")).quantize(Decimal("0.1"))
        await venue.submit(
            btc("bw-stop", symbol=symbol, side="sell", type="stop", stop_price=stop_price)
        )
        seen = await venue.fills()
        crossed = first_time_price("BTC/USDT", T0, lambda p: p <= stop_price)
        assert crossed - T0 > timedelta(hours=30), "the test needs a stop that fires late"
        clock.now = crossed
        restarted = adapter(emulated.url, "usdm")
        await restarted.connect()
        later = await restarted.fills(cursor=seen.cursor)
        assert [(f.client_order_id, f.side.value) for f in later.fills] == [("bw-stop", "sell")]
        await restarted.close()


async def test_fills_since_more_than_a_week_ago_are_found_on_futures(tmp_path: Path) -> None:
    """ccxt asks USD-M for one week of trades at a time: the adapter walks the weeks."""
    async with emulated_ccxt(tmp_path, "usdm") as emulated:
        await emulated.venue.submit(btc("bw-1", symbol=emulated.symbol))
        page = await emulated.venue.fills(since=T0 - timedelta(days=10))
        assert [f.client_order_id for f in page.fills] == ["bw-1"]


async def test_a_cancel_whose_confirmation_is_lost_is_ambiguous(tmp_path: Path) -> None:
    faults = "; ".join(f"error_before:on=order,nth={n}" for n in (2, 3, 4))
    async with emulated_ccxt(tmp_path, "usdm", faults) as emulated:
        venue, symbol = emulated.venue, emulated.symbol
        limit = (FEED.price("BTC/USDT", T0) * Decimal("0.9")).quantize(Decimal("0.1"))
        await venue.submit(btc("bw-limit", symbol=symbol, type="limit", limit_price=limit))
        with pytest.raises(Ambiguous, match="canceled, but"):
            await venue.cancel("bw-limit", symbol)
        assert (await venue.order("bw-limit", symbol)).state is OrderState.CANCELED


async def test_a_rate_limit_passes_on_how_long_to_wait(tmp_path: Path) -> None:
    faults = "rate_limit:on=submit,nth=1,retry_after=7"
    async with emulated_ccxt(tmp_path, "spot", faults) as emulated:
        with pytest.raises(Retryable) as limited:
            await emulated.venue.submit(btc("bw-1"))
        assert limited.value.retry_after == 7


async def test_spot_equity_counts_the_coins_at_their_price(tmp_path: Path) -> None:
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        await emulated.venue.submit(btc("bw-1", qty="0.5"))
        balance = await emulated.venue.balance()
        price = FEED.price("BTC/USDT", T0)
        assert balance.cash == Decimal(100000) - Decimal("0.5") * price
        assert balance.equity == Decimal(100000)


def test_a_futures_stops_state_follows_the_order_it_became() -> None:
    venue = CcxtVenue("binanceusdm", "k", "s")
    base = {"symbol": "BTC/USDT:USDT", "side": "sell", "amount": 1, "timestamp": 0,
            "triggerPrice": 100, "clientOrderId": "bw-stop", "id": "7"}  # fmt: skip

    def state(status: str, algo: str, filled: float) -> OrderState:
        order = {
            **base,
            "status": status,
            "filled": filled,
            "info": {"algoId": 7, "algoStatus": algo},
        }
        return venue._order(order).state

    assert state("open", "NEW", 0) is OrderState.OPEN
    assert state("open", "TRIGGERED", 0.4) is OrderState.PARTIALLY_FILLED
    assert state("closed", "FINISHED", 1) is OrderState.FILLED
    assert state("closed", "FINISHED", 0) is OrderState.CANCELED, "triggered, then canceled"
    assert state("closed", "FINISHED", 0.4) is OrderState.CANCELED


def skewed(by: timedelta) -> Callable[[], datetime]:
    """A venue's clock `by` ahead of this host's (behind, when negative)."""
    return lambda: datetime.now(UTC) + by


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
@pytest.mark.parametrize("skew", [timedelta(days=8), -timedelta(days=8)], ids=["ahead", "behind"])
async def test_a_fill_is_learned_whichever_way_the_venues_clock_is_off(
    tmp_path: Path, flavour: Flavour, skew: timedelta
) -> None:
    """Issue 12.5: the venue's clock a week and more off the host's (a lagging host
    before NTP syncs, an accelerated emulator). The bot asks for fills since the host's
    time it sent its first order; the venue stamps the fill with its own time."""
    exchange, app = start(tmp_path, flavour, clock=skewed(skew))
    symbol = SYMBOLS[flavour]
    with serving(app) as url:
        venue = adapter(url, flavour)  # the host's real clock
        await venue.connect()
        sent_at = datetime.now(UTC)
        await venue.submit(btc("bw-entry", symbol=symbol))
        page = await venue.fills(since=sent_at)
        assert [f.client_order_id for f in page.fills] == ["bw-entry"]
        assert (await venue.fills(cursor=page.cursor)).fills == []
        await venue.submit(btc("bw-exit", symbol=symbol, side="sell"))
        later = await venue.fills(cursor=page.cursor)
        assert [f.client_order_id for f in later.fills] == ["bw-exit"]
        await venue.close()
    exchange.book.close()


async def test_connect_reads_the_venues_clock_and_warns_when_it_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exchange, app = start(tmp_path, "usdm", clock=skewed(timedelta(days=8)))
    with serving(app) as url:
        venue = adapter(url, "usdm")
        with caplog.at_level(logging.WARNING, logger="botwarden.venues.ccxt"):
            await venue.connect()
        assert "clock is 8.0 days ahead of this host's (tolerance 5 s)" in caplog.text
        reading = await venue.read_clock()
        assert reading.skewed
        assert abs(reading.offset - timedelta(days=8)) < timedelta(minutes=1)
        await venue.close()

        caplog.clear()
        tolerant = adapter(url, "usdm", clock_tolerance=timedelta(days=9))
        with caplog.at_level(logging.WARNING, logger="botwarden.venues.ccxt"):
            await tolerant.connect()
        assert "clock" not in caplog.text
        assert not (await tolerant.read_clock()).skewed
        await tolerant.close()
    exchange.book.close()


def away(fraction: str) -> Decimal:
    """BTC's price at T0 times `fraction`, on the tick."""
    return (FEED.price("BTC/USDT", T0) * Decimal(fraction)).quantize(Decimal("0.1"))


async def test_a_spot_stop_and_take_profit_rest_as_one_oco_list(tmp_path: Path) -> None:
    """ccxt has no unified OCO: the adapter sends Binance's order list itself, every id
    its own, and reads the pair back from the legs' orderListId."""
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        venue = emulated.venue
        assert venue.capabilities.oco and not venue.capabilities.reduce_only
        await venue.submit(btc("bw-entry"))
        stop = btc("bw-1", side="sell", type="stop", stop_price=away("0.98"))
        target = btc("bw-1t", side="sell", type="limit", limit_price=away("1.02"))
        taken = await venue.submit_oco(stop, target)
        assert [(o.client_order_id, o.type.value, o.oco_with) for o in taken] == [
            ("bw-1", "stop", "bw-1t"), ("bw-1t", "limit", "bw-1")
        ]  # fmt: skip
        assert taken[1].limit_price == target.limit_price
        assert emulated.calls["POST /api/v3/orderList/oco"] == 1
        listed = {o.client_order_id: o.oco_with for o in await venue.open_orders()}
        assert listed == {"bw-1": "bw-1t", "bw-1t": "bw-1"}

        restarted = adapter(emulated.url, "spot", host_clock=emulated.clock)
        await restarted.connect()
        found = await restarted.order("bw-1t", "BTC/USDT")
        assert found.oco_with == "bw-1", "a lookup learns the other leg from the list"
        assert emulated.calls["GET /api/v3/orderList"] == 1
        canceled = await restarted.cancel("bw-1", "BTC/USDT")
        assert (canceled.state, canceled.oco_with) == (OrderState.CANCELED, "bw-1t")
        assert (await restarted.order("bw-1t", "BTC/USDT")).state is OrderState.CANCELED
        assert await restarted.open_orders() == []
        await restarted.close()


async def test_a_spot_oco_the_exchange_refuses_is_rejected_with_binances_reason(
    tmp_path: Path,
) -> None:
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        venue = emulated.venue
        await venue.submit(btc("bw-entry"))
        stop = btc("bw-1", side="sell", type="stop", stop_price=away("0.98"))
        below = btc("bw-1t", side="sell", type="limit", limit_price=away("0.99"))
        with pytest.raises(Rejected, match="relationship of the prices") as refused:
            await venue.submit_oco(stop, below)
        assert refused.value.code == "-2010"
        assert await venue.open_orders() == []


async def test_a_futures_take_profit_rests_in_the_algo_service_not_the_book(
    tmp_path: Path,
) -> None:
    """A reduce-only limit (the engine's take-profit) goes as a reduce-only
    TAKE_PROFIT_MARKET algo order, and comes back as the port's limit at its price."""
    async with emulated_ccxt(tmp_path, "usdm") as emulated:
        venue, symbol = emulated.venue, emulated.symbol
        assert venue.capabilities.reduce_only and not venue.capabilities.oco
        await venue.submit(btc("bw-entry", symbol=symbol))
        target = away("1.02")
        taken = await venue.submit(
            btc("bw-take", symbol=symbol, side="sell", type="limit", limit_price=target,
                reduce_only=True)
        )  # fmt: skip
        assert (taken.type.value, taken.limit_price, taken.state) == (
            "limit",
            target,
            OrderState.OPEN,
        )
        assert emulated.calls["POST /fapi/v1/algoOrder"] == 1
        assert emulated.calls["POST /fapi/v1/order"] == 1, "only the entry is in the book"
        [listed] = await venue.open_orders()
        assert (listed.client_order_id, listed.type.value, listed.limit_price) == (
            "bw-take", "limit", target
        )  # fmt: skip
        assert (await venue.cancel("bw-take", symbol)).state is OrderState.CANCELED
        assert emulated.calls["DELETE /fapi/v1/algoOrder"] == 1

        reached = btc("bw-reached", symbol=symbol, side="sell", type="limit",
                      limit_price=away("0.99"), reduce_only=True)  # fmt: skip
        taken = await venue.submit(reached)
        assert taken.state is OrderState.FILLED, "a take-profit already reached is taken"
        assert emulated.calls["POST /fapi/v1/algoOrder"] == 2, "refused there: -2021"
        assert emulated.calls["POST /fapi/v1/order"] == 2, "then a limit in the book"
        assert await venue.positions() == []
        with pytest.raises(Rejected, match="no one-cancels-other"):
            await venue.submit_oco(btc("bw-s", symbol=symbol), btc("bw-st", symbol=symbol))


async def test_a_spot_stop_is_moved_by_one_cancel_replace_under_the_bots_ids(
    tmp_path: Path,
) -> None:
    """Binance spot locks the coins a stop sells: a second stop beside it is refused,
    so the adapter moves one with Binance's cancel-replace, one request, both ids the
    bot's; the exchange's book shows the old one canceled as the new one was taken."""
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        venue = emulated.venue
        assert venue.capabilities.replaces
        await venue.submit(btc("bw-entry"))
        first = btc("bw-1", side="sell", type="stop", stop_price=away("0.97"))
        await venue.submit(first)
        moved = btc("bw-2", side="sell", type="stop", stop_price=away("0.98"))
        taken = await venue.replace(first, moved)
        assert (taken.client_order_id, taken.stop_price, taken.state) == (
            "bw-2", moved.stop_price, OrderState.OPEN
        )  # fmt: skip
        assert emulated.calls["POST /api/v3/order/cancelReplace"] == 1
        assert emulated.calls["DELETE /api/v3/order"] == 0
        book = {o.client_order_id: o for o in emulated.exchange.book.all_orders()}
        assert book["bw-1"].state is OrderState.CANCELED
        assert book["bw-1"].reason == "replaced by bw-2", "in one change of the book"
        assert [o.client_order_id for o in await venue.open_orders()] == ["bw-2"]


async def test_a_spot_cancel_replace_refused_says_whether_the_old_order_went(
    tmp_path: Path,
) -> None:
    """Binance cancels first: a cancel that fails leaves the new order unattempted
    (-2022), and a new order refused after its cancel leaves neither (-2021). Either
    is `Rejected`; the exchange's open orders tell which."""
    async with emulated_ccxt(tmp_path, "spot") as emulated:
        venue, book = emulated.venue, emulated.exchange.book
        await venue.submit(btc("bw-entry"))
        first = btc("bw-1", side="sell", type="stop", stop_price=away("0.97"))
        moved = btc("bw-2", side="sell", type="stop", stop_price=away("0.98"))
        with pytest.raises(Rejected, match="cancel-replace failed") as failed:
            await venue.replace(first, moved)  # bw-1 was never placed
        assert failed.value.code == "-2022"
        assert book.open_orders() == [], "nothing placed"
        await venue.submit(first)
        above = btc("bw-3", side="sell", type="stop", stop_price=away("1.02"))  # fires at once
        with pytest.raises(Rejected, match="partially failed") as partly:
            await venue.replace(first, above)
        assert partly.value.code == "-2021"
        assert book.open_orders() == [], "the old one canceled, the new one refused"
        assert book.order("bw-1").state is OrderState.CANCELED
