"""`alpaca`: stocks (and crypto orders) at Alpaca, through alpaca-py.

alpaca-py is synchronous, sets no HTTP timeout and retries 429 and 504 on its own (three
times, 3 s apart), and its clients take no argument to change either. So this adapter:
- runs every SDK call in a worker thread, off the event loop;
- bounds every HTTP request by mounting a timeout on the SDK's `requests` session, and
  switches the SDK's own retries off (`_retry = 0`, the only switch there is), so that
  the one retry policy is botwarden's (`retry.py`): reads retried, cancels retried only
  when nothing reached Alpaca, submissions never;
- maps whatever the SDK raised onto the error taxonomy, telling "never reached Alpaca"
  (connection refused, connect timeout, 429, 503) from "may have" (read timeout, a
  reset connection, other 5xx).

Facts of Alpaca's API used here: orders are found by client order id at
`GET /v2/orders:by_client_order_id`, even once closed; client order ids are unique
for the account, forever; fills are account activities (`/v2/account/activities/FILL`)
that name the order by its id, not by the client order id.

Alpaca's order rules, which decide what is sent (`_time_in_force`, `_sdk_order`):
- a stock order for a fractional quantity (or a notional one) must be a DAY order, and
  may not sell short; only assets marked `fractionable` take fractions. So a fraction
  goes as DAY (the longest it may rest), and stock entries are sized in whole shares
  unless `fractional=True`: a whole-share position's stop is GTC and keeps resting
  while the bot is down; a fractional one's is a DAY order that ends at the close.
- crypto (`BTC/USD`) takes `gtc` and `ioc` only, and market, limit and stop-limit
  orders, no plain stop: a stop goes as a stop-limit whose limit lies
  `crypto_stop_band` beyond the stop, so that a fall through the stop still fills
  (not a gap past the band: the stop-limit then rests unfilled).
  Crypto is never sold short. Its prices and bars come from the crypto data API.
- each symbol's rules (fractionable, shortable, a coin's increments) are read once
  from `GET /v2/assets/{symbol}`.

A stop and a take-profit go as one OCO (`order_class=oco`, stocks only: crypto takes
simple orders only, and a fraction of a share is refused as "fractional orders must be
simple orders"). Its parent is the take-profit, a limit, under the client order id the
engine gave it; its one leg is the stop, whose client order id Alpaca makes up. The
engine names the take-profit after its stop (`pair_take_profit_id`), so this adapter
reports the leg under `pair_stop_id` of its parent's id, and finds it from there: the
parent by client order id, then its legs (`GET /v2/orders/{id}?nested=true`). Open
orders are listed `nested`, because a `held` leg is reported missing from a plain
listing; fills name the leg by its order id, named from the same listings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

from botwarden.domain.markets import MarketRules, OrderRefused, TimeInForce
from botwarden.domain.models import Fill, OrderSide, Side
from botwarden.domain.orders import OrderType
from botwarden.venues.base import (
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
    pair_stop_id,
    pair_take_profit_id,
    timeframe_width,
)
from botwarden.venues.retry import CANCELS, NO_RETRY, READS, RetryPolicy, call_with_retry
from botwarden.venues.rules import enforce

T = TypeVar("T")

_STATES = {
    "new": OrderState.OPEN,
    "accepted": OrderState.OPEN,
    "pending_new": OrderState.OPEN,
    "accepted_for_bidding": OrderState.OPEN,
    "held": OrderState.OPEN,
    "stopped": OrderState.OPEN,
    "calculated": OrderState.OPEN,
    "pending_cancel": OrderState.OPEN,
    "pending_replace": OrderState.OPEN,
    "pending_review": OrderState.OPEN,
    "suspended": OrderState.OPEN,
    "partially_filled": OrderState.PARTIALLY_FILLED,
    "filled": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "replaced": OrderState.CANCELED,
    "done_for_day": OrderState.EXPIRED,
    "expired": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
}
"""Alpaca's order statuses as the port's states. Anything not final at Alpaca is open:
an order pending cancel may still fill."""

_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP,
    "trailing_stop": OrderType.STOP,
}
"""Alpaca's order types as the port's: whatever protects a position is a stop."""

_PAGE = 500  # Alpaca's largest page of orders
ASSETS_LISTED_FROM = 10
"""With more markets than this, their assets are read in one listing per asset class
(`GET /v2/assets`: every asset of the class, a few MB for US equities) rather than
one request each: a bot's start does not grow with its markets."""
QTY_STEP = Decimal("0.000000001")
"""Alpaca takes fractional quantities to nine decimal places."""
CRYPTO_STOP_BAND = Decimal("0.05")
"""How far past its stop price a crypto stop-limit's limit lies (5%)."""
CRYPTO_TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC})
ALPACA_DUPLICATE_MESSAGE = "client_order_id must be unique"
"""Alpaca's words for a reused client order id. Its code, 40010001, is the one of
every invalid request (an order type a coin cannot take, say): the words tell."""

