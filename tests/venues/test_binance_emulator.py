"""The Binance emulators on the wire: signatures, keys and timestamps checked as Binance
checks them, error bodies, the USD-M algo-order service, and the command line."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from botwarden.venues.emulators.binance import Flavour
from botwarden.venues.emulators.server import serving
from botwarden.venues.paper.venue import PaperVenue
from tests.venues.test_ccxt_adapter import KEY, SECRET, start
from tests.venues.test_paper import FEED, T0, Clock, first_time_price


class Client:
    """Signed requests, made by hand the way Binance documents them."""

    def __init__(self, url: str, key: str = KEY, secret: str = SECRET) -> None:
        self.url, self.key, self.secret = url, key, secret

    def call(
        self,
        method: str,
        path: str,
        sign: bool = True,
        stamp: int | None = None,
        **params: Any,
    ) -> tuple[int, Any]:
        query = urlencode(params)
        if sign:
            stamp = int(time.time() * 1000) if stamp is None else stamp
            query = "&".join(part for part in (query, f"timestamp={stamp}") if part)
            digest = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            query += f"&signature={digest}"
        body = None
        url = f"{self.url}{path}"
        if method == "POST":
            body = query.encode()
        elif query:
            url += f"?{query}"
        request = urllib.request.Request(url, data=body, method=method)
        if self.key:
            request.add_header("X-MBX-APIKEY", self.key)
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture
def emulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Client, PaperVenue]]:
    flavour: Flavour = getattr(request, "param", "usdm")
    venue, app = start(tmp_path, flavour)
    with serving(app) as url:
        yield Client(url), venue
    venue.book.close()


def test_only_requests_signed_with_the_right_key_and_secret_are_served(tmp_path: Path) -> None:
    venue, app = start(tmp_path, "spot")
    with serving(app) as url:
        assert Client(url).call("GET", "/api/v3/account")[0] == 200
        assert Client(url, secret="wrong").call("GET", "/api/v3/account") == (
            400, {"code": -1022, "msg": "Signature for this request is not valid."}
        )  # fmt: skip
        assert Client(url, key="other").call("GET", "/api/v3/account")[1]["code"] == -2015
        assert Client(url, key="").call("GET", "/api/v3/account")[1]["code"] == -2014
        stale = int(time.time() * 1000) - 30_000
        assert Client(url).call("GET", "/api/v3/account", stamp=stale) == (
            400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
        )  # fmt: skip
        # ...unless the request allows that much with its own recvWindow (a minute at most).
        status, _ = Client(url).call("GET", "/api/v3/account", stamp=stale, recvWindow=40_000)
        assert status == 200
        assert Client(url).call("GET", "/api/v3/account", recvWindow=61_000)[1]["code"] == -1131
        # Market data needs no key.
        assert Client(url, key="").call("GET", "/api/v3/exchangeInfo", sign=False)[0] == 200
    venue.book.close()


def test_a_client_order_id_follows_binances_pattern(emulator) -> None:
    client, _ = emulator
    status, answer = client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
        quantity="0.01", newClientOrderId="x" * 37,
    )  # fmt: skip
    assert (status, answer["code"]) == (400, -1100)
    assert "newClientOrderId" in answer["msg"]
    status, answer = client.call(
        "POST", "/fapi/v1/order", symbol="NOPEUSDT", side="BUY", type="MARKET", quantity="1"
    )
    assert (status, answer) == (400, {"code": -1121, "msg": "Invalid symbol."})


def test_futures_stops_live_in_the_algo_service_until_they_trigger(emulator) -> None:
    client, venue = emulator
    assert client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
        quantity="0.01", newClientOrderId="entry",
    )[0] == 200  # fmt: skip
    stop_price = (FEED.price("BTC/USDT", T0) * Decimal("0.99")).quantize(Decimal("0.1"))
    # A stop on the regular endpoint is refused, as Binance has done since December 2025.
    status, answer = client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="STOP_MARKET",
        quantity="0.01", stopPrice=str(stop_price),
    )  # fmt: skip
    assert (status, answer["code"]) == (400, -4120)
    status, stop = client.call(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="STOP_MARKET", quantity="0.01", triggerPrice=str(stop_price), clientAlgoId="stop",
    )  # fmt: skip
    assert (status, stop["algoStatus"], stop["clientAlgoId"]) == (200, "NEW", "stop")
    assert client.call("GET", "/fapi/v1/openOrders")[1] == []
    [listed] = client.call("GET", "/fapi/v1/openAlgoOrders")[1]
    assert listed["algoId"] == stop["algoId"]
    assert client.call("GET", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="stop")[1][
        "code"
    ] == -2013  # fmt: skip

    venue.clock.now = first_time_price("BTC/USDT", T0, lambda p: p <= stop_price)
    _, done = client.call("GET", "/fapi/v1/algoOrder", clientAlgoId="stop")
    assert (done["algoStatus"], done["executedQty"]) == ("FINISHED", "0.01")
    assert done["actualOrderId"] != str(done["algoId"]), "two orders, two ids"
    assert client.call("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=done["algoId"])[1][
        "code"
    ] == -2013  # fmt: skip
    _, actual = client.call(
        "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=done["actualOrderId"]
    )
    assert (actual["status"], actual["type"], actual["side"]) == ("FILLED", "MARKET", "SELL")
    _, trades = client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")
    assert [str(t["orderId"]) for t in trades][-1] == done["actualOrderId"]


@pytest.mark.parametrize("emulator", ["spot"], indirect=True)
def test_spot_market_and_stop_orders_take_no_time_in_force(emulator) -> None:
    client, _ = emulator
    for extra in ({"type": "MARKET"}, {"type": "STOP_LOSS", "stopPrice": "1000"}):
        status, answer = client.call(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", quantity="0.01",
            timeInForce="GTC", **extra,
        )  # fmt: skip
        assert (status, answer["code"]) == (400, -1106)


def test_a_cancel_by_order_id_cancels_that_order_or_none(emulator) -> None:
    """Client ids are unique among open orders only: the filled order "a" and the open
    order "a" are two orders, and canceling the first by its id cancels nothing."""
    client, _ = emulator
    _, filled = client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
        quantity="0.01", newClientOrderId="a",
    )  # fmt: skip
    limit = (FEED.price("BTC/USDT", T0) * Decimal("0.9")).quantize(Decimal("0.1"))
    _, resting = client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
        quantity="0.01", price=str(limit), newClientOrderId="a",
    )  # fmt: skip
    assert (filled["status"], resting["status"]) == ("FILLED", "NEW")
    status, answer = client.call(
        "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=filled["orderId"]
    )
    assert (status, answer["code"]) == (400, -2011)
    assert [o["orderId"] for o in client.call("GET", "/fapi/v1/openOrders")[1]] == [
        resting["orderId"]
    ]


@pytest.mark.parametrize(
    ("emulator", "path"),
    [("spot", "/api/v3/klines"), ("usdm", "/fapi/v1/klines")],
    indirect=["emulator"],
)
def test_klines_open_on_utc_boundaries_weeks_on_mondays_the_newest_forming(
    emulator, path: str
) -> None:
    client, _ = emulator
    monday = datetime(2026, 3, 2, tzinfo=UTC)  # T0 is Monday 14:30 UTC

    def klines(interval: str, limit: int) -> list[list[Any]]:
        status, rows = client.call(
            "GET", path, sign=False, symbol="BTCUSDT", interval=interval, limit=limit
        )
        assert status == 200, rows
        return rows

    weeks = klines("1w", 3)
    assert [k[0] for k in weeks] == [ms(monday - timedelta(weeks=n)) for n in (2, 1, 0)]
    assert [k[6] - k[0] for k in weeks] == [7 * 86_400_000 - 1] * 3, "closes Sunday 23:59:59.999"
    forming = FEED.ohlc("BTC/USDT", monday, T0)
    assert [Decimal(v) for v in weeks[-1][1:5]] == list(forming), "this week so far"
    four = klines("4h", 3)
    assert [k[0] for k in four] == [ms(monday + timedelta(hours=h)) for h in (4, 8, 12)]
    status, answer = client.call("GET", path, sign=False, symbol="BTCUSDT", interval="3m")
    assert (status, answer["code"]) == (400, -1120), "Binance's, but not a botwarden timeframe"


def test_order_and_trade_lists_start_from_the_newest_unless_told_where(emulator) -> None:
    client, _ = emulator
    for n in range(3):
        client.call(
            "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
            quantity="0.01", newClientOrderId=f"o{n}",
        )  # fmt: skip
    _, newest = client.call("GET", "/fapi/v1/allOrders", symbol="BTCUSDT", limit=2)
    assert [o["clientOrderId"] for o in newest] == ["o1", "o2"]
    _, oldest = client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", limit=2, fromId=0)
    assert [t["id"] for t in oldest] == [1, 2]
    _, latest = client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", limit=2)
    assert [t["id"] for t in latest] == [2, 3]


@pytest.mark.parametrize("emulator", ["spot"], indirect=True)
def test_a_spot_account_shows_what_open_orders_lock(emulator) -> None:
    client, _ = emulator
    client.call(
        "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.02"
    )
    price = FEED.price("BTC/USDT", T0)
    limit = (price * 2).quantize(Decimal("0.1"))
    status, _ = client.call(
        "POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="LIMIT",
        timeInForce="GTC", quantity="0.015", price=str(limit),
    )  # fmt: skip
    assert status == 200
    balances = {b["asset"]: b for b in client.call("GET", "/api/v3/account")[1]["balances"]}
    assert (balances["BTC"]["free"], balances["BTC"]["locked"]) == ("0.005", "0.015")
    assert Decimal(balances["USDT"]["free"]) == Decimal(100000) - Decimal("0.02") * price


def test_injected_faults_come_back_as_binance_fails(tmp_path: Path) -> None:
    venue, app = start(
        tmp_path, "usdm", "rate_limit:on=positions,nth=1; outage:on=positions,nth=2;"
        " timeout_after:on=positions,nth=3"
    )  # fmt: skip
    with serving(app) as url:
        client = Client(url)
        assert client.call("GET", "/fapi/v3/positionRisk")[:2] == (
            429, {"code": -1003, "msg": "Too many requests; please use the websocket."}
        )  # fmt: skip
        status, answer = client.call("GET", "/fapi/v3/positionRisk")
        assert (status, answer["code"]) == (503, -1008)
        status, answer = client.call("GET", "/fapi/v3/positionRisk")
        assert (status, answer["code"]) == (503, -1007)
        assert "execution status unknown" in answer["msg"]
        assert client.call("GET", "/fapi/v3/positionRisk") == (200, [])
    venue.book.close()


@pytest.mark.parametrize("api", ["binance", "binanceusdm"])
def test_the_emulator_starts_from_the_command_line(tmp_path: Path, api: str) -> None:
    from tests.venues.cli_server import served_from_the_cli

    with served_from_the_cli(api, tmp_path, KEY, SECRET) as url:
        client = Client(url)
        prefix = "/api/v3" if api == "binance" else "/fapi/v1"
        _, info = client.call("GET", f"{prefix}/exchangeInfo", sign=False)
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
        status, order = client.call(
            "POST", f"{prefix}/order", symbol="ETHUSDT", side="BUY", type="MARKET",
            quantity="0.1", newClientOrderId="cli-1",
        )  # fmt: skip
        assert (status, order["status"], order["clientOrderId"]) == (200, "FILLED", "cli-1")


def ms(moment) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("flavour", ["spot", "usdm"])
def test_the_server_time_is_the_exchanges_clock_and_signatures_the_hosts(
    tmp_path: Path, flavour: Flavour
) -> None:
    """A venue tells the time its trades are stamped with. Request timestamps are
    checked against the host's clock, so an exchange clock a test freezes, speeds up
    or sets off still takes the requests of a client on this host."""
    venue, app = start(tmp_path, flavour, clock=Clock(T0 + timedelta(days=8)))
    prefix = "/api/v3" if flavour == "spot" else "/fapi/v1"
    with serving(app) as url:
        client = Client(url)
        assert client.call("GET", f"{prefix}/time", sign=False) == (
            200, {"serverTime": ms(T0 + timedelta(days=8))}
        )  # fmt: skip
        _, info = client.call("GET", f"{prefix}/exchangeInfo", sign=False)
        assert info["serverTime"] == ms(T0 + timedelta(days=8))
        account = "/api/v3/account" if flavour == "spot" else "/fapi/v2/account"
        assert client.call("GET", account)[0] == 200
    venue.book.close()


def test_futures_trades_are_asked_for_a_week_at_most(emulator) -> None:
    """USD-M: "The time between startTime and endTime cannot be longer than 7 days";
    without either, the last 7 days, by the exchange's clock."""
    client, venue = emulator
    client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
        quantity="0.01", newClientOrderId="o1",
    )  # fmt: skip
    week = timedelta(days=7)
    status, answer = client.call(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT",
        startTime=ms(T0 - week), endTime=ms(T0 + timedelta(seconds=1)),
    )  # fmt: skip
    assert (status, answer["code"]) == (400, -1127)
    _, found = client.call(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=ms(T0 - week), endTime=ms(T0)
    )
    assert [t["id"] for t in found] == [1]
    assert [t["id"] for t in client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")[1]] == [1]
    venue.clock.now = T0 + week + timedelta(seconds=1)
    assert client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")[1] == []
    _, by_id = client.call("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", fromId=0)
    assert [t["id"] for t in by_id] == [1], "by trade id, however old"


def test_the_emulators_clock_can_be_set_off_the_hosts_from_the_command_line(
    tmp_path: Path,
) -> None:
    from tests.venues.cli_server import served_from_the_cli

    faults = "clock_skew:by=-8d"
    with served_from_the_cli("binanceusdm", tmp_path, KEY, SECRET, faults) as url:
        client = Client(url)
        before = int(time.time() * 1000)
        _, answer = client.call("GET", "/fapi/v1/time", sign=False)
        behind = before - answer["serverTime"]
        assert abs(behind - ms(T0 + timedelta(days=8)) + ms(T0)) < 60_000
        assert client.call("GET", "/fapi/v2/account")[0] == 200, "signed by the host's clock"


def oco(client: Client, at: datetime = T0, **params: Any) -> tuple[int, Any]:
    """A sell OCO for 0.01 BTC (the account holds it), stop and take-profit 2% away from
    the price `at`."""
    price = FEED.price("BTC/USDT", at)

    def away(fraction: str) -> str:
        return str((price * Decimal(fraction)).quantize(Decimal("0.1")))

    fields = {
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "listClientOrderId": "list",
        "aboveType": "TAKE_PROFIT", "aboveStopPrice": away("1.02"), "aboveClientOrderId": "take",
        "belowType": "STOP_LOSS", "belowStopPrice": away("0.98"), "belowClientOrderId": "stop",
        **params,
    }  # fmt: skip
    sent = {name: value for name, value in fields.items() if value is not None}  # None: left out
    return client.call("POST", "/api/v3/orderList/oco", **sent)


def buy_the_coin(client: Client) -> None:
    assert client.call(
        "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
    )[0] == 200  # fmt: skip


@pytest.mark.parametrize("emulator", ["spot"], indirect=True)
def test_a_spot_oco_is_one_list_of_two_legs_each_found_by_its_client_id(emulator) -> None:
    client, _ = emulator
    buy_the_coin(client)
    status, listed = oco(client)
    assert status == 200, listed
    assert (listed["contingencyType"], listed["listStatusType"], listed["listOrderStatus"]) == (
        "OCO", "EXEC_STARTED", "EXECUTING"
    )  # fmt: skip
    assert listed["listClientOrderId"] == "list"
    legs = {r["clientOrderId"]: r for r in listed["orderReports"]}
    assert {legs["take"]["type"], legs["stop"]["type"]} == {"TAKE_PROFIT", "STOP_LOSS"}
    assert {r["orderListId"] for r in legs.values()} == {listed["orderListId"]}
    _, open_orders = client.call("GET", "/api/v3/openOrders", symbol="BTCUSDT")
    assert {o["orderListId"] for o in open_orders} == {listed["orderListId"]}
    [open_list] = client.call("GET", "/api/v3/openOrderList")[1]
    assert {o["clientOrderId"] for o in open_list["orders"]} == {"take", "stop"}
    _, by_name = client.call("GET", "/api/v3/orderList", origClientOrderId="list")
    assert by_name["orderListId"] == listed["orderListId"]
    _, account = client.call("GET", "/api/v3/account")
    [btc] = [b for b in account["balances"] if b["asset"] == "BTC"]
    assert (btc["free"], btc["locked"]) == ("0", "0.01"), "the list locks the coin once"


@pytest.mark.parametrize("emulator", ["spot"], indirect=True)
def test_one_leg_filled_expires_the_other_and_one_cancel_takes_both(emulator) -> None:
    client, venue = emulator
    buy_the_coin(client)
    _, listed = oco(client)
    prices = {r["clientOrderId"]: Decimal(r["stopPrice"]) for r in listed["orderReports"]}
    venue.clock.now = first_time_price(
        "BTC/USDT", T0, lambda p: not prices["stop"] < p < prices["take"]
    )  # whichever is reached first
    _, take = client.call("GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="take")
    _, stop = client.call("GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="stop")
    assert sorted([take["status"], stop["status"]]) == ["EXPIRED", "FILLED"]
    assert client.call("GET", "/api/v3/openOrderList")[1] == []
    assert client.call("GET", "/api/v3/orderList", orderListId=listed["orderListId"])[1][
        "listOrderStatus"
    ] == "ALL_DONE"  # fmt: skip

    buy_the_coin(client)
    _, second = oco(client, venue.clock.now, aboveClientOrderId="take2", belowClientOrderId="stop2")
    status, canceled = client.call(
        "DELETE", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="stop2"
    )
    assert (status, canceled["status"], canceled["orderListId"]) == (
        200, "CANCELED", second["orderListId"]
    )  # fmt: skip
    _, other = client.call("GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="take2")
    assert other["status"] == "CANCELED", "a cancel of one leg cancels the list"
    assert client.call(
        "DELETE", "/api/v3/orderList", symbol="BTCUSDT", orderListId=second["orderListId"]
    )[1]["code"] == -2011  # fmt: skip


@pytest.mark.parametrize("emulator", ["spot"], indirect=True)
def test_an_oco_whose_prices_do_not_straddle_the_price_is_refused_as_binance_does(
    emulator,
) -> None:
    client, venue = emulator
    buy_the_coin(client)
    below = str((FEED.price("BTC/USDT", T0) * Decimal("0.99")).quantize(Decimal("0.1")))
    relationship = {
        "code": -2010,
        "msg": "The relationship of the prices for the orders is not correct.",
    }
    assert oco(client, aboveStopPrice=below) == (400, relationship), "a take-profit below"
    assert oco(client, aboveType="STOP_LOSS", belowType="TAKE_PROFIT") == (400, relationship)
    assert oco(client, belowStopPrice=None)[1]["code"] == -1102
    assert oco(client, aboveTimeInForce="GTC")[1]["code"] == -1106
    assert venue.book.all_orders("BTC/USDT")[1:] == [], "nothing but the coin's purchase"


def test_a_futures_take_profit_rests_in_the_algo_service_reduce_only(emulator) -> None:
    client, venue = emulator
    assert client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
    )[0] == 200  # fmt: skip
    price = FEED.price("BTC/USDT", T0)
    below = str((price * Decimal("0.99")).quantize(Decimal("0.1")))
    assert client.call(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="TAKE_PROFIT_MARKET", quantity="0.01", triggerPrice=below, reduceOnly="true",
    )[1] == {"code": -2021, "msg": "Order would immediately trigger."}  # fmt: skip
    target = (price * Decimal("1.01")).quantize(Decimal("0.1"))
    status, take = client.call(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="TAKE_PROFIT_MARKET", quantity="0.01", triggerPrice=str(target), reduceOnly="true",
        clientAlgoId="take",
    )  # fmt: skip
    assert (status, take["orderType"], take["reduceOnly"]) == (200, "TAKE_PROFIT_MARKET", True)
    assert client.call("GET", "/fapi/v1/openOrders")[1] == [], "nothing in the book"
    venue.clock.now = first_time_price("BTC/USDT", T0, lambda p: p >= target)
    _, done = client.call("GET", "/fapi/v1/algoOrder", clientAlgoId="take")
    assert (done["algoStatus"], done["executedQty"]) == ("FINISHED", "0.01")
    _, actual = client.call(
        "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=done["actualOrderId"]
    )
    assert (actual["type"], actual["status"]) == ("MARKET", "FILLED")


def test_a_full_size_reduce_only_limit_in_the_book_blocks_every_other_reduce_only_order(
    emulator,
) -> None:
    """Why a take-profit never rests in the USD-M book: Binance counts open reduce-only
    orders against the position, so a second reduce-only order finds no room (-4118);
    the algo service's orders are not counted until they trigger."""
    client, _ = emulator
    assert client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
    )[0] == 200  # fmt: skip
    price = FEED.price("BTC/USDT", T0)
    above = str((price * Decimal("1.02")).quantize(Decimal("0.1")))
    assert client.call(
        "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
        type="TAKE_PROFIT_MARKET", quantity="0.01", triggerPrice=above, reduceOnly="true",
    )[0] == 200  # fmt: skip
    close = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "reduceOnly": "true"}
    assert client.call("POST", "/fapi/v1/order", type="MARKET", newClientOrderId="out", **close)[
        1
    ]["status"] == "FILLED", "an algo take-profit leaves the exit free"  # fmt: skip
    assert client.call(
        "POST", "/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
    )[0] == 200  # fmt: skip
    assert client.call(
        "POST", "/fapi/v1/order", type="LIMIT", price=above, timeInForce="GTC", **close
    )[0] == 200  # fmt: skip
    assert client.call("POST", "/fapi/v1/order", type="MARKET", **close)[1] == {
        "code": -4118,
        "msg": "ReduceOnly Order Failed. Please check your existing position and open orders.",
    }


def test_futures_income_lists_every_trades_fee_and_realised_pnl_account_wide(
    tmp_path: Path,
) -> None:
    """`GET /fapi/v1/income`: no symbol needed; a COMMISSION entry for each trade that
    paid a fee and a REALIZED_PNL one for each that closed some of a position, naming
    the trade's symbol and id, oldest first; none for a zero amount; without a time,
    the last 7 days; three months kept."""
    from botwarden.venues.emulators.binance import create_app
    from botwarden.venues.paper.book import BookSettings, PaperBook

    settings = BookSettings(
        currency="USDT", client_ids="binance", reduce_only=True, fee_rate=Decimal("0.001")
    )
    clock = Clock()
    venue = PaperVenue(PaperBook(tmp_path / "income.db", FEED, settings), clock)
    with serving(create_app(venue, "usdm", KEY, SECRET)) as url:
        client = Client(url)
        for side in ("BUY", "SELL"):
            client.call(
                "POST", "/fapi/v1/order", symbol="BTCUSDT", side=side, type="MARKET",
                quantity="0.01", newClientOrderId=f"o-{side}",
            )  # fmt: skip
            clock.now += timedelta(hours=1)
        bought, sold = (fill for _, fill in venue.book.fills())
        _, entries = client.call("GET", "/fapi/v1/income")
        assert [(e["incomeType"], e["tradeId"], e["symbol"]) for e in entries] == [
            ("COMMISSION", "1", "BTCUSDT"),
            ("COMMISSION", "2", "BTCUSDT"),
            ("REALIZED_PNL", "2", "BTCUSDT"),  # (the buy opened: it realised nothing)
        ]
        assert Decimal(entries[0]["income"]) == -bought.fee
        assert Decimal(entries[2]["income"]) == (sold.price - bought.price) * Decimal("0.01")
        _, later = client.call(
            "GET", "/fapi/v1/income", incomeType="COMMISSION", startTime=ms(sold.time),
            endTime=ms(clock.now),
        )  # fmt: skip
        assert [e["tradeId"] for e in later] == ["2"]
        clock.now += timedelta(days=91)
        assert client.call("GET", "/fapi/v1/income", startTime=0)[1] == []
    venue.book.close()
