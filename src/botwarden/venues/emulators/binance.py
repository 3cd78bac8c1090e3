"""A local server that speaks Binance's REST API, spot (`/api/v3`) or USD-M futures
(`/fapi`), backed by the paper exchange.

An unmodified ccxt `binance` or `binanceusdm` exchange whose `urls['api']` hosts point
here works against it, signatures and all. Facts of Binance's API implemented here:
- signed endpoints take `timestamp` (and `recvWindow`), carry the key in the
  `X-MBX-APIKEY` header and end with `signature`, the hex HMAC-SHA256 of the query
  string followed by the form body, keyed by the secret; a request older than its
  `recvWindow` (5 s unless given) is refused with -1021;
- client order ids (`newClientOrderId`, at most 36 of `[.A-Z:/a-z0-9_-]`) are unique
  among OPEN orders only: an order reusing the id of a filled one is accepted;
- errors are `{"code": -2010, "msg": "..."}` with HTTP 400 (401 for a bad key, 429 with
  Retry-After for a rate limit, 503 for an overloaded or unreachable backend, where
  -1007 means the order's fate is unknown);
- on USD-M, stop orders live in the algo service (`/fapi/v1/algoOrder`, `clientAlgoId`,
  `triggerPrice`): the regular order lists do not show them until they trigger; a
  triggered stop becomes a market order of its own (`actualOrderId`), whose trades
  name that order, not the stop;
- a spot stop and take-profit can rest as one OCO order list (`POST
  /api/v3/orderList/oco`, above and below legs: a STOP_LOSS and a TAKE_PROFIT or
  LIMIT_MAKER, a sell's take-profit above the last price and its stop below it, else
  -2010 "The relationship of the prices for the orders is not correct."); each leg
  names its `orderListId`, a fill of one expires the other (EXPIRED), a cancel of either
  cancels both, the list locks its quantity once; `GET /api/v3/orderList`,
  `GET /api/v3/openOrderList` and `DELETE /api/v3/orderList` answer for the list (the
  emulator keeps list names in memory: a restarted emulator forgets them);
- a spot order can be canceled and another placed in its place in one request
  (`POST /api/v3/order/cancelReplace`, `STOP_ON_FAILURE`): Binance cancels first, so
  a cancel that fails leaves the new order unattempted (400, -2022 "Order
  cancel-replace failed."), and a new order refused after the cancel leaves neither
  (409, -2021 "Order cancel-replace partially failed."); `data` says how each half went;
- on USD-M a take-profit rests in the algo service too (TAKE_PROFIT_MARKET, refused
  with -2021 if it would trigger at once), held by the paper book as a limit at its
  trigger price; the book's open reduce-only orders count against the position, so a
  reduce-only order with no room left beside them is refused (-4118);
- a spot account holds assets, not positions: a bought coin is a balance;
- USD-M answers trades for at most 7 days between `startTime` and `endTime`, and
  without either (nor `fromId`) for the last 7 days;
- USD-M's income history (`GET /fapi/v1/income`) is account-wide (`symbol` optional):
  a COMMISSION entry for every trade that paid a fee and a REALIZED_PNL entry for every
  trade that closed some of a position at a profit or loss, each naming its symbol and
  `tradeId`, oldest first, `startTime` and `endTime` inclusive (neither: the last 7
  days), three months kept, `limit` 100 unless given (1,000 at most), `page` from 1.
  (No entry for a zero amount: Binance documents none, and a witness must not count
  on one. The paper exchange has no funding, so no FUNDING_FEE.)
- `GET .../time` tells the exchange's clock, the one its trades are stamped with.
  (Request timestamps are checked against the host's clock, unlike Binance: a test's
  exchange clock may be frozen, accelerated or set off, and its client lives on the
  host.)

The paper exchange's injected faults come back as the HTTP failures a client of Binance
meets (429, 503 -1008 for "try again", 503 -1007 for "may have happened").
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from botwarden.domain.markets import OrderRefused, TimeInForce
from botwarden.domain.models import Fill, OrderSide, Side
from botwarden.domain.orders import OrderType
from botwarden.domain.timeframes import TIMEFRAMES, bar_open
from botwarden.venues.base import (
    Ambiguous,
    AuthError,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    Retryable,
    VenueError,
    VenueOrder,
)
from botwarden.venues.paper.venue import PaperVenue

Flavour = Literal["spot", "usdm"]

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
DEFAULT_RECV_WINDOW_MS = 5000

_STATUS = {
    OrderState.OPEN: "NEW",
    OrderState.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderState.FILLED: "FILLED",
    OrderState.CANCELED: "CANCELED",
    OrderState.EXPIRED: "EXPIRED",
    OrderState.REJECTED: "REJECTED",
}
_ALGO_STATUS = {
    OrderState.OPEN: "NEW",
    OrderState.PARTIALLY_FILLED: "TRIGGERED",
    OrderState.FILLED: "FINISHED",
    OrderState.CANCELED: "CANCELED",
    OrderState.EXPIRED: "EXPIRED",
    OrderState.REJECTED: "REJECTED",
}
_TYPES: dict[Flavour, dict[OrderType, str]] = {
    "spot": {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP: "STOP_LOSS"},
    "usdm": {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP: "STOP_MARKET"},
}
OCO_LEG_TYPES = frozenset({"STOP_LOSS", "TAKE_PROFIT", "LIMIT_MAKER"})
"""The OCO legs modelled here: a STOP_LOSS and a TAKE_PROFIT or LIMIT_MAKER."""
PRICE_RELATIONSHIP = "The relationship of the prices for the orders is not correct."
REGULAR = {"id_field": "orderId", "cid_field": "origClientOrderId", "symbol_required": True}
ALGO = {"id_field": "algoId", "cid_field": "clientAlgoId", "symbol_required": False}


class BinanceError(Exception):
    """An answer of Binance's own: HTTP status, Binance error code, message."""

    def __init__(
        self,
        status: int,
        code: int,
        msg: str,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers
        self.data = data
        """What a cancel-replace answers beside its error: how each half went."""


def _rejection(flavour: Flavour, code: str | None, message: str) -> BinanceError:
    """The paper book's refusals, as Binance words them on each market."""
    spot = flavour == "spot"
    if code == "duplicate_client_id":
        return (
            BinanceError(400, -2010, "Duplicate order sent.")
            if spot
            else BinanceError(400, -4116, "ClientOrderId is duplicated.")
        )
    if code in ("insufficient_funds", "insufficient_balance"):
        return (
            BinanceError(400, -2010, "Account has insufficient balance for requested action.")
            if spot
            else BinanceError(400, -2019, "Margin is insufficient.")
        )
    if code == "stop_wrong_side":
        return (
            BinanceError(400, -2010, "Stop price would trigger immediately.")
            if spot
            else BinanceError(400, -2021, "Order would immediately trigger.")
        )
    if code == "not_open":
        return BinanceError(400, -2011, "Unknown order sent.")
    return BinanceError(400, -2010, message)


def translate(flavour: Flavour, error: Exception) -> BinanceError:
    if isinstance(error, BinanceError):
        return error
    message = str(error)
    if isinstance(error, VenueError):
        message = message.removeprefix(f"{error.venue}: ")
    if isinstance(error, OrderRefused):
        return BinanceError(400, -1013, f"Filter failure: {message}")
    if isinstance(error, Rejected):
        return _rejection(flavour, error.code, message)
    if isinstance(error, NotFound):
        return BinanceError(400, -2013, "Order does not exist.")
    if isinstance(error, AuthError):
        return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    if isinstance(error, Retryable):
        if error.retry_after is not None or "429" in message:
            headers = {"Retry-After": f"{error.retry_after or 1:g}"}
            return BinanceError(429, -1003, "Too many requests; please use the websocket.", headers)
        return BinanceError(
            503,
            -1008,
            "Server is currently overloaded with other requests. Please try again in a few"
            " minutes.",
        )
    if isinstance(error, Ambiguous):
        return BinanceError(
            503,
            -1007,
            "Timeout waiting for response from backend server. Send status unknown;"
            " execution status unknown.",
        )
    return BinanceError(500, -1000, "An unknown error occurred while processing the request.")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _number(value: Decimal | None) -> str:
    return "0" if value is None else format(value.normalize(), "f")


def _order_number(order: VenueOrder) -> int:
    return int(order.venue_order_id.removeprefix("P"))


def trade_number(fill: Fill) -> int:
    """A fill's trade id as Binance gives it: a number (the paper book's `T00000042`)."""
    return int(fill.trade_id.removeprefix("T"))


def book_trade_id(trade: str) -> str:
    """The paper book's trade id behind a trade id this emulator gave (`42`)."""
    return f"T{int(trade):08d}"


def realized_pnl(fills: list[Fill]) -> dict[str, Decimal]:
    """Each fill's realised profit or loss (by trade id), as a futures account books
    it: what it closed of the position before it, against that position's average
    entry price; a fill that only opens or adds realises nothing."""
    held: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed size, entry)
    pnl: dict[str, Decimal] = {}
    for fill in fills:
        size, entry = held.get(fill.symbol, (Decimal(0), Decimal(0)))
        change = fill.qty if fill.side is OrderSide.BUY else -fill.qty
        closed = min(abs(change), abs(size)) if size * change < 0 else Decimal(0)
        pnl[fill.trade_id] = closed * (fill.price - entry) * (1 if size > 0 else -1)
        after = size + change
        if closed == 0:  # opened or added: the entry is the average
            entry = (size * entry + change * fill.price) / after
        elif after * size < 0:  # went through zero: the rest opens at this price
            entry = fill.price
        held[fill.symbol] = (after, entry if after else Decimal(0))
    return pnl


