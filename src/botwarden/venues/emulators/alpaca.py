"""A local server that speaks Alpaca's trading API (v2), backed by the paper exchange.

An unmodified alpaca-py `TradingClient(key, secret, url_override=<this server>)` works
against it; so does any bot written for Alpaca. Given a key and secret it accepts only
those, as Alpaca does. Errors come back with Alpaca's status codes and JSON bodies
(`{"code": 40310000, "message": "insufficient buying power"}`), and the paper
exchange's injected faults come back as the HTTP failures a client of Alpaca meets:
429 with Retry-After, 503 for an outage, 500 for an answer lost after the fact.

Order ids are UUIDs, as at Alpaca; they encode the paper book's own order number.
Facts of Alpaca's API as implemented here: `GET /v2/orders:by_client_order_id`,
`GET /v2/account/activities/FILL` (fills carry the order id, not the client order id),
`GET /v2/assets` (every asset of one class, `us_equity` unless `asset_class` says
`crypto`, filtered by `status`), and auth by the `APCA-API-KEY-ID` /
`APCA-API-SECRET-KEY` headers.

Alpaca's order rules are enforced, with Alpaca's answers (`refusal`): a fractional or
notional stock order must be a DAY order and never sells short; crypto (`BTC/USD`)
takes `gtc` and `ioc` only, market, limit and stop-limit orders only, and never sells
more than the account holds. Crypto prices and bars are served where Alpaca serves
them (`/v1beta3/crypto/us/...`); the stock data routes refuse a crypto symbol. A
triggered stop-limit fills like a stop (the paper exchange models no gap past its
limit), and DAY orders do not expire (it has no trading sessions). Bars are the paper
exchange's, on UTC boundaries (weeks from Monday), as Alpaca's crypto bars are; its
stock daily bars open at New York midnight instead (04:00 or 05:00 UTC), not copied.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import Fill
from botwarden.domain.orders import OrderType
from botwarden.domain.timeframes import TIMEFRAMES, width
from botwarden.venues.base import (
    Ambiguous,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    Retryable,
    VenueError,
    VenueOrder,
    VenuePosition,
    pair_stop_id,
)
from botwarden.venues.paper.venue import PaperVenue

_STATUS = {
    OrderState.OPEN: "new",
    OrderState.PARTIALLY_FILLED: "partially_filled",
    OrderState.FILLED: "filled",
    OrderState.CANCELED: "canceled",
    OrderState.EXPIRED: "expired",
    OrderState.REJECTED: "rejected",
}

# Alpaca's error codes for the refusals the paper exchange can make.
_REJECTIONS = {
    "duplicate_client_id": (422, 40010001),
    "insufficient_funds": (403, 40310000),
    "insufficient_balance": (403, 40310000),
    "stop_wrong_side": (422, 42210000),
    "not_open": (422, 42210000),
}


ACCOUNT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "botwarden/account"))


def activity_id(number: int, trade_id: str) -> str:
    """A fill's activity id, shaped like Alpaca's (`<sortable>::<id>`)."""
    return f"{number:012d}::{trade_id}"


def book_trade_id(activity: str) -> str:
    """The paper book's trade id behind an activity id this emulator gave."""
    return activity.partition("::")[2]


def order_uuid(venue_order_id: str) -> str:
    """`P00000042` -> `00000000-0000-4000-8000-000000000042`: a valid UUID, reversible."""
    return f"00000000-0000-4000-8000-{int(venue_order_id.removeprefix('P')):012d}"


def venue_order_id(order_id: str) -> str:
    """The inverse of `order_uuid`; any other id is an order that does not exist."""
    try:
        candidate = f"P{int(order_id.rsplit('-', 1)[-1]):08d}"
    except ValueError:
        candidate = None
    if candidate is None or order_uuid(candidate) != order_id:
        raise NotFound("alpaca", f"order {order_id!r} not found")
    return candidate


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"botwarden/asset/{symbol}"))


def _asset_class(symbol: str) -> str:
    return "crypto" if "/" in symbol else "us_equity"


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def is_stop_leg(order: VenueOrder) -> bool:
    """Is `order` the stop leg of an OCO? (Its parent is the take-profit limit.)"""
    return order.oco_with is not None and order.type is OrderType.STOP


