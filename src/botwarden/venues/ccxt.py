"""`ccxt`: crypto exchanges through ccxt's asyncio API; Binance spot (`binance`) and
USD-M futures (`binanceusdm`) are the ones proven here, against their emulators.

What this adapter adds to ccxt:
- one retry policy, botwarden's (`retry.py`), and a timeout on every request (ccxt's
  own `timeout`, with the time limit of `call_with_retry` as the backstop);
- every order carries the client order id the bot stored first (ccxt sends it as
  Binance's `newClientOrderId`, or `clientAlgoId` for a futures stop), and is found
  again by it, including a stop that lives in Binance's algo-order service;
- errors mapped onto the taxonomy by what reached the exchange: a refused connection is
  `Retryable`, a timeout or a dropped connection `Ambiguous`, and Binance's own error
  codes are read from the answer's body, so the mapping is the same whatever host
  ccxt talks to (ccxt applies its Binance tables only to binance.com's hosts);
- positions of a spot account are its coin balances (spot venues keep no entry price);
- a stop and its take-profit rest the way each Binance market offers (docs/venues.md):
  on spot as one OCO order list (`submit_oco`), on USD-M as two reduce-only orders of
  the algo service (the take-profit a TAKE_PROFIT_MARKET);
- ccxt paces requests by a per-minute weight budget (its rolling window), as Binance
  counts them, not by spacing each request by the weight of the one before.

Binance lists fills one market at a time, so `fills` asks each market the bot
trades (the configured `symbols`, and every market it held or ordered in); on USD-M,
only those its account-wide income history and positions say may hold a trade not
seen yet (`market_fills.py`).

Fills are searched by the venue's clock, never the host's: the first search (before any
fill is known) reads the venue's time (`fetch_time`) and walks from the bot's first
order, moved onto the venue's clock, up to the venue's present; after that, fills are
paged by trade id, which no clock moves. `connect` reads the clock too, and warns when
it is further off the host's than `clock_tolerance`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from botwarden.domain.markets import MarketRules, TimeInForce
from botwarden.domain.models import Fill, OrderSide, Side
from botwarden.domain.orders import OrderType
from botwarden.domain.timeframes import TIMEFRAMES
from botwarden.errors import ConfigError
from botwarden.venues.base import (
    DEFAULT_CLOCK_TOLERANCE,
    Ambiguous,
    AuthError,
    Balance,
    Bar,
    Capabilities,
    ClockReading,
    DuplicateOrder,
    FillPage,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    Retryable,
    VenueError,
    VenueOrder,
    VenuePosition,
    timeframe_width,
)
from botwarden.venues.market_fills import (
    INCOME_KINDS,
    INCOME_PAGE,
    WITNESS_CALLS,
    FillCursor,
    Witnessed,
    income_window,
    vouching,
)
from botwarden.venues.retry import CANCELS, NO_RETRY, READS, RetryPolicy, call_with_retry
from botwarden.venues.rules import enforce

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # load_markets asks only for what the exchange object trades: spot markets for
    # `binance` (not futures, options, margin pairs); never the currency list.
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
}
HISTORY_PAGE = 1000
"""Bars asked for at once when reading history (Binance serves up to 1,000 a request
on spot and 1,500 on USD-M)."""

COMMON_OPTIONS = {"fetchCurrencies": False, "warnOnFetchOpenOrdersWithoutSymbol": False}

ALGO_STOPS = frozenset({"binanceusdm"})
"""Exchanges that keep stop orders apart from the others (Binance USD-M's algo-order
service): open stops, stop lookups and stop cancels are separate calls there. A
take-profit rests there too, as a reduce-only TAKE_PROFIT_MARKET (see `submit`)."""
ORDER_LISTS = frozenset({"binance"})
"""Exchanges whose spot stop and take-profit rest as one OCO order list
(`POST /api/v3/orderList/oco`): one fill expires the other leg, one cancel takes both."""
CANCEL_REPLACE = frozenset({"binance"})
"""Spot exchanges whose cancel-replace the adapter speaks (`POST /api/v3/order/cancelReplace`)."""
_SPOT_TYPES = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP: "STOP_LOSS"}
"""Binance spot's names of the port's order types, for its raw endpoints."""
LIST_SUFFIX = "l"
"""An order list's client id is its stop's with this after it (36 characters at most:
the stop's id is one shorter than its take-profit's)."""
INCOME_WITNESS = frozenset({"binanceusdm"})
"""Exchanges whose account-wide income history (`GET /fapi/v1/income`) and positions
say which markets may have traded since a time: fills are read only there."""
SPOT_BY_DEFAULT = frozenset({"binance"})
"""Exchanges whose ccxt object trades spot unless its options say otherwise: known
before the markets are loaded, for the capabilities a bot is checked against at start."""

_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}
"""ccxt's order types the port has (a stop is told by its trigger price)."""
_STATES = {
    "open": OrderState.OPEN,
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "cancelled": OrderState.CANCELED,
    "expired": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
}

# Binance's error codes (its API documentation), by what they tell the caller.
_RETRYABLE_CODES = {-1003, -1008, -1015, -1021}
"""Too many requests, server busy, too many orders, timestamp outside recvWindow
(the request was refused before anything happened)."""
_AMBIGUOUS_CODES = {-1000, -1001, -1006, -1007}
"""Unknown error, disconnected, unexpected answer, backend timeout: the order's fate
is unknown."""
_AUTH_CODES = {-1002, -1022, -2014, -2015}
_BANNED = 418  # Binance's answer to ignoring 429s: the IP is banned for Retry-After s
_NOT_FOUND_CODES = {-1121, -2013}
_NOT_OPEN_CODE = -2011  # cancel of an order that is not open (filled, canceled, unknown)
_WOULD_TRIGGER_CODE = -2021  # a trigger price already reached ("Order would immediately trigger.")