STOCK_CALENDAR_SPAN = 7
"""How many times its bars' own width a stock's bars may stretch over in calendar
time: Alpaca's cover some 16 hours of 24 (pre-market to after-hours) and 5 days of 7,
and holidays take more (100 1h bars are about 6 trading days: 9 calendar days, 12 over
a long weekend, well inside 7 times 100 hours). Bars are asked for newest first, so a
long span costs nothing."""


NOT_ROUTED = "isn't sent to exchange yet"
"""Alpaca's refusal to replace an order it has accepted but not routed ("unable to
replace order, order isn't sent to exchange yet"): outside market hours."""


def _fractional(qty: Decimal) -> bool:
    return qty != qty.to_integral_value()


def _host_now() -> datetime:
    return datetime.now(UTC)


class AlpacaVenue:
    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        base_url: str | None = None,
        data_url: str | None = None,
        timeout: float = 10.0,
        reads: RetryPolicy = READS,
        cancels: RetryPolicy = CANCELS,
        fractional: bool = False,
        crypto_stop_band: Decimal = CRYPTO_STOP_BAND,
        symbols: Sequence[str] = (),
        host_clock: Callable[[], datetime] = _host_now,
    ) -> None:
        """`fractional`: size stock entries in fractions of a share (their stops are
        then DAY orders, gone at each close until the bot places them again).
        `symbols`: the markets the bot trades; with a coin among them, this account
        holds no take-profit beside a stop (Alpaca's crypto orders are simple only).
        `host_clock`: the bot's clock, which Alpaca's is read against."""
        self._key, self._secret = api_key, secret_key
        self._fractional = fractional
        self._crypto_stop_band = crypto_stop_band
        self._paper = paper
        self._base_url, self._data_url = base_url, data_url
        self._timeout = timeout
        self._reads, self._cancels = reads, cancels
        self._host_clock = host_clock
        self._offset = timedelta(0)
        """Alpaca's clock minus the host's, as last read (`read_clock`): bars are asked
        for up to Alpaca's now, not the host's."""
        self._trading: Any = None
        self._data: Any = None
        self._crypto_data: Any = None
        self._assets: dict[str, Any] = {}
        """Symbol -> Alpaca's asset (what it allows for the symbol), read once."""
        self._symbols = list(symbols)
        self._listed: set[bool] = set()
        """The asset classes listed already (coins: True, stocks: False)."""
        self._client_ids: dict[str, str] = {}
        """Alpaca order id -> client order id, for naming fills."""
        self._stop_legs: dict[str, str] = {}
        """Alpaca order id of an OCO's stop leg -> the engine's client order id for it
        (Alpaca shows its own), learned from its parent."""
        coins = [s for s in symbols if _is_coin(s)]
        self.capabilities = Capabilities(
            shorting=True,
            stop_orders=True,
            client_ids="unique",
            closed_order_lookup=True,
            bulk=frozenset({"positions", "open_orders", "fills"}),
            oco=not coins,
            replaces=True,
            no_pairs_because=(
                f"Alpaca's crypto orders are simple only, and this bot trades {', '.join(coins)}:"
                " trade the coins in a bot of their own"
                if coins
                else None
            ),
        )

    # -- plumbing ----------------------------------------------------------------------
    async def connect(self) -> None:
        try:
            from alpaca.data.historical.crypto import CryptoHistoricalDataClient
            from alpaca.data.historical.stock import StockHistoricalDataClient
            from alpaca.trading.client import TradingClient
        except ImportError as error:  # pragma: no cover - depends on the install
            raise AuthError(
                self.name, "the alpaca venue needs alpaca-py: pip install 'botwarden[alpaca]'"
            ) from error
        await self.close()  # a connect before this one: its HTTP sessions
        self._trading = TradingClient(
            self._key, self._secret, paper=self._paper, url_override=self._base_url
        )
        self._data = StockHistoricalDataClient(self._key, self._secret, url_override=self._data_url)
        self._crypto_data = CryptoHistoricalDataClient(
            self._key, self._secret, url_override=self._data_url
        )
        for client in (self._trading, self._data, self._crypto_data):
            client._retry = 0  # the SDK's own 429/504 retries: the policy is ours
            _bound(client._session, self._timeout)
        await self.balance()  # proves the keys now, not at the first order
        await self.read_clock()

    async def close(self) -> None:
        for client in (self._trading, self._data, self._crypto_data):
            if client is not None:
                client._session.close()

    async def _call(self, what: str, call: Callable[[], T], policy: RetryPolicy) -> T:
        async def once() -> T:
            try:
                return await asyncio.to_thread(call)
            except VenueError:
                raise
            except Exception as error:
                raise self._translate(error, what) from error

        # The HTTP timeout ends a hung request first; the time limit is the backstop.
        return await call_with_retry(
            once, policy, venue=self.name, what=what, per_try=self._timeout * 2 + 1
        )

    def _translate(self, error: Exception, what: str) -> VenueError:
        import requests
        from alpaca.common.exceptions import APIError
        from urllib3.exceptions import MaxRetryError, NewConnectionError

        if isinstance(error, requests.exceptions.ConnectTimeout):
            return Retryable(self.name, f"{what}: could not connect: {error}")
        if isinstance(error, requests.exceptions.ReadTimeout):
            return Ambiguous(self.name, f"{what}: no answer within {self._timeout:g} s")
        if isinstance(error, requests.exceptions.ConnectionError):
            reason = error.args[0] if error.args else None
            if isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError):
                return Retryable(self.name, f"{what}: could not connect")
            return Ambiguous(self.name, f"{what}: the connection broke: {error}")
        if isinstance(error, APIError):
            return self._api_error(error, what)
        return Ambiguous(self.name, f"{what}: unexpected answer: {type(error).__name__}: {error}")

    def _api_error(self, error: Any, what: str) -> VenueError:
        status = error.status_code or 0
        try:
            code, message = error.code, error.message
        except (ValueError, KeyError, TypeError):
            code, message = None, str(error)[:200]
        text = f"{what}: HTTP {status}: {message}"
        if status == 429:
            after = (
                error.response.headers.get("Retry-After") if error.response is not None else None
            )
            return Retryable(self.name, text, retry_after=float(after) if after else None)
        if status == 401 or (status == 403 and code != 40310000):
            return AuthError(self.name, text)
        if status == 404:
            return NotFound(self.name, text)
        if status in (400, 403, 409, 422):
            duplicate = code == 40010001 and ALPACA_DUPLICATE_MESSAGE in str(message).lower()
            refused = DuplicateOrder if duplicate else Rejected
            return refused(self.name, text, code=None if code is None else str(code))
        if status == 503:
            return Retryable(self.name, text)
        return Ambiguous(self.name, text)

    # -- the port ------------------------------------------------------------------------
    async def read_clock(self) -> ClockReading:
        """Alpaca's clock (`GET /v2/clock`) against the host's, read when it answered.
        Fills are asked of Alpaca by its own `after` filter, from the bot's first
        order, so no window of theirs ends at the host's clock; bars are asked for up
        to Alpaca's now."""
        answer = await self._call("clock", lambda: self._trading.get_clock(), self._reads)
        host = self._host_clock()
        venue_time = answer.timestamp.astimezone(UTC)
        self._offset = venue_time - host
        return ClockReading(venue_time, host)

    async def balance(self) -> Balance:
        account = await self._call("account", lambda: self._trading.get_account(), self._reads)
        return Balance(
            currency=account.currency or "USD",
            cash=Decimal(account.cash or 0),
            equity=Decimal(account.equity or 0),
            buying_power=Decimal(account.buying_power or 0),
        )

    async def positions(self) -> list[VenuePosition]:
        held = await self._call("positions", lambda: self._trading.get_all_positions(), self._reads)
        return [
            VenuePosition(
                symbol=_pair(p.symbol) if p.asset_class.value == "crypto" else p.symbol,
                side=Side.LONG if p.side.value == "long" else Side.SHORT,
                qty=abs(Decimal(p.qty)),
                avg_entry_price=Decimal(p.avg_entry_price),
            )
            for p in held
        ]

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        orders: dict[str, VenueOrder] = {}
        after: datetime | None = None
        while True:  # pages of 500, oldest first, each after the last one's submission
            request = GetOrdersRequest(
                status=QueryOrderStatus.OPEN,
                limit=_PAGE,
                direction="asc",
                after=after,
                symbols=[symbol] if symbol else None,
                nested=True,  # a held stop leg shows only in its parent's legs
            )
            page = await self._call(
                "open orders", lambda r=request: self._trading.get_orders(r), self._reads
            )
            new = [o for o in page if str(o.id) not in orders]
            orders.update((v.venue_order_id, v) for o in new for v in self._orders(o))
            if len(page) < _PAGE or not new:
                return list(orders.values())
            after = page[-1].submitted_at

    async def order(self, client_order_id: str, symbol: str | None = None) -> VenueOrder:
        try:
            order = self._orders(await self._by_client_id(client_order_id))[-1]
        except NotFound:  # Alpaca never saw this id: the stop leg of a pair's, maybe
            order = await self._stop_leg(client_order_id)
        if symbol is not None and order.symbol != symbol:
            raise NotFound(self.name, f"no {symbol} order with client order id {client_order_id!r}")
        return order

    async def _by_client_id(self, client_order_id: str) -> Any:
        return await self._call(
            "order lookup",
            lambda: self._trading.get_order_by_client_id(client_order_id),
            self._reads,
        )

    async def _stop_leg(self, client_order_id: str) -> VenueOrder:
        """The stop leg of the OCO whose parent is named `pair_take_profit_id` of this
        id; `NotFound` if there is none."""
        missing = NotFound(self.name, f"no order with client order id {client_order_id!r}")
        try:
            parent = await self._by_client_id(pair_take_profit_id(client_order_id))
        except NotFound:
            raise missing from None
        if _order_class(parent) != "oco":
            raise missing
        legs = self._orders(await self._nested(parent.id))[:-1]
        if not legs or legs[0].client_order_id != client_order_id:
            raise missing
        return legs[0]

    async def _nested(self, order_id: Any) -> Any:
        from alpaca.trading.requests import GetOrderByIdRequest

        nested = GetOrderByIdRequest(nested=True)
        return await self._call(
            "order by id", lambda: self._trading.get_order_by_id(order_id, nested), self._reads
        )

    async def fills(self, since: datetime | None = None, cursor: str | None = None) -> FillPage:
        params: dict[str, Any] = {"direction": "asc", "page_size": 100}
        if cursor:
            params["page_token"] = cursor
        elif since is not None:
            params["after"] = (since - timedelta(microseconds=1)).isoformat()
        activities = await self._call(
            "fills",
            lambda: self._trading.get("/account/activities/FILL", params),
            self._reads,
        )
        activities = activities or []
        await self._name_orders({a["order_id"] for a in activities})
        last = activities[-1]["id"] if activities else cursor
        return FillPage(
            fills=[self._fill(a) for a in activities],
            cursor=last,
            more=len(activities) == params["page_size"],
        )

    async def _name_orders(self, order_ids: set[str]) -> None:
        """Learn the client order ids of these orders: Alpaca's fills name only the
        order. Recent orders are listed in bulk (500 a call, newest first), so the
        calls grow with the orders, not with the fills; one by one only for the rest."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        unknown = order_ids - self._client_ids.keys()
        until: datetime | None = None
        for _ in range(10):
            if not unknown:
                return
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                limit=_PAGE,
                direction="desc",
                until=until,
                nested=True,  # an OCO's stop leg is named from its parent
            )
            page = await self._call(
                "orders", lambda r=request: self._trading.get_orders(r), self._reads
            )
            unknown -= {v.venue_order_id for listed in page for v in self._orders(listed)}
            if len(page) < _PAGE:
                break
            until = page[-1].submitted_at
        for order_id in unknown:
            found = await self._call(
                "order by id", lambda i=order_id: self._trading.get_order_by_id(i), self._reads
            )
            self._client_ids[order_id] = found.client_order_id

    def _fill(self, activity: dict[str, Any]) -> Fill:
        order_id = activity["order_id"]
        return Fill(
            trade_id=activity["id"],
            client_order_id=self._client_ids[order_id],
            venue_order_id=order_id,
            symbol=activity["symbol"],
            side=OrderSide(activity["side"]),
            qty=Decimal(str(activity["qty"])),
            price=Decimal(str(activity["price"])),
            time=datetime.fromisoformat(activity["transaction_time"].replace("Z", "+00:00")),
        )

    async def submit(self, request: OrderRequest) -> VenueOrder:
        # Checked here, not sent to be rejected; a market order's value is left to Alpaca.
        # What Alpaca takes, not how the bot sizes: an exit sells a fractional position.
        try:
            asset = await self._asset(request.symbol)
        except NotFound as error:  # as Alpaca answers an order for it: refused
            raise Rejected(self.name, f"submit: {request.symbol}: {error}") from error
        enforce(request, _rules(asset, fractional=True), None)
        sdk_request = _sdk_order(
            request, _time_in_force(request, _is_crypto(asset)), self._limit_for(request, asset)
        )
        sent = await self._call("submit", lambda: self._trading.submit_order(sdk_request), NO_RETRY)
        return self._order(sent)

    async def submit_oco(self, stop: OrderRequest, take_profit: OrderRequest) -> list[VenueOrder]:
        """The pair as one OCO: the take-profit its parent, under its own id (which
        must be `pair_take_profit_id` of the stop's), the stop its leg; the stop first."""
        if take_profit.client_order_id != pair_take_profit_id(stop.client_order_id):
            raise Rejected(
                self.name,
                f"submit: take-profit {take_profit.client_order_id!r} is not named after its"
                f" stop {stop.client_order_id!r}: Alpaca keeps only the take-profit's id",
            )
        try:
            asset = await self._asset(stop.symbol)
        except NotFound as error:
            raise Rejected(self.name, f"submit: {stop.symbol}: {error}") from error
        if _is_crypto(asset):
            raise Rejected(
                self.name,
                f"submit: {stop.symbol}: Alpaca's crypto orders are simple only: no"
                " one-cancels-other pair",
            )
        rules = _rules(asset, fractional=True)
        enforce(stop, rules, None)
        enforce(take_profit, rules, None)
        sdk_request = _sdk_oco(stop, take_profit, _time_in_force(take_profit, crypto=False))
        sent = await self._call("submit", lambda: self._trading.submit_order(sdk_request), NO_RETRY)
        try:  # whether the answer carries the legs is not documented: read them if not
            pair = self._orders(sent if sent.legs else await self._nested(sent.id))
        except VenueError as error:  # taken, but its leg unseen: resolved by client id
            unread = f"submit: OCO taken, its stop leg unread: {error}"
            raise Ambiguous(self.name, unread) from error
        if len(pair) != 2:
            raise Ambiguous(self.name, f"submit: OCO {sent.id} taken, but shows no stop leg")
        return pair

    def _limit_for(self, request: OrderRequest, asset: Any) -> Decimal | None:
        """A crypto stop's limit price: `crypto_stop_band` past the stop, rounded away
        from it (Alpaca has no plain stop for crypto)."""
        if request.type is not OrderType.STOP or not _is_crypto(asset):
            return request.limit_price
        stop = request.stop_price
        tick = _decimal(asset.price_increment) or Decimal(1).scaleb(stop.as_tuple().exponent)
        sell = request.side is OrderSide.SELL
        limit = stop * (1 - self._crypto_stop_band if sell else 1 + self._crypto_stop_band)
        units = (limit / tick).to_integral_value(rounding=ROUND_FLOOR if sell else ROUND_CEILING)
        return (units * tick).quantize(tick)

    async def replace(
        self, old: OrderRequest, new: OrderRequest, venue_order_id: str | None = None
    ) -> VenueOrder:
        """Alpaca's replace (`PATCH /v2/orders/{id}`): the new order, under the new
        client id, takes the old one's place, which Alpaca then shows `replaced`.
        Alpaca cannot replace everything, and the adapter cancels and places instead
        (a moment without the order) where it cannot:
        - a fractional quantity, before or after (Alpaca does not change the quantity
          of a fractional order, and alpaca-py's replace carries whole shares only);
        - an order not routed yet (`accepted`: outside market hours, when a stock's
          stop cannot fire anyway), which Alpaca refuses to replace ("order isn't
          sent to exchange yet").
        A refusal is checked against the new id first: Alpaca has answered a replace
        that did take place with an error (alpaca-trade-api-python#306)."""
        from alpaca.trading.requests import ReplaceOrderRequest

        try:
            asset = await self._asset(new.symbol)
        except NotFound as error:
            raise Rejected(self.name, f"replace: {new.symbol}: {error}") from error
        enforce(new, _rules(asset, fractional=True), None)
        if _fractional(old.qty) or _fractional(new.qty):
            return await self._cancel_and_submit(old, new)
        if venue_order_id is None:
            venue_order_id = (await self.order(old.client_order_id, old.symbol)).venue_order_id
        limit = self._limit_for(new, asset)
        sdk_request = ReplaceOrderRequest(
            qty=int(new.qty),
            limit_price=None if limit is None else float(limit),
            stop_price=None if new.stop_price is None else float(new.stop_price),
            client_order_id=new.client_order_id,
        )
        try:
            sent = await self._call(
                "replace",
                lambda: self._trading.replace_order_by_id(venue_order_id, sdk_request),
                NO_RETRY,
            )
        except Rejected as refused:
            try:
                return await self.order(new.client_order_id, new.symbol)  # it went through
            except NotFound:
                pass
            if NOT_ROUTED not in str(refused):
                raise
            return await self._cancel_and_submit(old, new)
        return self._order(sent)

    async def _cancel_and_submit(self, old: OrderRequest, new: OrderRequest) -> VenueOrder:
        """`old` canceled, then `new` sent: `Retryable` (nothing sent) while the cancel
        is not confirmed."""
        try:
            canceled = await self.cancel(old.client_order_id, old.symbol)
        except (Ambiguous, Retryable) as error:
            raise Retryable(self.name, f"replace: {old.client_order_id}: {error}") from error
        if not canceled.state.is_final:  # (pending_cancel: it may yet fill)
            raise Retryable(
                self.name, f"replace: {old.client_order_id} still rests after its cancel"
            )
        return await self.submit(new)

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        order = await self.order(client_order_id, symbol)
        await self._call(
            "cancel",
            lambda: self._trading.cancel_order_by_id(order.venue_order_id),
            self._cancels,
        )
        return await self.order(client_order_id, symbol)

    async def last_price(self, symbol: str) -> Decimal:
        return (await self.last_prices([symbol]))[symbol]

    async def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest

        coins = [s for s in symbols if _is_coin(s)]
        stocks = [s for s in symbols if not _is_coin(s)]
        trades: dict[str, Any] = {}
        if stocks:
            request = StockLatestTradeRequest(symbol_or_symbols=stocks)
            trades |= await self._call(
                "last prices", lambda: self._data.get_stock_latest_trade(request), self._reads
            )
        if coins:
            coin_request = CryptoLatestTradeRequest(symbol_or_symbols=coins)
            trades |= await self._call(
                "last crypto prices",
                lambda: self._crypto_data.get_crypto_latest_trade(coin_request),
                self._reads,
            )
        missing = [s for s in symbols if s not in trades]
        if missing:
            raise NotFound(self.name, f"no trades for {', '.join(map(repr, missing))}")
        return {s: Decimal(str(trades[s].price)) for s in symbols}

    async def bars(self, symbol: str, timeframe: str, limit: int) -> Sequence[Bar]:
        from alpaca.common.enums import Sort

        frame, width = _timeframe(timeframe)
        crypto = "/" in symbol
        # The newest bars first, from far enough back to hold `limit` of them: a coin
        # trades around the clock, a stock has nights, weekends and holidays without.
        # (From Alpaca's now as last read: if that is behind, the window is only wider.)
        span = width * (limit + 2) * (1 if crypto else STOCK_CALENDAR_SPAN)
        fields = {
            "symbol_or_symbols": symbol,
            "timeframe": frame,
            "start": self._host_clock() + self._offset - span,
            "limit": limit + 2,  # (the newest may be still forming)
            "sort": Sort.DESC,
        }
        completed = await self._completed_bars(symbol, fields, width)
        return completed[-limit:]

    async def _completed_bars(
        self, symbol: str, fields: dict[str, Any], width: timedelta
    ) -> list[Bar]:
        """The bars one request with `fields` asks for, oldest first, but the one still
        forming: Alpaca's clock is read with them (at once: no round trip more), to
        tell by Alpaca's now, not the host's."""
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest

        if "/" in symbol:
            request: Any = CryptoBarsRequest(**fields)
            ask = self._crypto_data.get_crypto_bars
        else:
            request = StockBarsRequest(**fields)
            ask = self._data.get_stock_bars
        clock, bar_set = await asyncio.gather(
            self.read_clock(), self._call("bars", lambda: ask(request), self._reads)
        )
        found = sorted(bar_set.data.get(symbol, []), key=lambda b: b.timestamp)
        return [_bar(b) for b in found if b.timestamp + width <= clock.venue_time]

    async def history(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> Sequence[Bar]:
        """One request: alpaca-py follows Alpaca's page tokens itself when no `limit`
        is given."""
        from alpaca.common.enums import Sort

        frame, width = _timeframe(timeframe)
        fields = {
            "symbol_or_symbols": symbol, "timeframe": frame, "start": start,
            "end": end - timedelta(microseconds=1), "sort": Sort.ASC,
        }  # fmt: skip
        completed = await self._completed_bars(symbol, fields, width)
        return [b for b in completed if start <= b.time < end]

    async def market(self, symbol: str) -> MarketRules:
        """How the bot may size and price orders in `symbol` (see the module's notes)."""
        return _rules(await self._asset(symbol), fractional=self._fractional)

    async def _asset(self, symbol: str) -> Any:
        if symbol not in self._assets and len(self._symbols) > ASSETS_LISTED_FROM:
            await self._list_assets(_is_coin(symbol))
        if symbol not in self._assets:  # (few markets, or one the listing lacks)
            self._assets[symbol] = await self._call(
                "asset", lambda: self._trading.get_asset(symbol), self._reads
            )
        return self._assets[symbol]

    async def _list_assets(self, coins: bool) -> None:
        """The assets of the bot's markets of one class (coins or stocks), from one
        listing of the class's active assets; listed once."""
        from alpaca.trading.enums import AssetClass, AssetStatus
        from alpaca.trading.requests import GetAssetsRequest

        if coins in self._listed:
            return
        wanted = {s for s in self._symbols if _is_coin(s) is coins}
        kind = AssetClass.CRYPTO if coins else AssetClass.US_EQUITY
        request = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=kind)
        listed = await self._call(
            "assets", lambda: self._trading.get_all_assets(request), self._reads
        )
        self._assets |= {a.symbol: a for a in listed if a.symbol in wanted}
        self._listed.add(coins)

    def _orders(self, order: Any) -> list[VenueOrder]:
        """An Alpaca order as the port's: itself, after its stop leg if it is an OCO's
        parent shown with its legs. Each names the other (`oco_with`); the leg goes by
        the engine's id for it (`pair_stop_id` of the parent's), or by Alpaca's for an
        OCO that is not the bot's."""
        if _order_class(order) != "oco":
            return [self._order(order)]
        parent_id = order.client_order_id
        legs = []
        for leg in order.legs or []:
            name = pair_stop_id(parent_id) or leg.client_order_id
            self._stop_legs[str(leg.id)] = name
            legs.append(self._order(leg, oco_with=parent_id))
        partner = legs[0].client_order_id if legs else pair_stop_id(parent_id)
        return [*legs, self._order(order, oco_with=partner)]

    def _order(self, order: Any, oco_with: str | None = None) -> VenueOrder:
        client_order_id = self._stop_legs.get(str(order.id), order.client_order_id)
        self._client_ids[str(order.id)] = client_order_id
        qty = Decimal(str(order.qty)) if order.qty is not None else Decimal(0)
        return VenueOrder(
            client_order_id=client_order_id,
            venue_order_id=str(order.id),
            symbol=order.symbol,
            side=OrderSide(order.side.value),
            type=_TYPES[order.order_type.value if order.order_type else order.type.value],
            qty=qty,
            state=_STATES.get(order.status.value, OrderState.OPEN),
            filled_qty=Decimal(str(order.filled_qty or 0)),
            avg_price=_decimal(order.filled_avg_price),
            limit_price=_decimal(order.limit_price),
            stop_price=_decimal(order.stop_price),
            time_in_force=TimeInForce(order.time_in_force.value)
            if order.time_in_force.value in TimeInForce._value2member_map_
            else TimeInForce.GTC,
            created_at=order.created_at,
            updated_at=order.updated_at,
            oco_with=oco_with,
        )


def _decimal(value: object) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


_QUOTES = ("USDT", "USDC", "USD", "BTC")
"""The currencies Alpaca prices coins in, longest first (`BTCUSDT` is BTC/USDT)."""


def _pair(symbol: str) -> str:
    """A coin's pair as orders name it: Alpaca lists positions as `BTCUSD`."""
    if "/" in symbol:
        return symbol
    quote = next((q for q in _QUOTES if symbol.endswith(q) and symbol != q), None)
    return f"{symbol.removesuffix(quote)}/{quote}" if quote else symbol


def _is_crypto(asset: Any) -> bool:
    return asset.asset_class.value == "crypto"


def _is_coin(symbol: str) -> bool:
    """Alpaca's crypto symbols are pairs (`BTC/USD`); its stocks have no slash."""
    return "/" in symbol


def _order_class(order: Any) -> str:
    return order.order_class.value if order.order_class else "simple"


def _rules(asset: Any, fractional: bool) -> MarketRules:
    """Alpaca's rules for `asset`; `fractional`: may quantities be fractions of a share."""
    # Fractions go to nine decimal places at Alpaca; more is rounded by Alpaca (and read
    # back through alpaca-py's floats), so a fill would not match the stored order.
    if _is_crypto(asset):  # $1 minimum (Alpaca's rule), a coin's own increments
        return MarketRules(
            symbol=asset.symbol,
            qty_step=_decimal(asset.min_trade_increment) or QTY_STEP,
            min_qty=_decimal(asset.min_order_size),
            price_tick=_decimal(asset.price_increment),
            min_notional=Decimal(1),
            time_in_force=CRYPTO_TIME_IN_FORCE,
            shortable=False,
        )
    fractional = fractional and asset.fractionable
    return MarketRules(
        symbol=asset.symbol,
        qty_step=QTY_STEP if fractional else Decimal(1),
        price_tick=Decimal("0.01"),
        min_notional=Decimal(1) if fractional else None,
        shortable=asset.shortable,
    )


def _time_in_force(request: OrderRequest, crypto: bool) -> TimeInForce:
    """What Alpaca takes for this order: a fractional stock order must be DAY, so the
    port's GTC (rest as long as the venue allows) becomes DAY for it."""
    fractional = _fractional(request.qty)
    if crypto or not fractional or request.time_in_force is TimeInForce.DAY:
        return request.time_in_force
    if request.time_in_force is TimeInForce.GTC:
        return TimeInForce.DAY
    raise OrderRefused(
        f"{request.symbol}: quantity {request.qty} is a fraction of a share, and Alpaca's"
        f" fractional orders must be DAY orders, not {request.time_in_force.value}"
    )


def _sdk_fields(request: OrderRequest, time_in_force: TimeInForce) -> dict[str, Any]:
    """What every order alpaca-py sends carries."""
    from alpaca.trading.enums import OrderSide as SdkSide
    from alpaca.trading.enums import TimeInForce as SdkTimeInForce

    return {
        "symbol": request.symbol,
        "qty": float(request.qty),
        "side": SdkSide(request.side.value),
        "time_in_force": SdkTimeInForce(time_in_force.value),
        "client_order_id": request.client_order_id,
    }


def _sdk_oco(stop: OrderRequest, take_profit: OrderRequest, time_in_force: TimeInForce) -> Any:
    """Alpaca's OCO: a limit parent (the take-profit, under its client id) whose one
    leg is the stop."""
    from alpaca.trading import requests as sdk
    from alpaca.trading.enums import OrderClass

    target = float(take_profit.limit_price)
    return sdk.LimitOrderRequest(
        **_sdk_fields(take_profit, time_in_force),
        limit_price=target,
        order_class=OrderClass.OCO,
        take_profit=sdk.TakeProfitRequest(limit_price=target),
        stop_loss=sdk.StopLossRequest(stop_price=float(stop.stop_price)),
    )


def _sdk_order(request: OrderRequest, time_in_force: TimeInForce, limit: Decimal | None) -> Any:
    from alpaca.trading import requests as sdk

    common = _sdk_fields(request, time_in_force)
    if request.type is OrderType.LIMIT:
        return sdk.LimitOrderRequest(**common, limit_price=float(request.limit_price))
    if request.type is OrderType.STOP and limit is not None:
        return sdk.StopLimitOrderRequest(
            **common, stop_price=float(request.stop_price), limit_price=float(limit)
        )
    if request.type is OrderType.STOP:
        return sdk.StopOrderRequest(**common, stop_price=float(request.stop_price))
    return sdk.MarketOrderRequest(**common)


def _bar(bar: Any) -> Bar:
    """An alpaca-py bar as the port's."""
    return Bar(
        time=bar.timestamp,
        open=Decimal(str(bar.open)),
        high=Decimal(str(bar.high)),
        low=Decimal(str(bar.low)),
        close=Decimal(str(bar.close)),
        volume=Decimal(str(bar.volume)),
    )


def _timeframe(text: str) -> tuple[Any, timedelta]:
    """alpaca-py's TimeFrame for a botwarden timeframe, and its width: the width in the
    largest of Alpaca's units that divides it (4h is 4 Hour, 1w is 1 Week)."""
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    width = timeframe_width("alpaca", text)
    units = (
        (TimeFrameUnit.Week, timedelta(weeks=1)),
        (TimeFrameUnit.Day, timedelta(days=1)),
        (TimeFrameUnit.Hour, timedelta(hours=1)),
        (TimeFrameUnit.Minute, timedelta(minutes=1)),
    )
    unit, size = next((unit, size) for unit, size in units if not width % size)
    return TimeFrame(width // size, unit), width


def _bound(session: Any, timeout: float) -> None:
    """Give every request of `session` a timeout (requests has no session-wide one)."""
    from requests.adapters import HTTPAdapter

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    for prefix in ("http://", "https://"):
        session.mount(prefix, TimeoutAdapter())