def shown_client_order_id(order: VenueOrder) -> str:
    """The client order id Alpaca shows: an OCO's stop leg was named by Alpaca, so a
    client sees a UUID of the emulator's, never the name the book keeps it under."""
    if is_stop_leg(order):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"botwarden/leg/{order.venue_order_id}"))
    return order.client_order_id


def order_json(
    order: VenueOrder,
    notional: Decimal | None = None,
    legs: list[dict[str, Any]] | None = None,
    replaced_by: str | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
    """`notional`: the dollars the order was sent for; Alpaca then shows no quantity.
    `legs`: an OCO parent's legs, shown when the order is asked for `nested`.
    `replaced_by`, `replaces`: the venue order ids of a replace, either way."""
    done_at = _time(order.updated_at)
    kind = _type_name(order)
    status = _STATUS[order.state]
    if is_stop_leg(order) and order.state is OrderState.OPEN:
        status = "held"  # an OCO's stop leg is held until it triggers
    if replaced_by is not None:
        status = "replaced"
    return {
        "id": order_uuid(order.venue_order_id),
        "client_order_id": shown_client_order_id(order),
        "created_at": _time(order.created_at),
        "updated_at": done_at,
        "submitted_at": _time(order.created_at),
        "filled_at": done_at if order.state is OrderState.FILLED else None,
        "expired_at": done_at if order.state is OrderState.EXPIRED else None,
        "canceled_at": done_at if status == "canceled" else None,
        "failed_at": done_at if order.state is OrderState.REJECTED else None,
        "replaced_at": done_at if replaced_by is not None else None,
        "replaced_by": order_uuid(replaced_by) if replaced_by else None,
        "replaces": order_uuid(replaces) if replaces else None,
        "asset_id": _asset_id(order.symbol),
        "symbol": order.symbol,
        "asset_class": _asset_class(order.symbol),
        "notional": _number(notional),
        "qty": None if notional is not None else _number(order.qty),
        "filled_qty": _number(order.filled_qty),
        "filled_avg_price": _number(order.avg_price),
        "order_class": "simple" if order.oco_with is None else "oco",
        "order_type": kind,
        "type": kind,
        "side": order.side.value,
        "time_in_force": order.time_in_force.value,
        "limit_price": _number(order.limit_price),
        "stop_price": _number(order.stop_price),
        "status": status,
        "extended_hours": False,
        "legs": legs,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
    }


def _type_name(order: VenueOrder) -> str:
    """Alpaca's name of the order's type: the paper book keeps a stop-limit as a stop
    that carries a limit price."""
    if order.type is OrderType.STOP and order.limit_price is not None:
        return "stop_limit"
    return order.type.value


def position_json(position: VenuePosition, price: Decimal) -> dict[str, Any]:
    signed = position.qty if position.side.value == "long" else -position.qty
    return {
        "asset_id": _asset_id(position.symbol),
        "symbol": position.symbol.replace("/", ""),  # Alpaca lists a coin as BTCUSD
        "exchange": "CRYPTO" if "/" in position.symbol else "NASDAQ",
        "asset_class": _asset_class(position.symbol),
        "avg_entry_price": _number(position.avg_entry_price),
        "qty": _number(signed),
        "qty_available": _number(signed),
        "side": position.side.value,
        "market_value": _number(signed * price),
        "cost_basis": _number(signed * position.avg_entry_price),
        "unrealized_pl": _number(signed * (price - position.avg_entry_price)),
        "current_price": _number(price),
    }


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


_CRYPTO_TYPES = frozenset({"market", "limit", "stop_limit"})
_CRYPTO_TIME_IN_FORCE = frozenset({"gtc", "ioc"})
_FRACTION = Decimal("0.000000001")  # Alpaca keeps nine decimal places


def refusal(
    symbol: str, kind: str, time_in_force: str, side: str, qty: Decimal, notional: bool,
    held: Decimal, available: Decimal,
) -> Response | None:  # fmt: skip
    """Alpaca's answer to an order it does not take, word for word, or None.
    `held`: the long position; `available`: what of it no open order claims."""
    if "/" in symbol:
        if kind not in _CRYPTO_TYPES:
            return _error(422, 40010001, "invalid order type for crypto order")
        if time_in_force not in _CRYPTO_TIME_IN_FORCE:
            return _error(422, 42210000, "invalid crypto time_in_force")
        if side == "sell" and qty > available:
            coin = symbol.split("/")[0]
            return _error(
                403,
                40310000,
                f"insufficient balance for {coin} (requested: {_number(qty)},"
                f" available: {_number(max(available, Decimal(0)))})",
            )
        return None
    fractional = notional or qty != qty.to_integral_value()
    if fractional and time_in_force != "day":
        return _error(422, 42210000, "fractional orders must be DAY orders")
    if fractional and side == "sell" and qty > held:
        return _error(422, 42210000, "fractional orders cannot be sold short")
    if side == "sell" and available < held and qty > available:  # shares held for an order
        return _error(
            403,
            40310000,
            f"insufficient qty available for order (requested: {_number(qty)},"
            f" available: {_number(max(available, Decimal(0)))})",
        )
    return None


_OCO_TIME_IN_FORCE = frozenset({"day", "gtc"})
_CENT = Decimal("0.01")


def oco_refusal(
    symbol: str, kind: str, time_in_force: str, side: str, qty: Decimal, notional: bool,
    take_profit: Decimal | None, stop: Decimal | None,
) -> Response | None:  # fmt: skip
    """Alpaca's answer to an `order_class=oco` it does not take, or None. Its parent is
    the take-profit (a limit); its one leg the stop. Only "fractional orders must be
    simple orders" is Alpaca's wording as reported; the other texts are this
    emulator's, with Alpaca's code and status."""
    if "/" in symbol:
        return _error(422, 42210000, "crypto orders support order_class simple only")
    if notional or qty != qty.to_integral_value():
        return _error(422, 42210000, "fractional orders must be simple orders")
    if kind != "limit":
        return _error(422, 42210000, "oco orders must be limit orders (the take-profit)")
    if time_in_force not in _OCO_TIME_IN_FORCE:
        return _error(422, 42210000, "oco orders must be day or gtc orders")
    if take_profit is None or stop is None:
        return _error(
            422, 42210000, "oco orders require take_profit.limit_price and stop_loss.stop_price"
        )
    # For an OCO the stop's threshold is a cent past the take-profit's limit price.
    if side == "sell" and stop > take_profit - _CENT:
        return _error(422, 42210000, "stop_loss.stop_price must be <= base_price - 0.01")
    if side == "buy" and stop < take_profit + _CENT:
        return _error(422, 42210000, "stop_loss.stop_price must be >= base_price + 0.01")
    return None


def create_app(venue: PaperVenue, key: str | None = None, secret: str | None = None) -> FastAPI:
    app = FastAPI(title="botwarden Alpaca emulator", docs_url=None, redoc_url=None)
    app.state.calls = Counter()
    """`METHOD /path` -> requests served: what a benchmark or a test counts."""
    app.state.routed = True
    """False: the market is closed, and Alpaca holds open orders `accepted`, not sent
    to an exchange yet (it refuses to replace them). The paper exchange has no
    sessions: a test sets it."""

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        app.state.calls[f"{request.method} {request.url.path}"] += 1
        if key is not None and (
            request.headers.get("APCA-API-KEY-ID") != key
            or request.headers.get("APCA-API-SECRET-KEY") != secret
        ):
            return _error(401, 40110000, "request is not authorized")
        return await call_next(request)

    @app.exception_handler(VenueError)
    async def venue_error(request: Request, error: VenueError) -> Response:
        message = str(error).removeprefix(f"{error.venue}: ")
        if isinstance(error, Rejected):
            status, code = _REJECTIONS.get(error.code or "", (422, 42210000))
            if error.code == "duplicate_client_id":
                message = "client_order_id must be unique"  # (Alpaca's words)
            return _error(status, code, message)
        if isinstance(error, NotFound):
            return _error(404, 40410000, message)
        if isinstance(error, Retryable):
            if error.retry_after is not None or "429" in message:
                headers = {"Retry-After": f"{error.retry_after or 1:g}"}
                return _error(429, 42910000, "rate limit exceeded", headers)
            return _error(503, 50300000, message)
        if isinstance(error, Ambiguous):
            return _error(500, 50010000, "internal server error")
        return _error(500, 50010000, message)

    @app.get("/v2/account")
    async def account() -> dict[str, Any]:
        balance = await venue.balance()
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA0BOTWARDEN",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": balance.currency,
            "cash": _number(balance.cash),
            "buying_power": _number(balance.buying_power),
            "non_marginable_buying_power": _number(balance.buying_power),
            "portfolio_value": _number(balance.equity),
            "equity": _number(balance.equity),
            "last_equity": _number(balance.equity),
            "multiplier": "1",
            "shorting_enabled": venue.capabilities.shorting,
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
        }

    @app.get("/v2/positions")
    async def positions() -> list[dict[str, Any]]:
        held = await venue.positions()
        now = venue.clock()  # one moment prices every position
        return [position_json(p, venue.book.feed.price(p.symbol, now)) for p in held]

    @app.get("/v2/orders")
    async def orders(
        status: str = "open",
        symbols: str | None = None,
        limit: int = 50,
        after: str | None = None,
        until: str | None = None,
        direction: str = "desc",
        nested: bool = False,
    ) -> list[dict[str, Any]]:
        """As Alpaca: by submission time, newest first unless `direction=asc`, at most
        `limit` (500), strictly after `after` and before `until`. `nested`: an OCO's stop
        leg is shown in its parent's `legs`, not beside it. Without it, a held leg is
        missing from the open orders (as field reports say of Alpaca's), and listed on
        its own, under its random client order id, once it is closed."""
        if status == "open":
            found = [o for o in await venue.open_orders() if not is_stop_leg(o)]
        else:
            found = await venue.all_orders()
            if status == "closed":
                found = [o for o in found if o.state.is_final]
        wanted = set(symbols.split(",")) if symbols else None
        start, end = _moment(after), _moment(until)
        found = [
            o
            for o in found
            if (wanted is None or o.symbol in wanted)
            and (start is None or o.created_at > start)
            and (end is None or o.created_at < end)
            and not (nested and is_stop_leg(o))
        ]
        found.sort(key=lambda o: (o.created_at, o.venue_order_id), reverse=direction != "asc")
        return [shown(o, nested) for o in found[: min(limit, 500)]]

    @app.get("/v2/orders:by_client_order_id")
    async def by_client_order_id(client_order_id: str) -> dict[str, Any]:
        """No `nested` here (none is documented): an OCO's parent comes without legs.
        A stop leg is found by the id Alpaca shows for it, not by the book's."""
        try:
            order = await venue.order(client_order_id, None)
        except NotFound:
            order = None
        if order is None or is_stop_leg(order):
            legs = (o for o in venue.book.all_orders() if is_stop_leg(o))
            order = next((o for o in legs if shown_client_order_id(o) == client_order_id), None)
        if order is None:
            raise NotFound("alpaca", f"order {client_order_id!r} not found")
        return shown(order)

    @app.get("/v2/orders/{order_id}")
    async def order_by_id(order_id: str, nested: bool = False) -> dict[str, Any]:
        return shown(await venue.order_by_venue_id(venue_order_id(order_id)), nested)

    notionals: dict[str, Decimal] = {}
    """venue order id -> the dollars it was sent for (kept while the emulator runs)."""

    replaced_by: dict[str, str] = {}
    """venue order id of a replaced order -> its replacement's (kept while it runs)."""

    def shown(order: VenueOrder, nested: bool = False) -> dict[str, Any]:
        legs = None
        if nested and order.oco_with is not None and not is_stop_leg(order):
            legs = [shown(venue.book.order(order.oco_with))]
        replaces = next((o for o, n in replaced_by.items() if n == order.venue_order_id), None)
        answer = order_json(
            order,
            notionals.get(order.venue_order_id),
            legs,
            replaced_by.get(order.venue_order_id),
            replaces,
        )
        if answer["status"] == "new" and not app.state.routed:
            answer["status"] = "accepted"
        return answer

    def holding(symbol: str) -> tuple[Decimal, Decimal]:
        """The long position in `symbol`, and what of it no open sell order claims.
        Read from the book: the fault plan is for the calls a client makes."""
        held = sum(
            (
                p.qty
                for p in venue.book.positions()
                if p.symbol == symbol and p.side.value == "long"
            ),
            Decimal(0),
        )
        on_sale = sum(
            (
                o.qty - o.filled_qty
                for o in venue.book.open_orders(symbol)
                if o.side.value == "sell" and not is_stop_leg(o)  # a pair claims once
            ),
            Decimal(0),
        )
        return held, held - on_sale

    @app.post("/v2/orders")
    async def submit(request: Request) -> Response:
        body = await request.json()
        try:
            symbol, side = body["symbol"], body["side"]
            kind = body.get("type") or body.get("order_type", "market")
            time_in_force = body.get("time_in_force", "day")
            limit_price = _decimal(body.get("limit_price"))
            stop_price = _decimal(body.get("stop_price"))
            notional = _decimal(body.get("notional"))
            if symbol not in venue.book.feed.instruments:
                return _error(422, 42210000, f'asset "{symbol}" not found')
            if notional is not None:  # that many dollars, in shares at the order's price
                price = limit_price or stop_price or venue.book.feed.price(symbol, venue.clock())
                qty = (notional / price).quantize(_FRACTION, rounding=ROUND_DOWN)
            else:
                qty = Decimal(str(body["qty"]))
            oco = body.get("order_class") == "oco"
            if oco:
                take_profit = (
                    _decimal((body.get("take_profit") or {}).get("limit_price")) or limit_price
                )
                stop_loss = body.get("stop_loss") or {}
                leg_stop = _decimal(stop_loss.get("stop_price"))
                leg_limit = _decimal(stop_loss.get("limit_price"))
        except (KeyError, ValueError, InvalidOperation, AttributeError) as error:
            return _error(422, 40010000, f"invalid order: {error}")
        refused = refusal(
            symbol, kind, time_in_force, side, qty, notional is not None, *holding(symbol)
        )
        if oco:
            as_oco = oco_refusal(
                symbol, kind, time_in_force, side, qty, notional is not None,
                take_profit, leg_stop,
            )  # fmt: skip
            refused = as_oco or refused
            return refused or await submit_oco(body, qty, take_profit, leg_stop, leg_limit)
        if refused is not None:
            return refused
        try:
            order = OrderRequest(
                client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
                symbol=symbol,
                side=side,
                type="stop" if kind == "stop_limit" else kind,
                qty=qty,
                limit_price=limit_price,
                stop_price=stop_price,
                time_in_force=TimeInForce(time_in_force),
            )
        except ValueError as error:
            return _error(422, 40010000, f"invalid order: {error}")
        accepted = await venue.submit(order)
        if notional is not None:
            notionals[accepted.venue_order_id] = notional
        return JSONResponse(shown(accepted))

    async def submit_oco(
        body: dict[str, Any],
        qty: Decimal,
        take_profit: Decimal,
        stop: Decimal,
        stop_limit: Decimal | None,
    ) -> Response:
        """The parent (the take-profit) under the client's id, its stop leg under one
        Alpaca makes up (no leg can be named; `shown_client_order_id`). The book keeps
        the leg as botwarden's engine names a pair's stop (`pair_stop_id` of the
        parent's id), so the exchange's own records, which the promise checks read,
        know whose stop it is; no client ever sees that name. Answered without
        `legs`: whether Alpaca's answer carries them is not known, so a client must
        not count on it."""
        common = {
            "symbol": body["symbol"],
            "side": body["side"],
            "qty": qty,
            "time_in_force": TimeInForce(body.get("time_in_force", "day")),
        }
        try:
            parent = OrderRequest(
                client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
                type="limit",
                limit_price=take_profit,
                **common,
            )
            leg = OrderRequest(
                client_order_id=book_leg_id(parent.client_order_id),
                type="stop",
                stop_price=stop,
                limit_price=stop_limit,
                **common,
            )
        except ValueError as error:
            return _error(422, 40010000, f"invalid order: {error}")
        _, accepted = await venue.submit_oco(leg, parent)
        return JSONResponse(shown(accepted))

    def book_leg_id(parent_id: str) -> str:
        named = pair_stop_id(parent_id)
        try:
            taken = named is None or venue.book.order(named) is not None
        except NotFound:
            taken = False
        return str(uuid.uuid4()) if taken else named

    def asset_json(symbol: str) -> dict[str, Any]:
        instrument = venue.book.feed.instruments[symbol]
        crypto = "/" in symbol
        increments = (
            {
                "min_order_size": _number(instrument.qty_step),
                "min_trade_increment": _number(instrument.qty_step),
                "price_increment": _number(instrument.tick),
            }
            if crypto
            else {}
        )
        return {
            "id": _asset_id(symbol),
            "class": _asset_class(symbol),
            "exchange": "CRYPTO" if crypto else "NASDAQ",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": not crypto,
            "shortable": not crypto and venue.capabilities.shorting,
            "easy_to_borrow": not crypto,
            "fractionable": True,
            **increments,
        }

    @app.get("/v2/assets")
    async def assets(status: str | None = None, asset_class: str = "us_equity") -> list:
        """As Alpaca: every asset of a class (US equities unless told), in one answer."""
        listed = [s for s in venue.book.feed.instruments if _asset_class(s) == asset_class]
        return [asset_json(s) for s in listed if status in (None, "active")]

    @app.get("/v2/assets/{symbol:path}")
    async def asset(symbol: str) -> Response:
        if symbol not in venue.book.feed.instruments:
            return _error(404, 40410000, "asset not found")
        return JSONResponse(asset_json(symbol))

    @app.delete("/v2/orders/{order_id}", status_code=204)
    async def cancel(order_id: str) -> Response:
        order = await venue.order_by_venue_id(venue_order_id(order_id))
        await venue.cancel(order.client_order_id, order.symbol)
        return Response(status_code=204)

    @app.patch("/v2/orders/{order_id}")
    async def replace(order_id: str, request: Request) -> Response:
        """Alpaca's replace: a new order, under a new id, takes the old one's place,
        which shows `replaced` from then on; what the body does not name is the old
        one's. The old one must be open and routed (Alpaca: "order isn't sent to
        exchange yet" outside market hours), and a fractional order's quantity stays
        (this text is the emulator's); the pair an OCO's order is in stays as it is
        (this emulator replaces no OCO's order: the engine never asks it to)."""
        old = await venue.order_by_venue_id(venue_order_id(order_id))
        body = await request.json()
        if old.state.is_final:
            return _error(422, 42210000, "order is not open")
        if old.oco_with is not None:
            return _error(422, 42210000, "this emulator replaces no order of an OCO")
        if not app.state.routed:
            return _error(
                422, 42210000, "unable to replace order, order isn't sent to exchange yet"
            )
        try:
            qty = Decimal(str(body["qty"])) if body.get("qty") is not None else old.qty
            changed = OrderRequest(
                client_order_id=body.get("client_order_id") or str(uuid.uuid4()),
                symbol=old.symbol,
                side=old.side,
                type=old.type,
                qty=qty,
                limit_price=_decimal(body.get("limit_price")) or old.limit_price,
                stop_price=_decimal(body.get("stop_price")) or old.stop_price,
                time_in_force=TimeInForce(body.get("time_in_force") or old.time_in_force),
            )
        except (ValueError, InvalidOperation) as error:
            return _error(422, 40010000, f"invalid order: {error}")
        fractional = {q for q in (old.qty, qty) if q != q.to_integral_value()}
        if fractional and qty != old.qty:
            return _error(422, 42210000, "qty of a fractional order cannot be changed")
        held, available = holding(old.symbol)
        freed = old.qty - old.filled_qty if old.side.value == "sell" else Decimal(0)
        refused = refusal(
            old.symbol, _type_name(changed), changed.time_in_force.value, old.side.value,
            qty, False, held, available + freed,
        )  # fmt: skip
        if refused is not None:
            return refused
        new = await venue.replace(old.as_request(), changed)
        replaced_by[old.venue_order_id] = new.venue_order_id
        return JSONResponse(shown(new))

    activities = _FillActivities()

    @app.get("/v2/account/activities/FILL")
    async def fills(
        page_token: str | None = None,
        page_size: int = 100,
        direction: str = "desc",
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        # An activity id starts with the paper book's fill number, which is also the
        # number in the fill's trade id; the page token is the last id seen.
        rows = await activities.read(venue)
        if after:
            since = datetime.fromisoformat(after.replace("Z", "+00:00"))
            rows = [r for r in rows if r[1].time > since]
        if page_token:
            seen = int(page_token.split("::")[0])
            rows = [r for r in rows if (r[0] > seen if direction == "asc" else r[0] < seen)]
        if direction != "asc":
            rows = rows[::-1]
        page = []
        for number, fill, done in rows[:page_size]:
            order = venue.book.order_by_venue_id(fill.venue_order_id)
            left = order.qty - done
            page.append(
                {
                    "id": activity_id(number, fill.trade_id),
                    "account_id": ACCOUNT_ID,
                    "activity_type": "FILL",
                    "transaction_time": _time(fill.time),
                    "type": "fill" if left == 0 else "partial_fill",
                    "price": _number(fill.price),
                    "qty": _number(fill.qty),
                    "side": fill.side.value,
                    "symbol": fill.symbol,
                    "leaves_qty": _number(left),
                    "order_id": order_uuid(order.venue_order_id),
                    "cum_qty": _number(done),
                    "order_status": _STATUS[order.state],
                }
            )
        return page

    # -- market data (Alpaca serves it from another host; point the data client here) --
    async def latest_trades(symbols: list[str]) -> dict[str, Any]:
        trades = {}
        for symbol in symbols:
            price = await venue.last_price(symbol)
            trades[symbol] = {
                "t": _time(venue.clock()), "x": "V", "p": float(price), "s": 100,
                "c": ["@"], "i": 1, "z": "C",
            }  # fmt: skip
        return {"trades": trades}

    async def bars(
        symbols: list[str], timeframe: str, window: BarWindow
    ) -> Response | dict[str, Any]:
        """The completed bars from `start` (the newest `limit`, without one), oldest
        first, or newest first for `sort=desc`, at most `limit`. (The paper exchange
        has no sessions: a stock trades around the clock here.)"""
        frame = _timeframe(timeframe)
        if frame is None:
            return _error(422, 42210000, f"invalid timeframe {timeframe!r}")
        now = venue.clock()
        begin, finish = _moment(window.start), _moment(window.end) or now
        count = window.limit
        if begin is not None:  # every completed bar since `begin`
            count = min(int((now - begin) / width(frame)) + 1, MAX_BARS)
        found = {}
        for symbol in symbols:
            every = [
                b
                for b in await venue.bars(symbol, frame, count)
                if (begin is None or b.time >= begin) and b.time <= finish
            ]
            chosen = every[::-1] if window.sort == "desc" else every
            found[symbol] = [
                {
                    "t": _time(b.time),
                    "o": float(b.open),
                    "h": float(b.high),
                    "l": float(b.low),
                    "c": float(b.close),
                    "v": float(b.volume),
                    "n": 0,
                    "vw": float(b.close),
                }
                for b in chosen[: window.limit]
            ]
        return {"bars": found, "next_page_token": None}

    def stocks(symbols: str) -> list[str] | Response:
        listed = symbols.split(",")
        wrong = [s for s in listed if "/" in s]
        if wrong:  # crypto is served by the crypto data API only
            return JSONResponse({"message": f"invalid symbol: {wrong[0]}"}, status_code=400)
        return listed

    def coins(symbols: str) -> list[str] | Response:
        listed = symbols.split(",")
        wrong = [s for s in listed if not _PAIR.match(s)]
        if wrong:  # Alpaca's own words
            message = f"invalid symbol: {wrong[0]} does not match {_PAIR.pattern}"
            return JSONResponse({"message": message}, status_code=400)
        return [s for s in listed if s in venue.book.feed.instruments]  # others: no data

    @app.get("/v2/stocks/trades/latest")
    async def stock_latest_trades(symbols: str) -> Any:
        listed = stocks(symbols)
        return listed if isinstance(listed, Response) else await latest_trades(listed)

    @app.get("/v2/stocks/bars")
    async def stock_bars(symbols: str, timeframe: str, window: Window) -> Any:
        listed = stocks(symbols)
        return listed if isinstance(listed, Response) else await bars(listed, timeframe, window)

    @app.get("/v1beta3/crypto/us/latest/trades")
    async def crypto_latest_trades(symbols: str) -> Any:
        listed = coins(symbols)
        return listed if isinstance(listed, Response) else await latest_trades(listed)

    @app.get("/v1beta3/crypto/us/bars")
    async def crypto_bars(symbols: str, timeframe: str, window: Window) -> Any:
        listed = coins(symbols)
        return listed if isinstance(listed, Response) else await bars(listed, timeframe, window)

    @app.get("/v2/clock")
    async def clock() -> dict[str, Any]:
        """The exchange's time; its market never closes (the paper exchange has no
        sessions)."""
        now = venue.clock()
        return {
            "timestamp": _time(now),
            "is_open": True,
            "next_open": _time(now + timedelta(days=1)),
            "next_close": _time(now + timedelta(days=1)),
        }

    return app


_PAIR = re.compile(r"^[A-Z]+/[A-Z]+$")
"""What Alpaca's crypto data API takes for a symbol."""

_FRAME = re.compile(r"^([1-9][0-9]*)(Min|T|Hour|H|Day|D|Week|W)$")
"""Alpaca's name for a timeframe: an amount and a unit, spelt as alpaca-py sends it
(`TimeFrame.value`: `4Hour`, `1Week`) or short (`4H`, `1W`)."""
_UNITS = {
    "Min": timedelta(minutes=1),
    "T": timedelta(minutes=1),
    "Hour": timedelta(hours=1),
    "H": timedelta(hours=1),
    "Day": timedelta(days=1),
    "D": timedelta(days=1),
    "Week": timedelta(weeks=1),
    "W": timedelta(weeks=1),
}


MAX_BARS = 10_000
"""Alpaca's largest page of bars."""


@dataclass
class _FillActivities:
    """The book's fills as activities need them, oldest first: each fill's number, the
    fill, and how much of its order had filled by then. Each fill is decoded once
    (fills never change, only new ones come): decoding the whole book at every request
    made a bot's every pass cost the emulator more with each fill it had ever had."""

    rows: list[tuple[int, Fill, Decimal]] = field(default_factory=list)
    filled: dict[str, Decimal] = field(default_factory=dict)

    async def read(self, venue: PaperVenue) -> list[tuple[int, Fill, Decimal]]:
        """Every row so far: the exchange brought up to now (and any fault drawn for
        `fills`), then the new fills read straight from the book, with no await between
        (two requests at once must not both add them)."""
        seen = self.rows[-1][0] if self.rows else 0
        await venue.fills(cursor=str(seen))
        for number, fill in venue.book.fills(after_seq=self.rows[-1][0] if self.rows else 0):
            done = self.filled[fill.venue_order_id] = (
                self.filled.get(fill.venue_order_id, Decimal(0)) + fill.qty
            )
            self.rows.append((number, fill, done))
        return self.rows


@dataclass(frozen=True)
class BarWindow:
    """What a bars request asks for, beside its symbols and timeframe."""

    limit: int = 1000
    start: str | None = None
    end: str | None = None
    sort: Literal["asc", "desc"] = "asc"


Window = Annotated[BarWindow, Depends()]
"""A bars route's query, as FastAPI reads it."""


def _timeframe(name: str) -> str | None:
    """The paper exchange's timeframe that Alpaca's `name` means, None for one it does
    not serve (a month, 2Hour)."""
    match = _FRAME.match(name)
    if match is None:
        return None
    width = int(match[1]) * _UNITS[match[2]]
    return next((frame for frame, size in TIMEFRAMES.items() if size == width), None)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))