_BODY = re.compile(r"\{.*\}", re.DOTALL)
_STATUS = re.compile(r"^\S+ (?:GET|POST|PUT|DELETE) \S+ (\d{3}) ")
"""ccxt's message for an HTTP failure: `<id> <METHOD> <url> <status> <reason> <body>`."""
_QUERY = re.compile(r"\?\S*")
WEEK_MS = 7 * 86_400_000
"""Binance USD-M answers trades for at most a week per request (ccxt clips to it)."""
SINCE_MARGIN = timedelta(minutes=1)
"""A search for fills starts this much earlier than asked: a clock reading is off by up
to half a round trip, and a trade seen twice costs nothing (the ledger keys by id)."""


def known_exchanges() -> list[str]:
    try:
        import ccxt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ConfigError("the ccxt venue needs ccxt: pip install 'botwarden[ccxt]'") from error
    return list(ccxt.exchanges)


def binance_error(message: str) -> tuple[int, str] | None:
    """Binance's `(code, msg)` inside a ccxt error message, if there is one."""
    found = _BODY.search(message)
    if not found:
        return None
    try:
        body = json.loads(found.group(0))
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, int) or code >= 0:
        return None
    return code, str(body.get("msg", ""))


def rewrite_hosts(urls: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Every API url of `urls` (ccxt's `urls['api']`) moved to `base_url`, path kept."""
    base = base_url.rstrip("/")
    return {
        name: rewrite_hosts(url, base_url) if isinstance(url, dict) else base + urlsplit(url).path
        for name, url in urls.items()
    }


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _time(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _bar(row: Sequence[Any]) -> Bar:
    """A row of `fetch_ohlcv`: time (ms), open, high, low, close, volume."""
    return Bar(
        time=_time(row[0]),
        open=Decimal(str(row[1])),
        high=Decimal(str(row[2])),
        low=Decimal(str(row[3])),
        close=Decimal(str(row[4])),
        volume=Decimal(str(row[5] or 0)),
    )


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _text(number: Decimal | None) -> str:
    """A decimal as Binance takes it: plain digits, never an exponent."""
    return format(number, "f")


def _host_now() -> datetime:
    return datetime.now(UTC)


class CcxtVenue:
    def __init__(
        self,
        exchange_id: str,
        api_key: str,
        secret: str,
        *,
        base_url: str | None = None,
        symbols: Sequence[str] = (),
        options: dict[str, Any] | None = None,
        timeout: float = 10.0,
        reads: RetryPolicy = READS,
        cancels: RetryPolicy = CANCELS,
        throttle: bool = True,
        clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE,
        host_clock: Callable[[], datetime] = _host_now,
    ) -> None:
        self.name = exchange_id
        self._throttle = throttle
        """ccxt's own pacing of requests to the exchange's published rate limits."""
        self._key, self._secret = api_key, secret
        self._base_url = base_url
        self._options = {
            **COMMON_OPTIONS,
            **DEFAULT_OPTIONS.get(exchange_id, {}),
            **(options or {}),
        }
        self._timeout = timeout
        self._reads, self._cancels = reads, cancels
        self._clock_tolerance = clock_tolerance
        self._host_clock = host_clock
        """The clock the bot's own times come from (`since` of `fills`)."""
        self._offset = timedelta(0)
        """The venue's clock minus the host's, as last read."""
        self._symbols = list(dict.fromkeys(symbols))
        """Where fills are looked for: the configured markets, then each one traded."""
        self._exchange: Any = None
        self._client_ids: dict[tuple[str, str], str] = {}
        """(symbol, exchange order id) -> client order id, for naming fills."""
        self._algo = exchange_id in ALGO_STOPS
        self._spot = exchange_id in SPOT_BY_DEFAULT and (
            self._options.get("defaultType", "spot") == "spot"
        )
        """A spot account (coins, no shorting): confirmed once the markets are loaded."""
        self._in_algo: set[str] = set()
        """Client ids of orders found in the algo service (stops, take-profits)."""
        self._pairs: dict[tuple[str, str], str] = {}
        """(symbol, client id of a leg of an order list) -> the other leg's client id."""
        self.capabilities = self._capabilities()

    def _capabilities(self) -> Capabilities:
        return Capabilities(
            shorting=not self._spot,
            stop_orders=True,
            client_ids="unique_while_open",
            # Binance forgets orders: canceled ones without fills after 3 days on
            # USD-M, any after 90. "Not found" is never proof of absence here.
            closed_order_lookup=False,
            bulk=frozenset({"positions", "open_orders"}),
            reduce_only=not self._spot,
            oco=self._spot and self.name in ORDER_LISTS,
            replaces=self._spot and self.name in CANCEL_REPLACE,
        )

    # -- plumbing ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Load the markets, read the venue's clock, prove the keys. Connecting changes
        nothing at the venue, so a venue that cannot be reached or does not answer is
        `Retryable`, and a failed connect leaves nothing open: call it again."""
        if self.name not in known_exchanges():
            raise ConfigError(f"venue.exchange: ccxt knows no exchange {self.name!r}")
        await self.close()  # a connect before this one: its HTTP session
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        import ccxt.async_support as ccxt

        self._exchange = getattr(ccxt, self.name)(
            {
                "apiKey": self._key,
                "secret": self._secret,
                "timeout": int(self._timeout * 1000),
                "enableRateLimit": self._throttle,
                # Binance limits request weight per minute (2,400 on USD-M, 6,000 on
                # spot); ccxt's default leaky bucket instead spaces every request by its
                # weight (a 40-weight listing holds the next request back 2 s). Its
                # rolling window keeps ccxt's budget (60 s / rateLimit: 1,200 a minute)
                # and lets a tick's few requests go at once.
                "rateLimiterAlgorithm": "rollingWindow",
                "options": self._options,
            }
        )
        if self._base_url:
            self._exchange.urls["api"] = rewrite_hosts(self._exchange.urls["api"], self._base_url)
        await _later(
            self._call("markets", self._exchange.load_markets, self._reads),
            "markets could not load",
        )
        self._spot = self._exchange.options.get("defaultType", "spot") == "spot"
        self.capabilities = self._capabilities()
        for symbol in self._symbols:
            self._rules(symbol)  # a configured market that is not listed: say so now
        clock = await _later(self.read_clock(), "the clock could not be read")
        if clock.skewed:
            log.warning(
                "%s: fills are looked for by the venue's time; set this host's clock (NTP)",
                clock.describe(self.name),
            )
        # The keys are proven now, not at the first order (none: market data only).
        if self._key:
            await _later(self.balance(), "the account could not be read")

    async def close(self) -> None:
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            await exchange.close()

    async def read_clock(self) -> ClockReading:
        """The venue's time (`fetch_time`) against the host's at the middle of the call;
        the host's own where the exchange tells no time."""
        if not self._exchange.has.get("fetchTime"):
            now = self._host_clock()
            return ClockReading(now, now, self._clock_tolerance)
        sent = self._host_clock()
        told = await self._call("server time", self._exchange.fetch_time, self._reads)
        answered = self._host_clock()
        reading = ClockReading(_time(told), sent + (answered - sent) / 2, self._clock_tolerance)
        self._offset = reading.offset
        return reading

    async def _call(self, what: str, call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
        async def once() -> T:
            try:
                return await call()
            except VenueError:
                raise
            except Exception as error:
                raise self._translate(error, what) from error

        return await call_with_retry(
            once, policy, venue=self.name, what=what, per_try=self._timeout * 2 + 1
        )

    def _translate(self, error: Exception, what: str) -> VenueError:
        import ccxt

        text = _QUERY.sub("?...", str(error))  # no signed query strings in messages
        if isinstance(error, ccxt.DDoSProtection):  # 429, or 418: banned for a while
            after = (self._exchange.last_response_headers or {}).get("Retry-After")
            return Retryable(
                self.name, f"{what}: {text[:300]}", retry_after=float(after) if after else None
            )
        found = binance_error(text)
        if found is not None:
            return self._binance_code(*found, what)
        if isinstance(error, ccxt.AuthenticationError | ccxt.PermissionDenied):
            return AuthError(self.name, f"{what}: {text}")
        if isinstance(error, ccxt.OrderNotFound | ccxt.BadSymbol):
            return NotFound(self.name, f"{what}: {text}")
        if isinstance(error, ccxt.InvalidOrder | ccxt.InsufficientFunds | ccxt.BadRequest):
            return Rejected(self.name, f"{what}: {text}")
        if isinstance(error, ccxt.NotSupported):
            return Rejected(self.name, f"{what}: {self.name} does not support this: {text}")
        if isinstance(error, ccxt.OnMaintenance):
            return Retryable(self.name, f"{what}: {text}")
        if isinstance(error, ccxt.RequestTimeout):
            return Ambiguous(self.name, f"{what}: no answer within {self._timeout:g} s")
        if isinstance(error, ccxt.ExchangeNotAvailable) and _refused(error):
            return Retryable(self.name, f"{what}: could not connect")
        status = _STATUS.search(text)
        if status and 400 <= int(status.group(1)) < 500 and status.group(1) != "408":
            return Rejected(self.name, f"{what}: {text[:300]}", code=status.group(1))
        # 5xx, a dropped connection, an answer that makes no sense: it may have happened.
        return Ambiguous(self.name, f"{what}: {text[:300]}")

    def _binance_code(self, code: int, msg: str, what: str) -> VenueError:
        text = f"{what}: {msg} (Binance {code})"
        if code in _RETRYABLE_CODES:
            return Retryable(self.name, text)
        if code in _AUTH_CODES:
            return AuthError(self.name, text)
        if code in _NOT_FOUND_CODES:
            return NotFound(self.name, text)
        if code == _NOT_OPEN_CODE:
            return Rejected(self.name, text, code="not_open")
        if code == -4116 or (code == -2010 and "duplicate" in msg.lower()):
            return DuplicateOrder(self.name, text, code=str(code))  # (USD-M; spot)
        if code in _AMBIGUOUS_CODES or -1099 <= code <= -1000:
            # Binance's 10xx are about the server and the connection, not the order:
            # one it does not name may have been taken.
            return Ambiguous(self.name, text)
        return Rejected(self.name, text, code=str(code))

    def _rules(self, symbol: str) -> dict[str, Any]:
        market = self._exchange.markets.get(symbol)
        if market is None:
            listed = ", ".join(sorted(self._exchange.markets)[:10])
            raise NotFound(self.name, f"unknown symbol {symbol!r}; listed: {listed}")
        return market

    def _traded(self, symbol: str) -> None:
        if symbol not in self._symbols:
            self._symbols.append(symbol)

    # -- the port ------------------------------------------------------------------------
    async def balance(self) -> Balance:
        """Cash is what is settled: a spot account's currency, a futures wallet (without
        open profit). Equity adds the rest: coins at their last price on spot, open
        profit on futures."""
        found = await self._call("balance", self._exchange.fetch_balance, self._reads)
        currency = self._currency()
        total = Decimal(str(found.get("total", {}).get(currency) or 0))
        free = Decimal(str(found.get("free", {}).get(currency) or 0))
        cash = equity = total
        info = found.get("info") or {}
        assets = info.get("assets") if isinstance(info, dict) else None
        for asset in assets or []:
            if asset.get("asset") == currency and asset.get("walletBalance") is not None:
                cash = Decimal(str(asset["walletBalance"]))  # futures: realised only
        if self._spot:
            equity = cash + await self._coins_value(found, currency)
        return Balance(currency=currency, cash=cash, equity=equity, buying_power=free)

    async def _coins_value(self, balance: dict[str, Any], currency: str) -> Decimal:
        held = {
            f"{coin}/{currency}": Decimal(str(amount))
            for coin, amount in (balance.get("total") or {}).items()
            if coin != currency and amount and f"{coin}/{currency}" in self._exchange.markets
        }
        if not held:
            return Decimal(0)
        prices = await self.last_prices(list(held))
        return sum((qty * prices[symbol] for symbol, qty in held.items()), Decimal(0))

    def _currency(self) -> str:
        """The account's currency: the quote (settle) currency of the markets traded."""
        for symbol in self._symbols:
            market = self._exchange.markets.get(symbol)
            if market:
                return market.get("settle") or market["quote"]
        return "USDT"

    async def positions(self) -> list[VenuePosition]:
        if self._spot:
            return await self._spot_positions()
        found = await self._call("positions", self._exchange.fetch_positions, self._reads)
        held = []
        for position in found:
            contracts = Decimal(str(position.get("contracts") or 0))
            size = Decimal(str(self._rules(position["symbol"]).get("contractSize") or 1))
            if contracts == 0:
                continue
            self._traded(position["symbol"])
            held.append(
                VenuePosition(
                    symbol=position["symbol"],
                    side=Side.SHORT if position.get("side") == "short" else Side.LONG,
                    qty=abs(contracts * size),
                    avg_entry_price=_decimal(position.get("entryPrice")),
                )
            )
        return held

    async def _spot_positions(self) -> list[VenuePosition]:
        """A spot account's coins, as long positions in their markets against the
        account's currency; dust below a market's minimum quantity is left out (it
        cannot be sold)."""
        found = await self._call("balance", self._exchange.fetch_balance, self._reads)
        currency = self._currency()
        held = []
        for coin, amount in sorted((found.get("total") or {}).items()):
            symbol = f"{coin}/{currency}"
            market = self._exchange.markets.get(symbol)
            qty = Decimal(str(amount or 0))
            if coin == currency or market is None or qty <= 0:
                continue
            minimum = market.get("limits", {}).get("amount", {}).get("min")
            if minimum and qty < Decimal(str(minimum)):
                continue
            self._traded(symbol)
            held.append(VenuePosition(symbol=symbol, side=Side.LONG, qty=qty, avg_entry_price=None))
        return held

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        listings = [
            self._call("open orders", lambda: self._exchange.fetch_open_orders(symbol), self._reads)
        ]
        if self._algo:  # the algo service's, asked at the same time: one round trip
            listings.append(
                self._call(
                    "open stops",
                    lambda: self._exchange.fetch_open_orders(symbol, None, None, {"trigger": True}),
                    self._reads,
                )
            )
        answers = await _together(listings)
        found = [order for listed in answers for order in listed]
        self._learn_lists(found)
        return [self._order(o) for o in found]

    async def order(self, client_order_id: str, symbol: str) -> VenueOrder:
        return self._order(await self._lookup(client_order_id, symbol))

    async def _lookup(self, client_order_id: str, symbol: str) -> dict[str, Any]:
        """The order as ccxt gives it: a regular one, else (USD-M) one in the algo
        service, where the stops and take-profits are (asked there first once known
        to be there); a leg of an order list with its other leg learned."""
        self._rules(symbol)
        regular = {"clientOrderId": client_order_id}
        algo = {**regular, "trigger": True}
        places = [("order lookup", regular)]
        if self._algo:
            places.append(("stop lookup", algo))
            if client_order_id in self._in_algo:
                places.reverse()
        for number, (what, params) in enumerate(places, 1):
            try:
                found = await self._call(
                    what,
                    lambda p=params: self._exchange.fetch_order(None, symbol, p),
                    self._reads,
                )
                break
            except NotFound:
                if number == len(places):
                    raise
        await self._learn_list_of(found)
        return found

    # -- order lists (Binance spot's OCO) ------------------------------------------------
    def _pair(self, symbol: str, legs: Sequence[str]) -> None:
        if len(legs) == 2:
            first, second = legs
            self._pairs[(symbol, first)], self._pairs[(symbol, second)] = second, first

    def _learn_lists(self, orders: list[dict[str, Any]]) -> None:
        """The two legs of each order list among `orders` (open orders: both legs of an
        open list are there), paired by their `orderListId` (-1: in no list)."""
        lists: dict[tuple[str, str], list[str]] = {}
        for order in orders:
            list_id = str((order.get("info") or {}).get("orderListId", -1))
            if list_id != "-1" and order.get("clientOrderId"):
                lists.setdefault((order["symbol"], list_id), []).append(order["clientOrderId"])
        for (symbol, _), legs in lists.items():
            self._pair(symbol, legs)

    async def _learn_list_of(self, order: dict[str, Any]) -> None:
        """The other leg of `order`'s order list, if it is in one the adapter has not
        seen: one call (`GET /api/v3/orderList`), which names both legs."""
        list_id = str((order.get("info") or {}).get("orderListId", -1))
        symbol = order.get("symbol")
        if list_id == "-1" or (symbol, order.get("clientOrderId")) in self._pairs:
            return
        found = await self._call(
            "order list",
            lambda: self._exchange.private_get_orderlist({"orderListId": list_id}),
            self._reads,
        )
        self._pair(symbol, [leg["clientOrderId"] for leg in found.get("orders") or []])

    async def submit_oco(self, stop: OrderRequest, take_profit: OrderRequest) -> list[VenueOrder]:
        """A stop and its take-profit as one OCO order list (`POST /api/v3/orderList/oco`
        through ccxt's raw `privatePostOrderListOco`: ccxt has no unified OCO), every id
        the bot's: both legs' and the list's (the stop's with `l`). The stop leg is a
        STOP_LOSS, the take-profit a TAKE_PROFIT: both go at market once their price is
        reached, so the take-profit fills whole (a LIMIT_MAKER filled in part would
        expire the stop for the rest of the position)."""
        if not self.capabilities.oco:
            raise Rejected(self.name, "submit oco: this account has no one-cancels-other lists")
        if stop.symbol not in self._exchange.markets:
            raise Rejected(self.name, f"submit oco: unknown symbol {stop.symbol!r}")
        rules = await self.market(stop.symbol)
        enforce(stop, rules, None)
        enforce(take_profit, rules, None)
        self._traded(stop.symbol)
        stop_leg = {
            "Type": "STOP_LOSS",
            "StopPrice": _text(stop.stop_price),
            "ClientOrderId": stop.client_order_id,
        }
        target_leg = {
            "Type": "TAKE_PROFIT",
            "StopPrice": _text(take_profit.limit_price),
            "ClientOrderId": take_profit.client_order_id,
        }
        # A sell's take-profit is above the price and its stop below; a buy's the reverse.
        above, below = (target_leg, stop_leg) if stop.side is OrderSide.SELL else (
            stop_leg, target_leg
        )  # fmt: skip
        params = {
            "symbol": self._rules(stop.symbol)["id"],
            "side": stop.side.value.upper(),
            "quantity": _text(stop.qty),
            "listClientOrderId": stop.client_order_id + LIST_SUFFIX,
            "newOrderRespType": "FULL",
            **{f"above{name}": value for name, value in above.items()},
            **{f"below{name}": value for name, value in below.items()},
        }
        # Paired before it is sent: if the answer is lost, the legs found by lookup are
        # known for what they are without asking for their list.
        self._pair(stop.symbol, [stop.client_order_id, take_profit.client_order_id])
        answer = await self._call(
            "submit oco", lambda: self._exchange.private_post_orderlist_oco(params), NO_RETRY
        )
        try:
            market = self._rules(stop.symbol)
            reports = [self._exchange.parse_order(r, market) for r in answer["orderReports"]]
            by_id = {r["clientOrderId"]: r for r in reports}
            return [self._order(by_id[leg.client_order_id], leg) for leg in (stop, take_profit)]
        except (ValueError, TypeError, KeyError) as error:  # taken, but answered oddly
            raise Ambiguous(self.name, f"submit oco: unreadable answer: {error}") from error

    async def replace(
        self, old: OrderRequest, new: OrderRequest, venue_order_id: str | None = None
    ) -> VenueOrder:
        """Binance spot's cancel-replace (`POST /api/v3/order/cancelReplace` through
        ccxt's raw `privatePostOrderCancelReplace`; ccxt's `edit_order` names neither
        order by the bot's ids), in `STOP_ON_FAILURE` mode: the new order is tried only
        once the old one is canceled. Binance cancels first, so a new one it then
        refuses (409, -2021 "partially failed") leaves neither: the open orders say."""
        if not self.capabilities.replaces:
            raise Rejected(self.name, "replace: this account has no cancel-replace")
        if new.symbol not in self._exchange.markets:
            raise Rejected(self.name, f"replace: unknown symbol {new.symbol!r}")
        enforce(new, await self.market(new.symbol), None)
        self._traded(new.symbol)
        params: dict[str, Any] = {
            "symbol": self._rules(new.symbol)["id"],
            "side": new.side.value.upper(),
            "type": _SPOT_TYPES[new.type],
            "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrigClientOrderId": old.client_order_id,
            "newClientOrderId": new.client_order_id,
            "quantity": _text(new.qty),
            "newOrderRespType": "FULL",
        }
        if new.type is OrderType.STOP:
            params["stopPrice"] = _text(new.stop_price)
        if new.type is OrderType.LIMIT:
            params.update(price=_text(new.limit_price), timeInForce=new.time_in_force.upper())
        answer = await self._call(
            "replace", lambda: self._exchange.private_post_order_cancelreplace(params), NO_RETRY
        )
        try:
            market = self._rules(new.symbol)
            return self._order(self._exchange.parse_order(answer["newOrderResponse"], market))
        except (ValueError, TypeError, KeyError) as error:  # taken, but answered oddly
            raise Ambiguous(self.name, f"replace: unreadable answer: {error}") from error

    async def fills(self, since: datetime | None = None, cursor: str | None = None) -> FillPage:
        known = FillCursor.parse(cursor)
        symbols = list(self._symbols)
        witnessed = None
        if self.name in INCOME_WITNESS and len(symbols) > WITNESS_CALLS:
            witnessed = await self._witness(known)
            symbols = witnessed.markets_to_read(symbols, known, self._market_of)
        after = dict(known.last_trade)
        fills: list[Fill] = []
        for symbol in symbols:
            trades = await self._trades(symbol, since, after.get(symbol) or None)
            if trades:
                await self._name_orders(symbol, {str(t["order"]) for t in trades})
                after[symbol] = int(trades[-1]["id"])
                fills += [self._fill(t) for t in trades]
            elif witnessed is not None:
                after.setdefault(symbol, 0)  # read: the witnesses vouch for it from now
        fills.sort(key=lambda f: (f.time, int(f.trade_id) if f.trade_id.isdigit() else 0))
        if witnessed is None:
            return FillPage(fills=fills, cursor=FillCursor(after).dump() if after else cursor)
        moved = witnessed.cursor(known, after)
        return FillPage(fills=fills, cursor=cursor if moved is None else moved.dump())

    async def _witness(self, known: FillCursor) -> Witnessed:
        """The positions, and the income since the last look, asked at once (every
        position before any trade is read: a trade after this shows at the next look)."""
        now = _ms(self._host_clock() + self._offset)
        window = income_window(known, now)
        asks = [self.positions()]
        listing = self._exchange.fapiPrivateGetIncome
        for kind in INCOME_KINDS if window else ():
            start, end = window
            params = {"incomeType": kind, "startTime": start, "endTime": end, "limit": INCOME_PAGE}
            asks.append(self._call("income", lambda p=params: listing(p), self._reads))
        answers = await _together(asks)
        signed = {p.symbol: p.qty if p.side is Side.LONG else -p.qty for p in answers[0]}
        held = {symbol: _text(qty.normalize()) for symbol, qty in signed.items()}
        income = vouching(answers[1:]) if window else None
        return Witnessed(now, held, income)

    def _market_of(self, exchange_id: str) -> str | None:
        listed = self._exchange.markets_by_id.get(exchange_id) or []
        return listed[0]["symbol"] if listed else None

    async def _trades(
        self, symbol: str, since: datetime | None, last_id: int | None
    ) -> list[dict[str, Any]]:
        """Every trade in `symbol` after trade `last_id` (else since `since`, else ever),
        oldest first. Binance pages trades by id (`fromId`); a time only finds the
        first one, and on USD-M a week at a time."""
        if last_id is None and since is not None:
            first = await self._first_trades_since(symbol, since)
            if not first:
                return []
            trades, last_id = first, int(first[-1]["id"])
            if len(first) < 1000:
                return trades
        else:
            trades = []
        while True:
            start = 0 if last_id is None else last_id + 1
            page = await self._call(
                "fills",
                lambda s=start: self._exchange.fetch_my_trades(symbol, None, 1000, {"fromId": s}),
                self._reads,
            )
            page = [t for t in page if last_id is None or int(t["id"]) > last_id]
            trades += page
            if len(page) < 1000:
                return trades
            last_id = int(page[-1]["id"])

    async def _first_trades_since(self, symbol: str, since: datetime) -> list[dict[str, Any]]:
        """The trades from `since` (the host's time) on, up to a page, searched by the
        venue's clock: from `since` moved onto it, and on USD-M one week at a time (the
        most Binance answers for) up to the venue's present, wherever the host's is."""
        clock = await self.read_clock()
        start = _ms(since + clock.offset - SINCE_MARGIN)
        present = _ms(clock.venue_time)
        window = WEEK_MS if not self._spot else None
        while True:
            until = None if window is None else start + window
            params = {} if until is None else {"until": until}
            page = await self._call(
                "fills",
                lambda s=start, p=params: self._exchange.fetch_my_trades(symbol, s, 1000, p),
                self._reads,
            )
            if page or until is None or until >= present:
                return page
            start = until

    async def _name_orders(self, symbol: str, order_ids: set[str]) -> None:
        """Learn the client order ids of the orders these trades belong to: Binance's
        trades name only the exchange's order id. One listing of the market's recent
        orders (and, on USD-M, of its stops: a triggered stop trades as a market order
        of its own, its `actualOrderId`), then one lookup per order still unknown."""
        unknown = order_ids - {oid for (s, oid) in self._client_ids if s == symbol}
        if not unknown:
            return
        if self._algo:  # stops first: their market orders must not name their fills
            listed = await self._call(
                "stops",
                lambda: self._exchange.fetch_orders(symbol, None, 1000, {"trigger": True}),
                self._reads,
            )
            for order in listed:
                self._order(order)
            unknown -= {oid for (s, oid) in self._client_ids if s == symbol}
        if unknown:
            listed = await self._call(
                "orders", lambda: self._exchange.fetch_orders(symbol, None, 1000), self._reads
            )
            for order in listed:
                if str(order.get("id")) in unknown:
                    self._order(order)
            unknown -= {oid for (s, oid) in self._client_ids if s == symbol}
        for order_id in sorted(unknown):
            found = await self._call(
                "order by id",
                lambda i=order_id: self._exchange.fetch_order(i, symbol),
                self._reads,
            )
            self._order(found)

    def _fill(self, trade: dict[str, Any]) -> Fill:
        order_id = str(trade["order"])
        fee = trade.get("fee") or {}
        return Fill(
            trade_id=str(trade["id"]),
            client_order_id=self._client_ids[(trade["symbol"], order_id)],
            venue_order_id=order_id,
            symbol=trade["symbol"],
            side=OrderSide(trade["side"]),
            qty=Decimal(str(trade["amount"])),
            price=Decimal(str(trade["price"])),
            fee=abs(Decimal(str(fee.get("cost") or 0))),
            fee_currency=fee.get("currency"),
            time=_time(trade["timestamp"]),
        )

    async def submit(self, request: OrderRequest) -> VenueOrder:
        if request.symbol not in self._exchange.markets:
            raise Rejected(self.name, f"submit: unknown symbol {request.symbol!r}")
        # Checked here, not sent to be rejected; a market order's value is left to the
        # exchange (pricing it here would cost a call).
        enforce(request, await self.market(request.symbol), None)
        self._traded(request.symbol)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.type is OrderType.LIMIT:  # Binance refuses it on market and stop orders
            params["timeInForce"] = request.time_in_force.value.upper()
        if request.reduce_only and not self._spot:
            params["reduceOnly"] = True
        if request.type is OrderType.STOP:
            params["stopLossPrice"] = str(request.stop_price)
        kind = "limit" if request.type is OrderType.LIMIT else "market"
        if self._algo and kind == "limit" and request.reduce_only:
            # A reduce-only limit is a take-profit: on USD-M it rests in the algo
            # service as a TAKE_PROFIT_MARKET, triggered at its price, never in the
            # book, where Binance counts it against the position and refuses every
            # other reduce-only order (-4118, -2022): the bot's exits, and possibly
            # the stop's own market order when it triggers.
            trigger = {**params, "takeProfitPrice": str(request.limit_price)}
            del trigger["timeInForce"]
            try:
                sent = await self._send(request, "market", None, trigger)
            except Rejected as refused:
                if refused.code != str(_WOULD_TRIGGER_CODE):
                    raise
                # Its price is reached already: taken at once, as a limit would be
                # (nothing was placed, so the same client id is free).
                sent = await self._send(request, kind, request.limit_price, params)
        else:
            sent = await self._send(request, kind, request.limit_price, params)
        try:
            return self._order(sent, request)
        except (ValueError, TypeError, KeyError) as error:  # taken, but answered oddly
            raise Ambiguous(self.name, f"submit: unreadable answer: {error}") from error

    async def _send(
        self, request: OrderRequest, kind: str, limit: Decimal | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._call(
            "submit",
            lambda: self._exchange.create_order(
                request.symbol,
                kind,
                request.side.value,
                str(request.qty),
                None if limit is None else str(limit),
                params,
            ),
            NO_RETRY,
        )

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        order = await self._lookup(client_order_id, symbol)
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if "algoId" in (order.get("info") or {}):
            params["trigger"] = True
        await self._call(
            "cancel",
            lambda: self._exchange.cancel_order(None, symbol, params),
            self._cancels,
        )
        try:
            return await self.order(client_order_id, symbol)
        except VenueError as error:
            # The cancel went through; only its confirmation is missing. The caller
            # must look again, never cancel again (that answers "not open").
            raise Ambiguous(
                self.name, f"cancel: canceled, but the order could not be read back: {error}"
            ) from error

    async def last_price(self, symbol: str) -> Decimal:
        return (await self.last_prices([symbol]))[symbol]

    async def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        for symbol in symbols:
            self._rules(symbol)
        tickers = await self._call(
            "last prices", lambda: self._exchange.fetch_tickers(list(symbols)), self._reads
        )
        return {s: Decimal(str(tickers[s]["last"])) for s in symbols}

    def _served(self, symbol: str, timeframe: str) -> timedelta:
        """`timeframe`'s width, where the exchange serves its bars."""
        self._rules(symbol)
        size = timeframe_width(self.name, timeframe)  # an exchange's 3m or 1M: not ours
        served = self._exchange.timeframes or {}
        if timeframe not in served:
            ours = ", ".join(t for t in TIMEFRAMES if t in served)
            raise NotFound(
                self.name, f"timeframe {timeframe!r} is not served here; use one of {ours}"
            )
        return size

    async def bars(self, symbol: str, timeframe: str, limit: int) -> Sequence[Bar]:
        """The last `limit` completed bars: the exchange's newest bar is still forming."""
        self._served(symbol, timeframe)
        rows = await self._call(
            "bars",
            lambda: self._exchange.fetch_ohlcv(symbol, timeframe, None, limit + 1),
            self._reads,
        )
        return [_bar(row) for row in rows[:-1][-limit:]]

    async def history(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> Sequence[Bar]:
        """Page by page from `start` (`fetch_ohlcv`'s `since`), each page from the bar
        after the last one found, until `end` or the bar still forming."""
        size = self._served(symbol, timeframe)
        now = (await self.read_clock()).venue_time
        until = min(end, now - size)  # (opening later: not completed)
        found: list[Bar] = []
        since = start
        while since <= until:
            page = await self._call(
                "bars",
                lambda since=since: self._exchange.fetch_ohlcv(
                    symbol, timeframe, _ms(since), HISTORY_PAGE
                ),
                self._reads,
            )
            bars = [b for b in map(_bar, page) if since <= b.time and b.time + size <= now]
            if not bars:
                break
            found += [b for b in bars if b.time < end]
            since = bars[-1].time + size
        return found

    async def market(self, symbol: str) -> MarketRules:
        market = self._rules(symbol)
        precision, limits = market.get("precision", {}), market.get("limits", {})
        return MarketRules(
            symbol=symbol,
            qty_step=self._step(precision.get("amount")),
            min_qty=_decimal(limits.get("amount", {}).get("min")),
            price_tick=self._step(precision.get("price")),
            min_notional=_decimal(limits.get("cost", {}).get("min")) or None,
            time_in_force=frozenset({TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK}),
            shortable=not market.get("spot", False),
        )

    def _step(self, precision: Any) -> Decimal | None:
        """ccxt's precision as a step: a tick size already, or a number of decimals."""
        import ccxt

        if precision is None:
            return None
        if self._exchange.precisionMode == ccxt.TICK_SIZE:
            return Decimal(str(precision)).normalize()
        return Decimal(1).scaleb(-int(precision))

    def _order(self, order: dict[str, Any], sent: OrderRequest | None = None) -> VenueOrder:
        """A ccxt order as the port's; `sent` fills in what an exchange's short
        acknowledgement leaves out."""
        info = order.get("info") or {}
        symbol = order.get("symbol") or (sent.symbol if sent else None)
        client_order_id = order.get("clientOrderId") or info.get("clientAlgoId")
        client_order_id = client_order_id or (sent.client_order_id if sent else None)
        order_id = str(order.get("id") or info.get("algoId") or "")
        # Trades name regular order ids: a stop in the algo service trades under the
        # id of the order it became (`actualOrderId`), never under its algo id.
        traded_as = info.get("actualOrderId") if "algoId" in info else order_id
        if traded_as and symbol and client_order_id:
            self._client_ids[(symbol, str(traded_as))] = client_order_id
        if "algoId" in info and client_order_id:
            self._in_algo.add(client_order_id)
        # A take-profit (TAKE_PROFIT on spot, TAKE_PROFIT_MARKET on USD-M) is the port's
        # limit at its trigger price: it goes at market once the price reaches it.
        take_profit = _decimal(order.get("takeProfitPrice"))
        trigger = (
            None if take_profit else _decimal(order.get("triggerPrice") or order.get("stopPrice"))
        )
        kind = OrderType.STOP if trigger else _TYPES.get(order.get("type"), OrderType.MARKET)
        kind = OrderType.LIMIT if take_profit else kind
        qty = Decimal(str(order.get("amount") or (sent.qty if sent else 0)))
        filled = Decimal(str(order.get("filled") or info.get("executedQty") or 0))
        state = _STATES.get(order.get("status") or "", OrderState.OPEN)
        algo_status = info.get("algoStatus")
        if algo_status == "FINISHED":  # the order the stop became is done: filled or not
            state = OrderState.FILLED if filled >= qty > 0 else OrderState.CANCELED
        elif algo_status in ("TRIGGERING", "TRIGGERED"):  # working in the matching engine
            state = OrderState.OPEN
        if state is OrderState.OPEN and filled > 0:
            state = OrderState.PARTIALLY_FILLED
        stamp = order.get("timestamp") or order.get("lastUpdateTimestamp")
        created = _time(stamp) if stamp else datetime.now(UTC)
        updated = order.get("lastUpdateTimestamp") or order.get("lastTradeTimestamp")
        tif = (order.get("timeInForce") or "GTC").lower()
        return VenueOrder(
            client_order_id=client_order_id or order_id,
            venue_order_id=order_id,
            symbol=symbol,
            side=OrderSide(order.get("side") or (sent.side.value if sent else "buy")),
            type=kind,
            qty=qty,
            state=state,
            filled_qty=filled,
            avg_price=_decimal(order.get("average") or info.get("avgPrice") or None) or None,
            limit_price=take_profit
            or (_decimal(order.get("price")) if kind is OrderType.LIMIT else None),
            stop_price=trigger,
            time_in_force=TimeInForce(tif)
            if tif in TimeInForce._value2member_map_
            else TimeInForce.GTC,
            created_at=created,
            updated_at=_time(updated) if updated else created,
            oco_with=self._pairs.get((symbol, client_order_id)),
        )


async def _together(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """The answers of calls made at once (one round trip); the first failure is raised
    once every call has ended (none is left running)."""
    answers = await asyncio.gather(*calls, return_exceptions=True)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers


async def _later(step: Awaitable[T], failure: str) -> T:
    """A step of connecting. It changes nothing at the venue, so no answer there (an
    `Ambiguous` read) only means "try again later", like no connection."""
    try:
        return await step
    except (Retryable, Ambiguous) as error:
        # "<venue>: <call>: <cause>" -> the cause
        cause = str(error).removeprefix(f"{error.venue}: ").split(": ", 1)[-1]
        raise Retryable(error.venue, f"{failure}: {cause}") from error


def _refused(error: Exception) -> bool:
    """True when the connection was never made (nothing reached the exchange)."""
    import aiohttp

    return isinstance(error.__cause__, aiohttp.ClientConnectorError)
