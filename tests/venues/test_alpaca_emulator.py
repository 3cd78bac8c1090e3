"""The Alpaca emulator, driven by the real, unmodified alpaca-py client over HTTP."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

pytest.importorskip(
    "alpaca", reason="the Alpaca emulator tests need alpaca-py: pip install 'botwarden[alpaca]'"
)

from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest, StopOrderRequest

from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.venue import PaperVenue
from tests.support.alpaca import KEY, SECRET, client, start
from tests.venues.test_paper import FEED, T0, Clock


@pytest.fixture
def alpaca(tmp_path: Path) -> Iterator[tuple[TradingClient, PaperVenue]]:
    venue, app = start(tmp_path)
    with serving(app) as url:
        yield client(url), venue
    venue.book.close()


def market(cid: str, qty: float = 10) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="SPY",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        client_order_id=cid,
    )


def test_an_order_fills_and_is_found_by_its_client_order_id(alpaca) -> None:
    trading, _ = alpaca
    sent = trading.submit_order(market("bot-000001"))
    assert sent.status is OrderStatus.FILLED
    assert Decimal(sent.filled_avg_price) == FEED.price("SPY", T0)

    found = trading.get_order_by_client_id("bot-000001")
    assert (found.id, found.status) == (sent.id, OrderStatus.FILLED)
    assert trading.get_order_by_id(sent.id).client_order_id == "bot-000001"

    [position] = trading.get_all_positions()
    assert (position.symbol, position.qty, position.side.value) == ("SPY", "10", "long")
    account = trading.get_account()
    assert Decimal(account.cash) == Decimal(100000) - 10 * FEED.price("SPY", T0)


def test_a_stop_rests_is_listed_and_can_be_canceled(alpaca) -> None:
    trading, _ = alpaca
    trading.submit_order(market("bot-entry"))
    stop_price = float((FEED.price("SPY", T0) * Decimal("0.95")).quantize(Decimal("0.01")))
    stop = trading.submit_order(
        StopOrderRequest(
            symbol="SPY", qty=10, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            stop_price=stop_price, client_order_id="bot-stop",
        )
    )  # fmt: skip
    assert stop.status is OrderStatus.NEW
    listed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [o.client_order_id for o in listed] == ["bot-stop"]

    trading.cancel_order_by_id(stop.id)
    assert trading.get_order_by_client_id("bot-stop").status is OrderStatus.CANCELED
    closed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert {o.client_order_id for o in closed} == {"bot-entry", "bot-stop"}


def test_refusals_come_back_with_alpacas_codes(alpaca) -> None:
    trading, _ = alpaca
    trading.submit_order(market("bot-000001"))
    with pytest.raises(APIError) as duplicate:
        trading.submit_order(market("bot-000001"))
    assert (duplicate.value.status_code, duplicate.value.code) == (422, 40010001)
    with pytest.raises(APIError) as broke:
        trading.submit_order(market("bot-000002", qty=10**7))
    assert (broke.value.status_code, broke.value.code) == (403, 40310000)
    with pytest.raises(APIError) as missing:
        trading.get_order_by_client_id("never-sent")
    assert missing.value.status_code == 404


def test_fills_are_listed_as_account_activities(tmp_path: Path) -> None:
    from datetime import timedelta

    from alpaca.trading.models import TradeActivity

    clock = Clock()
    venue, app = start(tmp_path, "partial_fill:fraction=0.4,times=1", clock)
    with serving(app) as url:
        trading = client(url)
        sent = trading.submit_order(market("bot-000001"))
        early = trading.get("/account/activities/FILL", {"direction": "asc"})
        assert [(a["cum_qty"], a["leaves_qty"]) for a in early] == [("4", "6")]
        clock.now += timedelta(seconds=1)
        trading.get_order_by_client_id("bot-000001")  # the next look completes it
        raw = trading.get("/account/activities/FILL", {"direction": "asc"})
        activities = [TradeActivity(**a) for a in raw]  # alpaca-py's own model
        assert [
            (str(a.order_id), a.qty, a.cum_qty, a.leaves_qty, a.type.value) for a in activities
        ] == [
            (str(sent.id), 4, 4, 6, "partial_fill"),
            (str(sent.id), 6, 10, 0, "fill"),
        ]
        newest_first = trading.get("/account/activities/FILL")
        assert [a["id"] for a in newest_first] == [a["id"] for a in reversed(raw)]
        after = trading.get(
            "/account/activities/FILL", {"direction": "asc", "page_token": raw[0]["id"]}
        )
        assert [a["id"] for a in after] == [raw[1]["id"]]
    venue.book.close()


def test_time_in_force_and_ids_are_kept_as_alpaca_keeps_them(alpaca) -> None:
    from alpaca.trading.requests import LimitOrderRequest

    trading, _ = alpaca
    long_id = "x" * 40  # Alpaca takes client order ids up to 128 characters
    day = trading.submit_order(
        MarketOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id=long_id,
        )
    )
    assert (day.time_in_force, day.client_order_id) == (TimeInForce.DAY, long_id)
    far = float((FEED.price("SPY", T0) * Decimal("0.5")).quantize(Decimal("0.01")))
    ioc = trading.submit_order(
        LimitOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.IOC,
            limit_price=far,
            client_order_id="ioc-1",
        )
    )
    assert ioc.status is OrderStatus.CANCELED
    with pytest.raises(APIError) as foreign:
        trading.get_order_by_id("3f2b1c4d-aaaa-4bbb-8ccc-000000000001")
    assert foreign.value.status_code == 404


def test_bars_are_served_for_alpacas_timeframe_names(tmp_path: Path) -> None:
    """alpaca-py sends `TimeFrame.value` (`4Hour`, `1Week`); Alpaca also takes the short
    `4H` and `1W`. A timeframe the paper exchange has no bars of is refused with a 422."""
    venue, app = start(tmp_path)
    assert (TimeFrame(4, TimeFrameUnit.Hour).value, TimeFrame.Week.value) == ("4Hour", "1Week")
    with serving(app) as url:
        data = StockHistoricalDataClient(KEY, SECRET, url_override=url)

        def opens(frame: TimeFrame) -> list[datetime]:
            request = StockBarsRequest(symbol_or_symbols="SPY", timeframe=frame, limit=3)
            return [b.timestamp for b in data.get_stock_bars(request).data["SPY"]]

        monday = datetime(2026, 3, 2, tzinfo=UTC)  # T0's day, 14:30 UTC
        assert opens(TimeFrame(4, TimeFrameUnit.Hour)) == [
            monday + timedelta(hours=h) for h in (0, 4, 8)
        ]
        assert opens(TimeFrame.Week) == [monday - timedelta(weeks=w) for w in (3, 2, 1)]
        with pytest.raises(APIError) as monthly:
            opens(TimeFrame.Month)
        assert monthly.value.status_code == 422
        for short, long in (("4H", "4Hour"), ("1W", "1Week"), ("15T", "15Min")):
            assert raw_bars(url, short) == raw_bars(url, long)
    venue.book.close()


def raw_bars(url: str, timeframe: str) -> list[dict[str, object]]:
    query = urlencode({"symbols": "SPY", "timeframe": timeframe, "limit": 3})
    request = urllib.request.Request(f"{url}/v2/stocks/bars?{query}")
    request.add_header("APCA-API-KEY-ID", KEY)
    request.add_header("APCA-API-SECRET-KEY", SECRET)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["bars"]["SPY"]


def test_wrong_keys_are_refused(tmp_path: Path) -> None:
    venue, app = start(tmp_path)
    with serving(app) as url, pytest.raises(APIError) as refused:
        client(url, key="PKWRONG").get_account()
    assert refused.value.status_code == 401
    venue.book.close()


def test_injected_faults_reach_the_client_as_http_failures(tmp_path: Path) -> None:
    venue, app = start(tmp_path, "timeout_after:on=submit,nth=1; rate_limit:on=positions,nth=1")
    with serving(app) as url:
        trading = client(url)
        with pytest.raises(APIError) as lost:
            trading.submit_order(market("bot-000001"))
        assert lost.value.status_code == 500
        assert trading.get_order_by_client_id("bot-000001").status is OrderStatus.FILLED
        with pytest.raises(APIError) as limited:
            trading.get_all_positions()
        assert limited.value.status_code == 429
        assert len(trading.get_all_positions()) == 1
    venue.book.close()


def test_the_emulator_starts_from_the_command_line(tmp_path: Path) -> None:
    from tests.venues.cli_server import served_from_the_cli

    with served_from_the_cli("alpaca", tmp_path, KEY, SECRET) as url:
        trading = client(url)
        assert trading.submit_order(market("cli-000001")).status is OrderStatus.FILLED