FUTURES_TRADES_WINDOW_MS = 7 * 86_400_000
INCOME_KEPT_MS = 90 * 86_400_000
"""Binance keeps three months of income history."""
TRIGGERED_BASE = 1_000_000_000
"""A triggered USD-M stop becomes a market order with an id of its own: the stop's
number plus this (algo ids and order ids are separate sequences at Binance)."""
MAX_RECV_WINDOW_MS = 60_000


class Exchange:
    """The exchange as Binance shows it: its symbols, and its orders in Binance's JSON."""

    def __init__(self, venue: PaperVenue, flavour: Flavour) -> None:
        self.venue, self.flavour = venue, flavour
        book_symbols = [s for s in venue.book.feed.symbols() if "/" in s]
        self.symbols = {s.replace("/", ""): s for s in book_symbols}
        """Binance's symbol (`BTCUSDT`) -> the paper book's (`BTC/USDT`)."""
        self._fills: list[Fill] = []
        self._fills_seen = 0
        self.algo_take_profits: set[str] = set()
        """USD-M: client ids of the take-profits placed in the algo service (the paper
        book holds each as a limit at its trigger price)."""
        self.list_names: dict[str, str] = {}
        """Spot: an order list's `listClientOrderId`, by its stop leg's client id. (An
        order list is a pair in the paper book: two legs naming each other.)"""
        self.maker_legs: set[str] = set()
        """Spot: take-profit legs sent as LIMIT_MAKER (the others are TAKE_PROFIT)."""

    async def listed_fills(self) -> list[Fill]:
        """The fills, as a listing call sees them: the exchange brought up to now, and
        any fault drawn for `fills`."""
        await self.venue.fills(cursor=str(self._fills_seen))
        return self.fills()

    def fills(self) -> list[Fill]:
        """Every fill in the book so far, each decoded once (fills never change, only
        new ones come). Read straight from the book: no fault is drawn here."""
        for seq, fill in self.venue.book.fills(after_seq=self._fills_seen):
            self._fills.append(fill)
            self._fills_seen = seq
        return self._fills

    def book_symbol(self, symbol: str | None) -> str:
        if not symbol:
            raise BinanceError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        if symbol not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return self.symbols[symbol]

    @staticmethod
    def exchange_symbol(book_symbol: str) -> str:
        return book_symbol.replace("/", "")

    def is_algo(self, order: VenueOrder) -> bool:
        """USD-M keeps stop orders (and take-profits sent there) in its algo service."""
        return self.flavour == "usdm" and (
            order.type is OrderType.STOP
            or (order.type is OrderType.LIMIT and order.client_order_id in self.algo_take_profits)
        )

    # -- spot order lists (OCO) --------------------------------------------------------------
    def list_legs(self, order: VenueOrder) -> tuple[VenueOrder, VenueOrder] | None:
        """The stop leg and the take-profit leg of `order`'s order list; None if it is
        in none."""
        if self.flavour != "spot" or order.oco_with is None:
            return None
        other = self.venue.book.order(order.oco_with)
        return (order, other) if order.type is OrderType.STOP else (other, order)

    def list_id(self, order: VenueOrder) -> int:
        """The order list's id (its stop leg's number), -1 for an order in none."""
        legs = self.list_legs(order)
        return -1 if legs is None else _order_number(legs[0])

    def leg_type(self, order: VenueOrder) -> str:
        if order.oco_with is not None and order.type is OrderType.LIMIT:
            return "LIMIT_MAKER" if order.client_order_id in self.maker_legs else "TAKE_PROFIT"
        return _TYPES[self.flavour][order.type]

    def list_json(self, legs: tuple[VenueOrder, VenueOrder]) -> dict[str, Any]:
        """An order list as Binance lists it: its legs named, not described."""
        done = all(leg.state.is_final for leg in legs)
        return {
            "orderListId": _order_number(legs[0]),
            "contingencyType": "OCO",
            "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
            "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
            "listClientOrderId": self.list_names.get(legs[0].client_order_id, ""),
            "transactionTime": _ms(legs[0].created_at),
            "symbol": self.exchange_symbol(legs[0].symbol),
            "orders": [
                {
                    "symbol": self.exchange_symbol(leg.symbol),
                    "orderId": self.order_id(leg),
                    "clientOrderId": leg.client_order_id,
                }
                for leg in legs
            ],
        }

    def status(self, order: VenueOrder) -> str:
        """A leg its list's other leg's fill took is EXPIRED at Binance (a cancel of
        either leg cancels both: CANCELED)."""
        expired = order.oco_with is not None and (order.reason or "").endswith(" filled")
        return "EXPIRED" if expired and order.state is OrderState.CANCELED else _STATUS[order.state]

    def order_id(self, order: VenueOrder) -> int:
        """The order's id in the regular order lists (and in its trades)."""
        return _order_number(order) + (TRIGGERED_BASE if self.is_algo(order) else 0)

    def book_id(self, order_id: int) -> str:
        """The paper book's id of the regular order `order_id`."""
        return f"P{order_id % TRIGGERED_BASE:08d}"

    def market_info(self, book_symbol: str) -> dict[str, Any]:
        instrument = self.venue.book.feed.instrument(book_symbol)
        base, quote = book_symbol.split("/")
        step = instrument.qty_step or Decimal("0.00000001")
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _number(instrument.tick),
                "maxPrice": "10000000",
                "tickSize": _number(instrument.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _number(step),
                "maxQty": "100000",
                "stepSize": _number(step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": _number(step),
                "maxQty": "100000",
                "stepSize": _number(step),
            },
        ]
        minimum = _number(instrument.min_notional or Decimal(0))
        precision = {
            "pricePrecision": _places(instrument.tick),
            "quantityPrecision": _places(step),
        }
        common = {
            "symbol": self.exchange_symbol(book_symbol),
            "status": "TRADING",
            "baseAsset": base,
            "quoteAsset": quote,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
        }
        if self.flavour == "spot":
            filters.append(
                {
                    "filterType": "NOTIONAL",
                    "minNotional": minimum,
                    "applyMinToMarket": True,
                    "maxNotional": "9000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                }
            )
            return {
                **common,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET", "STOP_LOSS", "LIMIT_MAKER", "TAKE_PROFIT"],
                "icebergAllowed": False,
                "ocoAllowed": True,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": filters,
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            }
        filters.append({"filterType": "MIN_NOTIONAL", "notional": minimum})
        return {
            **common,
            **precision,
            "pair": common["symbol"],
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "marginAsset": quote,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK"],
            "filters": filters,
        }

    def order_json(self, order: VenueOrder) -> dict[str, Any]:
        """A regular order (or, on USD-M, the market order a stop became)."""
        number = self.order_id(order)
        kind = self.leg_type(order)
        quote_qty = order.filled_qty * (order.avg_price or 0)
        common = {
            "symbol": self.exchange_symbol(order.symbol),
            "orderId": number,
            "clientOrderId": order.client_order_id,
            "price": _number(order.limit_price),
            "origQty": _number(order.qty),
            "executedQty": _number(order.filled_qty),
            "status": self.status(order),
            "timeInForce": order.time_in_force.value.upper(),
            "type": kind,
            "side": order.side.value.upper(),
            "stopPrice": _number(order.stop_price),
            "time": _ms(order.created_at),
            "updateTime": _ms(order.updated_at),
            "selfTradePreventionMode": "NONE",
        }
        if self.flavour == "spot":
            if kind == "TAKE_PROFIT":  # its price is its trigger
                common.update(price="0", stopPrice=_number(order.limit_price))
            return {
                **common,
                "orderListId": self.list_id(order),
                "cummulativeQuoteQty": _number(quote_qty),
                "icebergQty": "0",
                "isWorking": kind in ("LIMIT", "LIMIT_MAKER", "MARKET"),
                "workingTime": _ms(order.created_at),
                "origQuoteOrderQty": "0",
            }
        if self.is_algo(order):  # the market order it became when it triggered
            common.update(
                clientOrderId=f"trig-{number}",
                type="MARKET",
                price="0",
                stopPrice="0",
                timeInForce="GTC",
            )
        return {
            **common,
            "avgPrice": _number(order.avg_price),
            "cumQuote": _number(quote_qty),
            "reduceOnly": order.reduce_only,
            "closePosition": False,
            "positionSide": "BOTH",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": kind,
            "priceMatch": "NONE",
            "goodTillDate": 0,
        }

    def algo_json(self, order: VenueOrder) -> dict[str, Any]:
        """A USD-M stop order as the algo service shows it."""
        triggered = order.filled_qty > 0
        take_profit = order.type is OrderType.LIMIT
        return {
            "algoId": _order_number(order),
            "clientAlgoId": order.client_order_id,
            "algoType": "CONDITIONAL",
            "orderType": "TAKE_PROFIT_MARKET" if take_profit else "STOP_MARKET",
            "symbol": self.exchange_symbol(order.symbol),
            "side": order.side.value.upper(),
            "positionSide": "BOTH",
            "timeInForce": "GTC",
            "quantity": _number(order.qty),
            "algoStatus": _ALGO_STATUS[order.state],
            "actualOrderId": str(self.order_id(order)) if triggered else "",
            "actualPrice": _number(order.avg_price),
            "executedQty": _number(order.filled_qty),
            "avgPrice": _number(order.avg_price),
            "triggerPrice": _number(order.limit_price if take_profit else order.stop_price),
            "price": "0",
            "icebergQuantity": None,
            "selfTradePreventionMode": "NONE",
            "workingType": "CONTRACT_PRICE",
            "priceMatch": "NONE",
            "closePosition": False,
            "priceProtect": False,
            "reduceOnly": order.reduce_only,
            "createTime": _ms(order.created_at),
            "updateTime": _ms(order.updated_at),
            "triggerTime": _ms(order.updated_at) if triggered else 0,
            "goodTillDate": 0,
        }

    def trade_json(self, number: int, fill: Fill, order: VenueOrder) -> dict[str, Any]:
        buyer = fill.side is OrderSide.BUY
        common = {
            "symbol": self.exchange_symbol(fill.symbol),
            "id": number,
            "orderId": self.order_id(order),
            "price": _number(fill.price),
            "qty": _number(fill.qty),
            "quoteQty": _number(fill.qty * fill.price),
            "commission": _number(fill.fee),
            "commissionAsset": fill.fee_currency or "USDT",
            "time": _ms(fill.time),
        }
        if self.flavour == "spot":
            return {
                **common,
                "orderListId": self.list_id(order),
                "isBuyer": buyer,
                "isMaker": self.leg_type(order) in ("LIMIT", "LIMIT_MAKER"),
                "isBestMatch": True,
            }
        return {
            **common,
            "side": fill.side.value.upper(),
            "positionSide": "BOTH",
            "buyer": buyer,
            "maker": order.type is OrderType.LIMIT and not self.is_algo(order),
            "realizedPnl": "0",
            "marginAsset": "USDT",
        }


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def _decimal(params: dict[str, str], name: str, required: bool = False) -> Decimal | None:
    text = params.get(name)
    if text in (None, ""):
        if required:
            raise BinanceError(
                400,
                -1102,
                f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
            )
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite() or value <= 0:
        raise BinanceError(400, -1013, f"Invalid {name}.")
    return value


def create_app(
    venue: PaperVenue,
    flavour: Flavour = "spot",
    key: str | None = None,
    secret: str | None = None,
    server_clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Binance spot (`flavour="spot"`) or USD-M futures (`"usdm"`) over `venue`. With a
    key and secret, only signed requests made with them are served, their timestamps
    checked against `server_clock` (the host's)."""
    if (key is None) != (secret is None):
        raise ValueError("a key and a secret go together (or neither)")
    exchange = Exchange(venue, flavour)
    title = "spot" if flavour == "spot" else "USD-M futures"
    app = FastAPI(title=f"botwarden Binance {title} emulator", docs_url=None, redoc_url=None)
    app.state.calls = Counter()
    """`METHOD /path` -> requests served: what a benchmark or a test counts."""

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        app.state.calls[f"{request.method} {request.url.path}"] += 1
        return await call_next(request)

    @app.exception_handler(BinanceError)
    async def binance_error(request: Request, error: BinanceError) -> Response:
        data = {} if error.data is None else {"data": error.data}
        return JSONResponse(
            {"code": error.code, "msg": error.msg, **data},
            status_code=error.status,
            headers=error.headers,
        )

    @app.exception_handler(VenueError)
    async def venue_error(request: Request, error: VenueError) -> Response:
        return await binance_error(request, translate(flavour, error))

    @app.exception_handler(OrderRefused)
    async def refused(request: Request, error: OrderRefused) -> Response:
        return await binance_error(request, translate(flavour, error))

    async def signed(request: Request) -> dict[str, str]:
        """The request's parameters, once its key, signature and timestamp check out."""
        query = request.url.query
        body = (await request.body()).decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        if key is not None:
            if not request.headers.get("X-MBX-APIKEY"):
                raise BinanceError(401, -2014, "API-key format invalid.")
            if request.headers["X-MBX-APIKEY"] != key:
                raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            payload = _unsigned(query) + _unsigned(body)  # Binance: query, then body
            expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(params.get("signature", ""), expected):
                raise BinanceError(400, -1022, "Signature for this request is not valid.")
        try:
            stamp = int(params["timestamp"])
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except (KeyError, ValueError):
            raise BinanceError(
                400,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            ) from None
        if window > MAX_RECV_WINDOW_MS:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        now = int(server_clock() * 1000)
        if stamp >= now + 1000 or now - stamp > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return params

    def symbol_of(params: dict[str, str], required: bool) -> str | None:
        symbol = params.get("symbol")
        return exchange.book_symbol(symbol) if symbol or required else None

    def order_number(params: dict[str, str], id_field: str, cid_field: str) -> str:
        if not params.get(id_field, "").isdigit():
            raise BinanceError(
                400,
                -1102,
                f"Param '{id_field}' or '{cid_field}' must be sent, but both were empty/null!",
            )
        number = int(params[id_field])
        return exchange.book_id(number) if id_field == "orderId" else f"P{number:08d}"

    def in_symbol(order: VenueOrder, book_symbol: str | None) -> VenueOrder:
        if book_symbol is not None and order.symbol != book_symbol:
            raise NotFound(venue.name, "no such order in this symbol")
        return order

    async def find(
        params: dict[str, str], *, id_field: str, cid_field: str, symbol_required: bool
    ) -> VenueOrder:
        """A lookup, as the venue answers it (faults, and fresh orders not yet seen)."""
        book_symbol = symbol_of(params, symbol_required)
        if params.get(cid_field):
            return await venue.order(params[cid_field], book_symbol)
        number = order_number(params, id_field, cid_field)
        return checked(params, in_symbol(await venue.order_by_venue_id(number), book_symbol))

    def checked(params: dict[str, str], order: VenueOrder) -> VenueOrder:
        """An order named by a regular order id is that order: not a stop that has yet
        to trigger, nor the stop behind a triggered one's number."""
        if params.get("orderId") and exchange.order_id(order) != int(params["orderId"]):
            raise BinanceError(400, -2013, "Order does not exist.")
        return order

    def locate(
        params: dict[str, str], *, id_field: str, cid_field: str, symbol_required: bool
    ) -> VenueOrder:
        """The order a cancel names, straight from the book (a cancel is not a lookup)."""
        book_symbol = symbol_of(params, symbol_required)
        if params.get(cid_field):
            return in_symbol(venue.book.order(params[cid_field]), book_symbol)
        number = order_number(params, id_field, cid_field)
        return checked(params, in_symbol(venue.book.order_by_venue_id(number), book_symbol))

    def client_id(params: dict[str, str], cid_field: str) -> str:
        """The client id sent in `cid_field`, else one made up (as Binance does)."""
        client_order_id = params.get(cid_field) or f"x-{secrets.token_hex(9)}"
        if not CLIENT_ID.match(client_order_id):
            raise BinanceError(
                400,
                -1100,
                f"Illegal characters found in parameter '{cid_field}'; legal range is"
                f" '{CLIENT_ID.pattern}'.",
            )
        return client_order_id

    def request_from(params: dict[str, str], kind: str, cid_field: str) -> OrderRequest:
        book_symbol = exchange.book_symbol(params.get("symbol"))
        types = {name: t for t, name in _TYPES[flavour].items()}
        if kind not in types:
            raise BinanceError(400, -1116, "Invalid orderType.")
        client_order_id = client_id(params, cid_field)
        side = params.get("side", "").lower()
        if side not in ("buy", "sell"):
            raise BinanceError(400, -1102, "Mandatory parameter 'side' was not sent.")
        if flavour == "spot" and kind != "LIMIT" and "timeInForce" in params:
            raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        tif = params.get("timeInForce", "GTC").lower()
        if tif not in TimeInForce._value2member_map_ or tif == "day":
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        order_type = types[kind]
        stop = _decimal(params, "stopPrice" if flavour == "spot" else "triggerPrice")
        return OrderRequest(
            client_order_id=client_order_id,
            symbol=book_symbol,
            side=OrderSide(side),
            type=order_type,
            qty=_decimal(params, "quantity", required=True),
            limit_price=_decimal(params, "price", required=order_type is OrderType.LIMIT),
            stop_price=stop if order_type is OrderType.STOP else None,
            time_in_force=TimeInForce(tif),
            reduce_only=flavour == "usdm" and params.get("reduceOnly", "").lower() == "true",
        )

    def orders_since(params: dict[str, str], found: list[VenueOrder]) -> list[VenueOrder]:
        start, end = params.get("startTime"), params.get("endTime")
        limit = min(int(params.get("limit") or 500), 1000)
        chosen = [
            o
            for o in found
            if (not start or _ms(o.created_at) >= int(start))
            and (not end or _ms(o.created_at) <= int(end))
            and (not params.get("orderId") or exchange.order_id(o) >= int(params["orderId"]))
        ]
        # Binance: from the start (time or id) when one is given, else the most recent.
        return chosen[:limit] if start or params.get("orderId") else chosen[-limit:]

    async def trades(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        book_symbol = exchange.book_symbol(params.get("symbol"))
        rows = await exchange.listed_fills()
        limit = min(int(params.get("limit") or 500), 1000)
        start, end = params.get("startTime"), params.get("endTime")
        from_id = params.get("fromId")
        # Binance: from the start (time or id) when one is given, else the most recent.
        oldest_first = bool(start or from_id)
        if flavour == "usdm" and not from_id:
            start, end = futures_trades_window(start, end)
        chosen = []
        for fill in rows:
            number = trade_number(fill)
            if fill.symbol != book_symbol:
                continue
            if from_id and number < int(from_id):
                continue
            if not from_id and start and _ms(fill.time) < int(start):
                continue
            if end and _ms(fill.time) > int(end):
                continue
            order = venue.book.order_by_venue_id(fill.venue_order_id)
            if params.get("orderId") and exchange.order_id(order) != int(params["orderId"]):
                continue
            chosen.append(exchange.trade_json(number, fill, order))
        return chosen[:limit] if oldest_first else chosen[-limit:]

    def futures_trades_window(start: str | None, end: str | None) -> tuple[str, str]:
        """The (startTime, endTime) USD-M answers trades for: a week at most."""
        if not start and not end:
            end = str(_ms(venue.clock()))
        if not start:
            start = str(int(end) - FUTURES_TRADES_WINDOW_MS)
        if not end:
            end = str(int(start) + FUTURES_TRADES_WINDOW_MS)
        if int(end) - int(start) > FUTURES_TRADES_WINDOW_MS:
            raise BinanceError(400, -1127, "More than 7 days between startTime and endTime.")
        return start, end

    # -- public market data --------------------------------------------------------------
    def ticker(book_symbol: str) -> dict[str, Any]:
        now = venue.clock()
        price = venue.book.feed.price(book_symbol, now)
        return {
            "symbol": exchange.exchange_symbol(book_symbol),
            "lastPrice": _number(price),
            "openPrice": _number(price),
            "highPrice": _number(price),
            "lowPrice": _number(price),
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": _number(price),
            "lastQty": "0",
            "volume": "0",
            "quoteVolume": "0",
            "openTime": _ms(now) - 86_400_000,
            "closeTime": _ms(now),
            "firstId": 0,
            "lastId": 0,
            "count": 0,
        }

    async def klines(
        symbol: str,
        interval: str,
        limit: int = 500,
        startTime: int | None = None,  # (Binance's names)
        endTime: int | None = None,
    ) -> list[list[Any]]:
        """As Binance: the newest bar is the one still forming, bars open on UTC
        boundaries (weeks on Mondays); from `startTime` (ms), the `limit` bars that
        open at or after it, else the newest up to `endTime`. Only botwarden's
        timeframes are served: Binance's others (3m, 2h, 1M ...) are refused as an
        unknown one would be."""
        book_symbol = exchange.book_symbol(symbol)
        if interval not in TIMEFRAMES:
            raise BinanceError(400, -1120, "Invalid interval.")
        width = TIMEFRAMES[interval]
        limit = max(1, min(limit, 1500))
        now = venue.clock()
        forming = bar_open(interval, now)
        newest = forming
        if endTime is not None:
            newest = min(forming, bar_open(interval, datetime.fromtimestamp(endTime / 1000, UTC)))
        if startTime is not None:
            begin = datetime.fromtimestamp(startTime / 1000, UTC)
            first = bar_open(interval, begin)
            if first < begin:
                first += width
        else:
            first = newest - width * (limit - 1)
        opens = []
        while first <= newest and len(opens) < limit:
            opens.append(first)
            first += width
        await venue.bars(book_symbol, interval, 1)  # (up to now, suffering its faults)
        feed = venue.book.feed
        rows = [(t, *feed.ohlc(book_symbol, t, min(t + width, now))) for t in opens]
        # open time, OHLC, volume, close time, quote volume, trades, taker volumes, -
        return [
            [_ms(t), *map(_number, (o, h, low, c)), "0", _ms(t + width) - 1, "0", 0, "0", "0", "0"]
            for t, o, h, low, c in rows
        ]

    async def ticker_route(symbol: str | None = None) -> Any:
        if symbol:
            exchange.book_symbol(symbol)
            return ticker(exchange.symbols[symbol])
        return [ticker(s) for s in exchange.symbols.values()]

    async def price_route(symbol: str | None = None) -> Any:
        chosen = [exchange.book_symbol(symbol)] if symbol else list(exchange.symbols.values())
        now = venue.clock()
        found = [
            {
                "symbol": exchange.exchange_symbol(s),
                "price": _number(venue.book.feed.price(s, now)),
                "time": _ms(now),
            }
            for s in chosen
        ]
        return found[0] if symbol else found

    def exchange_info() -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": _ms(venue.clock()),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [exchange.market_info(s) for s in exchange.symbols.values()],
            **(
                {"assets": [{"asset": "USDT", "marginAvailable": True}]}
                if flavour == "usdm"
                else {}
            ),
        }

    def server_time() -> dict[str, int]:
        return {"serverTime": _ms(venue.clock())}

    prefix = "/api/v3" if flavour == "spot" else "/fapi/v1"
    app.get(f"{prefix}/ping")(lambda: {})
    app.get(f"{prefix}/time")(server_time)
    app.get(f"{prefix}/exchangeInfo")(exchange_info)
    app.get(f"{prefix}/ticker/24hr")(ticker_route)
    app.get(f"{prefix}/ticker/price")(price_route)
    app.get(f"{prefix}/klines")(klines)
    if flavour == "usdm":
        app.get("/fapi/v2/ticker/price")(price_route)

    @app.get(f"{prefix}/openOrders")
    async def open_orders(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        symbol = params.get("symbol")
        wanted = exchange.book_symbol(symbol) if symbol else None
        found = await venue.open_orders(wanted)
        return [exchange.order_json(o) for o in found if not exchange.is_algo(o)]

    @app.get(f"{prefix}/allOrders")
    async def all_orders(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        book_symbol = exchange.book_symbol(params.get("symbol"))
        found = [
            o
            for o in await venue.all_orders(book_symbol)
            if not exchange.is_algo(o) or o.filled_qty > 0
        ]
        return [exchange.order_json(o) for o in orders_since(params, found)]

    @app.get(f"{prefix}/order")
    async def get_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        order = await find(params, **REGULAR)
        if exchange.is_algo(order) and not (
            params.get("orderId") and order.filled_qty > 0
        ):  # a stop is not a regular order until it triggers, and then under its own id
            raise BinanceError(400, -2013, "Order does not exist.")
        return exchange.order_json(order)

    @app.post(f"{prefix}/order")
    async def post_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        kind = params.get("type", "")
        if flavour == "usdm" and kind in ("STOP_MARKET", "STOP", "TAKE_PROFIT"):
            raise BinanceError(
                400,
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API"
                " endpoints instead.",
            )
        if flavour == "spot" and kind == "STOP_LOSS" and "stopPrice" not in params:
            raise BinanceError(400, -1102, "Mandatory parameter 'stopPrice' was not sent.")
        request = request_from(params, kind, "newClientOrderId")
        if request.reduce_only:
            check_reduce_only_room(request)
        order = await venue.submit(request)
        answer = exchange.order_json(order)
        if flavour == "spot":
            answer["transactTime"] = answer["updateTime"]
            answer["fills"] = [
                {
                    "price": _number(f.price),
                    "qty": _number(f.qty),
                    "commission": _number(f.fee),
                    "commissionAsset": f.fee_currency or "USDT",
                    "tradeId": trade_number(f),
                }
                for f in exchange.fills()
                if f.venue_order_id == order.venue_order_id
            ]
        return answer

    @app.delete(f"{prefix}/order")
    async def delete_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        order = cancelable(locate(params, **REGULAR))
        if exchange.is_algo(order):
            raise BinanceError(400, -2011, "Unknown order sent.")
        return exchange.order_json(await venue.cancel(order.client_order_id, order.symbol))

    def check_reduce_only_room(request: OrderRequest) -> None:
        """USD-M counts the book's open reduce-only orders against the position: one
        that, with those already resting on its side, would close more than is held is
        refused (xLydianSoftware/Qubx#386, live: a full-size reduce-only take-profit left
        no room for the bot's exit). Orders of the algo service count once triggered."""
        venue.book.advance(venue.clock())  # as the submit will (read unfaulted: a check)
        held = sum(
            (p.qty if p.side is Side.LONG else -p.qty)
            for p in venue.book.positions()
            if p.symbol == request.symbol
        )
        room = held if request.side is OrderSide.SELL else -held
        claimed = sum(
            (
                o.qty - o.filled_qty
                for o in venue.book.open_orders(request.symbol)
                if o.reduce_only and o.side is request.side and not exchange.is_algo(o)
            ),
            Decimal(0),
        )
        if claimed and request.qty > room - claimed:
            raise BinanceError(
                400,
                -4118,
                "ReduceOnly Order Failed. Please check your existing position and open orders.",
            )

    def cancelable(order: VenueOrder) -> VenueOrder:
        """Only an open order can be canceled. (Found by id, a closed one may share its
        client id with an open one: that one is not the order named.)"""
        if order.state.is_final:
            raise BinanceError(400, -2011, "Unknown order sent.")
        return order

    if flavour == "spot":

        @app.get("/api/v3/myTrades")
        async def my_trades(request: Request) -> list[dict[str, Any]]:
            return await trades(request)

        @app.get("/api/v3/account")
        async def account(request: Request) -> dict[str, Any]:
            await signed(request)
            return await spot_account()

        async def spot_account() -> dict[str, Any]:
            balance = await venue.balance()
            held = {p.symbol: p.qty for p in await venue.positions() if p.side is Side.LONG}
            locked: dict[str, Decimal] = {}
            open_orders = await venue.open_orders()
            open_ids = {o.client_order_id for o in open_orders}
            for order in open_orders:
                if order.type is OrderType.LIMIT and order.oco_with in open_ids:
                    continue  # an order list locks its quantity once, for both legs
                left = order.qty - order.filled_qty
                if order.side is OrderSide.SELL:
                    asset = order.symbol.split("/")[0]
                    locked[asset] = locked.get(asset, Decimal(0)) + left
                else:
                    price = order.limit_price or order.stop_price or Decimal(0)
                    locked[balance.currency] = locked.get(balance.currency, Decimal(0)) + (
                        left * price
                    )
            totals = {balance.currency: balance.cash}
            totals.update((s.split("/")[0], q) for s, q in held.items())
            return {
                "makerCommission": 0,
                "takerCommission": 0,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": False,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": _ms(venue.clock()),
                "accountType": "SPOT",
                "balances": [
                    {
                        "asset": asset,
                        "free": _number(total - locked.get(asset, Decimal(0))),
                        "locked": _number(locked.get(asset, Decimal(0))),
                    }
                    for asset, total in sorted(totals.items())
                ],
                "permissions": ["SPOT"],
                "uid": 1,
            }

        @app.post("/api/v3/order/cancelReplace")
        async def cancel_replace(request: Request) -> dict[str, Any]:
            """One order canceled and another placed in its place, in one request, in
            `STOP_ON_FAILURE` mode (the one modelled): a cancel that fails leaves the new
            order unattempted (400, -2022); a new order refused after its cancel leaves
            neither (409, -2021). Both halves are reported."""
            params = await signed(request)
            if params.get("cancelReplaceMode") != "STOP_ON_FAILURE":
                raise BinanceError(400, -1102, "this emulator models STOP_ON_FAILURE only")
            kind = params.get("type", "")
            if kind == "STOP_LOSS" and "stopPrice" not in params:
                raise BinanceError(400, -1102, "Mandatory parameter 'stopPrice' was not sent.")
            wanted = request_from(params, kind, "newClientOrderId")
            named = {"orderId": params.get("cancelOrderId", "")}
            if params.get("cancelOrigClientOrderId"):
                named = {"origClientOrderId": params["cancelOrigClientOrderId"]}
            try:
                old = cancelable(locate({**params, **named}, **REGULAR))
            except (BinanceError, VenueError) as error:
                failed = translate(flavour, error)
                halves = {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED"}
                answers = {"code": failed.code, "msg": failed.msg}
                data = {**halves, "cancelResponse": answers, "newOrderResponse": None}
                raise BinanceError(400, -2022, "Order cancel-replace failed.", data=data) from None
            try:
                new = await venue.replace(old.as_request(), wanted)
            except (Rejected, OrderRefused) as error:  # Binance had canceled the old one first
                canceled = await venue.cancel(old.client_order_id, old.symbol)
                failed = translate(flavour, error)
                data = {
                    "cancelResult": "SUCCESS",
                    "newOrderResult": "FAILURE",
                    "cancelResponse": exchange.order_json(canceled),
                    "newOrderResponse": {"code": failed.code, "msg": failed.msg},
                }
                raise BinanceError(
                    409, -2021, "Order cancel-replace partially failed.", data=data
                ) from None
            canceled = venue.book.order_by_venue_id(old.venue_order_id)
            return {
                "cancelResult": "SUCCESS",
                "newOrderResult": "SUCCESS",
                "cancelResponse": exchange.order_json(canceled),
                "newOrderResponse": exchange.order_json(new),
            }

        @app.post("/api/v3/orderList/oco")
        async def post_oco(request: Request) -> dict[str, Any]:
            params = await signed(request)
            stop, take_profit, maker = oco_legs(params)
            list_cid = client_id(params, "listClientOrderId")
            if any(
                exchange.list_names.get(o.client_order_id) == list_cid
                for o in await venue.open_orders()
                if o.type is OrderType.STOP and o.oco_with is not None
            ):  # unique among open order lists only, like every client id here
                raise BinanceError(400, -2010, "Duplicate order sent.")
            exchange.list_names[stop.client_order_id] = list_cid
            if maker:
                exchange.maker_legs.add(take_profit.client_order_id)
            legs = await venue.submit_oco(stop, take_profit)
            return {
                **exchange.list_json((legs[0], legs[1])),
                "orderReports": [exchange.order_json(leg) for leg in legs],
            }

        def oco_legs(params: dict[str, str]) -> tuple[OrderRequest, OrderRequest, bool]:
            """The stop leg, the take-profit leg, and whether that one is a LIMIT_MAKER,
            as Binance checks them: a sell's take-profit above the last price and its
            stop below it, a buy's the reverse."""
            book_symbol = exchange.book_symbol(params.get("symbol"))
            side = params.get("side", "").upper()
            if side not in ("BUY", "SELL"):
                raise BinanceError(400, -1102, "Mandatory parameter 'side' was not sent.")
            kinds = {where: params.get(f"{where}Type", "") for where in ("above", "below")}
            for where, kind in kinds.items():
                if not kind:
                    raise BinanceError(
                        400,
                        -1102,
                        f"Mandatory parameter '{where}Type' was not sent, was empty/null, or"
                        " malformed.",
                    )
                if kind not in OCO_LEG_TYPES:  # (the *_LIMIT types are Binance's too)
                    raise BinanceError(400, -1116, "Invalid orderType.")
                if f"{where}TimeInForce" in params:  # only the *_LIMIT types take one
                    raise BinanceError(
                        400, -1106, f"Parameter '{where}TimeInForce' sent when not required."
                    )
            stop_at = "below" if side == "SELL" else "above"
            target_at = "above" if stop_at == "below" else "below"
            if kinds[stop_at] != "STOP_LOSS" or kinds[target_at] == "STOP_LOSS":
                raise BinanceError(400, -2010, PRICE_RELATIONSHIP)
            maker = kinds[target_at] == "LIMIT_MAKER"
            stop_price = _decimal(params, f"{stop_at}StopPrice", required=True)
            target = _decimal(params, f"{target_at}{'Price' if maker else 'StopPrice'}", True)
            last = venue.book.feed.price(book_symbol, venue.clock())
            if not (target > last > stop_price if side == "SELL" else target < last < stop_price):
                raise BinanceError(400, -2010, PRICE_RELATIONSHIP)
            common = {
                "symbol": book_symbol,
                "side": OrderSide(side.lower()),
                "qty": _decimal(params, "quantity", required=True),
            }
            return (
                OrderRequest(
                    client_order_id=client_id(params, f"{stop_at}ClientOrderId"),
                    type=OrderType.STOP,
                    stop_price=stop_price,
                    **common,
                ),
                OrderRequest(
                    client_order_id=client_id(params, f"{target_at}ClientOrderId"),
                    type=OrderType.LIMIT,
                    limit_price=target,
                    **common,
                ),
                maker,
            )

        def named_list(params: dict[str, str], cid_field: str) -> tuple[VenueOrder, VenueOrder]:
            """The order list `orderListId` or the list client id in `cid_field` names."""
            legs = None
            if params.get("orderListId", "").isdigit():
                try:
                    legs = exchange.list_legs(
                        venue.book.order_by_venue_id(f"P{int(params['orderListId']):08d}")
                    )
                except NotFound:
                    legs = None
            elif params.get(cid_field):
                stops = [c for c, n in exchange.list_names.items() if n == params[cid_field]]
                legs = exchange.list_legs(venue.book.order(stops[-1])) if stops else None
            else:
                raise BinanceError(
                    400,
                    -1102,
                    f"Param 'orderListId' or '{cid_field}' must be sent, but both were empty/null!",
                )
            if legs is None or legs[0].type is not OrderType.STOP:
                raise BinanceError(400, -2013, "Order list does not exist.")
            return legs

        @app.get("/api/v3/orderList")
        async def get_order_list(request: Request) -> dict[str, Any]:
            return exchange.list_json(named_list(await signed(request), "origClientOrderId"))

        @app.get("/api/v3/openOrderList")
        async def open_order_lists(request: Request) -> list[dict[str, Any]]:
            await signed(request)
            return [
                exchange.list_json(exchange.list_legs(o))
                for o in await venue.open_orders()
                if o.type is OrderType.STOP and o.oco_with is not None
            ]

        @app.delete("/api/v3/orderList")
        async def delete_order_list(request: Request) -> dict[str, Any]:
            """Cancels both legs (as a cancel of either leg through `DELETE
            /api/v3/order` does)."""
            params = await signed(request)
            exchange.book_symbol(params.get("symbol"))
            stop, _ = named_list(params, "listClientOrderId")
            await venue.cancel(cancelable(stop).client_order_id, stop.symbol)
            legs = exchange.list_legs(venue.book.order(stop.client_order_id))
            return {
                **exchange.list_json(legs),
                "orderReports": [exchange.order_json(leg) for leg in legs],
            }

        return app

    # -- USD-M futures only ----------------------------------------------------------------
    @app.get("/fapi/v1/userTrades")
    async def user_trades(request: Request) -> list[dict[str, Any]]:
        return await trades(request)

    @app.get("/fapi/v1/income")
    async def income(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        wanted = exchange.book_symbol(params["symbol"]) if params.get("symbol") else None
        kind = params.get("incomeType")
        now = _ms(venue.clock())
        start, end = params.get("startTime"), params.get("endTime")
        if not start and not end:
            start = str(now - FUTURES_TRADES_WINDOW_MS)
        start = max(int(start or 0), now - INCOME_KEPT_MS)
        fills = await exchange.listed_fills()
        pnl = realized_pnl(fills)
        rows = []
        for fill in fills:
            at = _ms(fill.time)
            if (wanted and fill.symbol != wanted) or at < start or (end and at > int(end)):
                continue
            number = trade_number(fill)
            flows = (
                ("COMMISSION", -fill.fee, fill.fee_currency or "USDT"),
                ("REALIZED_PNL", pnl[fill.trade_id], "USDT"),
            )
            for offset, (income_type, amount, asset) in enumerate(flows):
                if amount == 0 or (kind and kind != income_type):
                    continue
                rows.append(
                    {
                        "symbol": exchange.exchange_symbol(fill.symbol),
                        "incomeType": income_type,
                        "income": _number(amount),
                        "asset": asset,
                        "info": income_type,
                        "time": at,
                        "tranId": number * 10 + offset,
                        "tradeId": str(number),
                    }
                )
        limit = min(int(params.get("limit") or 100), 1000)
        first = (max(int(params.get("page") or 1), 1) - 1) * limit
        return rows[first : first + limit]

    async def futures_positions(wanted: str | None = None) -> list[dict[str, Any]]:
        now = venue.clock()
        rows = []
        for position in await venue.positions():
            if wanted and position.symbol != wanted:
                continue
            signed_qty = position.qty if position.side is Side.LONG else -position.qty
            mark = venue.book.feed.price(position.symbol, now)
            rows.append(
                {
                    "symbol": exchange.exchange_symbol(position.symbol),
                    "positionSide": "BOTH",
                    "positionAmt": _number(signed_qty),
                    "entryPrice": _number(position.avg_entry_price),
                    "breakEvenPrice": _number(position.avg_entry_price),
                    "markPrice": _number(mark),
                    "unRealizedProfit": _number(signed_qty * (mark - position.avg_entry_price)),
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": _number(signed_qty * mark),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": _number(abs(signed_qty * mark)),
                    "maintMargin": "0",
                    "positionInitialMargin": _number(abs(signed_qty * mark)),
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "leverage": "1",
                    "marginType": "cross",
                    "isAutoAddMargin": "false",
                    "maxNotionalValue": "1000000",
                    "updateTime": _ms(now),
                }
            )
        return rows

    @app.get("/fapi/v2/positionRisk")
    @app.get("/fapi/v3/positionRisk")
    async def position_risk(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        symbol = params.get("symbol")
        return await futures_positions(exchange.book_symbol(symbol) if symbol else None)

    @app.get("/fapi/v2/account")
    @app.get("/fapi/v3/account")
    async def futures_account(request: Request) -> dict[str, Any]:
        await signed(request)
        balance = await venue.balance()
        positions = await futures_positions()
        unrealized = sum((Decimal(p["unRealizedProfit"]) for p in positions), Decimal(0))
        wallet = balance.equity - unrealized
        margin = sum((Decimal(p["initialMargin"]) for p in positions), Decimal(0))
        available = balance.equity - margin
        asset = {
            "asset": balance.currency,
            "walletBalance": _number(wallet),
            "unrealizedProfit": _number(unrealized),
            "marginBalance": _number(balance.equity),
            "maintMargin": "0",
            "initialMargin": _number(margin),
            "positionInitialMargin": _number(margin),
            "openOrderInitialMargin": "0",
            "crossWalletBalance": _number(wallet),
            "crossUnPnl": _number(unrealized),
            "availableBalance": _number(available),
            "maxWithdrawAmount": _number(available),
            "marginAvailable": True,
            "updateTime": _ms(venue.clock()),
        }
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": False,
            "canWithdraw": False,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": "0",
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": "0",
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "assets": [asset],
            "positions": [
                {k: p[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit")}
                | {"isolatedMargin": "0", "notional": p["notional"], "initialMargin": "0"}
                for p in positions
            ],
        }

    @app.get("/fapi/v2/balance")
    @app.get("/fapi/v3/balance")
    async def futures_balance(request: Request) -> list[dict[str, Any]]:
        account = await futures_account(request)
        asset = account["assets"][0]
        return [
            {
                "accountAlias": "bw",
                "asset": asset["asset"],
                "balance": asset["walletBalance"],
                "crossWalletBalance": asset["crossWalletBalance"],
                "crossUnPnl": asset["crossUnPnl"],
                "availableBalance": asset["availableBalance"],
                "maxWithdrawAmount": asset["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": asset["updateTime"],
            }
        ]

    @app.post("/fapi/v1/algoOrder")
    async def post_algo_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        if params.get("algoType") != "CONDITIONAL":
            raise BinanceError(400, -1102, "Mandatory parameter 'algoType' was not sent.")
        kind = params.get("type", "")
        if kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        if "triggerPrice" not in params:
            raise BinanceError(400, -1102, "Mandatory parameter 'triggerPrice' was not sent.")
        if kind == "TAKE_PROFIT_MARKET":
            return exchange.algo_json(await take_profit_algo(params))
        order = await venue.submit(request_from(params, kind, "clientAlgoId"))
        return exchange.algo_json(order)

    async def take_profit_algo(params: dict[str, str]) -> VenueOrder:
        """A TAKE_PROFIT_MARKET: a SELL triggers once the price is at or above its
        trigger, a BUY at or below; one that would trigger at once is refused. The paper
        book holds it as a limit at its trigger price (it fills there, where Binance
        sends a market order once triggered)."""
        request = request_from({**params, "price": params["triggerPrice"]}, "LIMIT", "clientAlgoId")
        price = venue.book.feed.price(request.symbol, venue.clock())
        trigger = request.limit_price
        if (price >= trigger) if request.side is OrderSide.SELL else (price <= trigger):
            raise BinanceError(400, -2021, "Order would immediately trigger.")
        exchange.algo_take_profits.add(request.client_order_id)
        return await venue.submit(request)

    def algo_only(order: VenueOrder) -> VenueOrder:
        if not exchange.is_algo(order):
            raise BinanceError(400, -2013, "Order does not exist.")
        return order

    @app.get("/fapi/v1/algoOrder")
    async def get_algo_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        return exchange.algo_json(algo_only(await find(params, **ALGO)))

    @app.delete("/fapi/v1/algoOrder")
    async def delete_algo_order(request: Request) -> dict[str, Any]:
        params = await signed(request)
        order = cancelable(algo_only(locate(params, **ALGO)))
        canceled = await venue.cancel(order.client_order_id, order.symbol)
        return {
            "algoId": _order_number(canceled),
            "clientAlgoId": canceled.client_order_id,
            "code": "200",
            "msg": "success",
        }

    @app.get("/fapi/v1/openAlgoOrders")
    async def open_algo_orders(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        symbol = params.get("symbol")
        found = await venue.open_orders(exchange.book_symbol(symbol) if symbol else None)
        return [exchange.algo_json(o) for o in found if exchange.is_algo(o)]

    @app.get("/fapi/v1/allAlgoOrders")
    async def all_algo_orders(request: Request) -> list[dict[str, Any]]:
        params = await signed(request)
        book_symbol = exchange.book_symbol(params.get("symbol"))
        found = [o for o in await venue.all_orders(book_symbol) if exchange.is_algo(o)]
        return [exchange.algo_json(o) for o in orders_since(params, found)]

    @app.get("/fapi/v1/leverageBracket")
    async def leverage_brackets(request: Request) -> list[dict[str, Any]]:
        """One bracket per symbol: the paper exchange trades at 1x, unmargined."""
        await signed(request)
        bracket = {
            "bracket": 1,
            "initialLeverage": 1,
            "notionalCap": 1_000_000_000,
            "notionalFloor": 0,
            "maintMarginRatio": 0.004,
            "cum": 0.0,
        }
        return [
            {"symbol": symbol, "notionalCoef": 1.0, "brackets": [bracket]}
            for symbol in exchange.symbols
        ]

    @app.get("/fapi/v1/positionSide/dual")
    async def position_mode(request: Request) -> dict[str, bool]:
        await signed(request)
        return {"dualSidePosition": False}  # one-way mode: every position is BOTH

    return app


def _unsigned(part: str) -> str:
    return "&".join(p for p in part.split("&") if p and not p.startswith("signature="))
