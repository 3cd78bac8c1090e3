"""The venue port: what the engine may ask of an exchange or broker, and how it fails.

Every adapter (the paper exchange, Alpaca, ccxt) implements `Venue` and speaks only in
these types and these errors, whatever its SDK does. After a crash the venue is the
source of truth, so the port is built for recovery: find an order by the client order
id the bot chose, and list positions, open orders and fills in a few bulk calls.

The error taxonomy is what makes recovery safe (promise I5):
- `Retryable`: nothing reached the venue (a refused connection, a rate limit, a
  maintenance window); safe to try again.
- `Ambiguous`: the request may have reached the venue (a timeout after sending, a 5xx,
  a reset connection). An order submission that ends here is NOT retried: the caller
  looks the order up by its client order id.
- `Rejected`: the venue said no, definitively (invalid order, insufficient funds,
  duplicate client order id).
- `NotFound`: the venue has no such order (or symbol).
- `AuthError`: the keys are wrong or lack permission; retrying cannot help.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import Field

from botwarden.domain.markets import MarketRules, TimeInForce
from botwarden.domain.models import (
    Amount,
    Bar,
    DomainModel,
    Fill,
    OrderSide,
    Price,
    Qty,
    Side,
    UtcDatetime,
)
from botwarden.domain.orders import OrderIntent, OrderShape, OrderType
from botwarden.domain.timeframes import UnknownTimeframe, width
from botwarden.errors import BotwardenError

# -- errors --------------------------------------------------------------------------


class VenueError(BotwardenError):
    """Something a venue call ended with; the subclass says what the caller may do."""

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class Retryable(VenueError):
    """Nothing reached the venue, or it asked to come back later: safe to retry."""

    def __init__(self, venue: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(venue, message)
        self.retry_after = retry_after


class Ambiguous(VenueError):
    """The request may have reached the venue; its effect is unknown."""


class Rejected(VenueError):
    """The venue refused, definitively."""

    def __init__(self, venue: str, message: str, code: str | None = None) -> None:
        super().__init__(venue, message)
        self.code = code


class DuplicateOrder(Rejected):
    """The venue already holds an order under this client order id, and refused this
    one: proof that the first request arrived, whatever a lookup says yet."""


class NotFound(VenueError):
    """The venue has no such order, symbol or timeframe."""


def timeframe_width(venue: str, timeframe: str) -> timedelta:
    """The width of a bar of `timeframe`; `NotFound` listing the supported timeframes
    if botwarden does not support it, whatever more the venue serves."""
    try:
        return width(timeframe)
    except UnknownTimeframe as error:
        raise NotFound(venue, str(error)) from None


class AuthError(VenueError):
    """The credentials are missing, wrong, or lack a permission."""


# -- what goes in and comes out ---------------------------------------------------------


class OrderState(StrEnum):
    """An order's state as the venue reports it."""

    OPEN = "open"
    """Accepted and resting (including a stop that has not triggered)."""
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self not in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)


class OrderRequest(OrderShape):
    """An order to send, under the client order id the bot chose and stored first."""

    client_order_id: str = Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")
    """Printable, no spaces, 128 characters at most (Alpaca's limit). The ids botwarden
    makes are shorter: 36 of [A-Za-z0-9_-], which every venue accepts (Binance's limit)."""
    reduce_only: bool = False
    """Only ever shrinks a position (futures venues): what a stop-loss should be."""

    @classmethod
    def from_intent(cls, intent: OrderIntent, **extra: object) -> OrderRequest:
        return cls.model_validate(
            {
                "client_order_id": intent.client_order_id,
                "symbol": intent.symbol,
                "side": intent.side,
                "type": intent.type,
                "qty": intent.qty,
                "limit_price": intent.limit_price,
                "stop_price": intent.stop_price,
                "time_in_force": intent.time_in_force,
                **extra,
            }
        )


class VenueOrder(DomainModel):
    """An order as the venue knows it."""

    def as_request(self) -> OrderRequest:
        """The request this order answers to (what a `replace` names as the old one)."""
        return OrderRequest(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            qty=self.qty,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            reduce_only=self.reduce_only,
        )

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    qty: Qty
    state: OrderState
    filled_qty: Amount = Decimal(0)
    avg_price: Price | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    created_at: UtcDatetime
    updated_at: UtcDatetime
    reason: str | None = None
    reduce_only: bool = False
    oco_with: str | None = None
    """The client order id of the other leg of its one-cancels-other pair, if it is in
    one: a fill of either shrinks or cancels the other, a cancel of either takes both."""


PAIR_TAKE_PROFIT_SUFFIX = "t"


def pair_take_profit_id(stop_client_order_id: str) -> str:
    """The client order id of the take-profit paired with this stop: named after it,
    because a venue may let the client name only one order of a pair (an Alpaca OCO
    names its take-profit, the parent; the stop leg gets the venue's id), and its
    adapter must still tell both legs by the engine's ids, from that one name alone."""
    return stop_client_order_id + PAIR_TAKE_PROFIT_SUFFIX


def pair_stop_id(take_profit_client_order_id: str) -> str | None:
    """The stop's client order id, from its pair's take-profit's; None if it is not one."""
    stem = take_profit_client_order_id.removesuffix(PAIR_TAKE_PROFIT_SUFFIX)
    return stem if stem != take_profit_client_order_id else None


class VenuePosition(DomainModel):
    """What the venue says the account holds in one symbol."""

    symbol: str
    side: Side
    qty: Qty
    avg_entry_price: Price | None
    """None where the venue keeps no entry price (a spot account holds coins, not
    positions)."""


class Balance(DomainModel):
    currency: str
    cash: Amount
    equity: Amount
    buying_power: Amount


class FillPage(DomainModel):
    fills: list[Fill]
    cursor: str | None = None
    """Pass back to get the fills after these; None when there were none."""
    more: bool = False
    """More fills are waiting: ask again with the cursor. False means these were all
    the fills there are so far, so no call is spent on an empty page."""


@dataclass(frozen=True)
class Capabilities:
    """What a venue can do, so the engine never asks for what is not there."""

    shorting: bool
    stop_orders: bool
    """Resting stop orders live on the venue (they work while the bot is down)."""
    client_ids: Literal["unique", "unique_while_open"]
    """`unique`: a reused client order id is rejected, forever (Alpaca).
    `unique_while_open`: only while the first order is open (Binance): resending after
    a fill opens a second position."""
    closed_order_lookup: bool
    """An order can be found by client order id after it filled or was canceled."""
    bulk: frozenset[Literal["positions", "open_orders", "fills"]]
    """What one call lists for the whole account, whatever it holds."""
    reduce_only: bool = False
    """Orders flagged reduce-only never grow or flip a position (futures venues), so
    two exits resting at once (a stop being moved, a stop and a market exit) are safe:
    whichever fires second finds nothing to reduce. Without it, an exit is only sent
    once the other exits of the position are canceled."""
    oco: bool = False
    """A stop and a take-profit can rest as one pair (`submit_oco`) that never closes
    more than one of them would: where a venue has neither this nor reduce-only, a
    position can have no take-profit beside its stop."""
    no_pairs_because: str | None = None
    """Why this account holds no pairs, where it is this bot's markets that decide
    (Alpaca: a coin among them), and what to do about it: said when a take-profit is
    refused."""
    replaces: bool = False
    """A resting order can be swapped for another in one request (`replace`): the new
    one is taken only if the old one could be canceled. Where exits cannot rest side
    by side (no reduce-only), this moves a stop without a moment when none rests."""


DEFAULT_CLOCK_TOLERANCE = timedelta(seconds=5)
"""How far a venue's clock may be from the host's before the bot warns."""


@dataclass(frozen=True)
class ClockReading:
    """The venue's clock, read against the host's at the moment the venue answered."""

    venue_time: datetime
    host_time: datetime
    tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE

    @property
    def offset(self) -> timedelta:
        """The venue's time minus the host's: positive when the venue is ahead."""
        return self.venue_time - self.host_time

    @property
    def skewed(self) -> bool:
        return abs(self.offset) > self.tolerance

    def describe(self, venue: str) -> str:
        way = "ahead of" if self.offset > timedelta(0) else "behind"
        return (
            f"{venue}'s clock is {_span(abs(self.offset))} {way} this host's"
            f" (tolerance {_span(self.tolerance)})"
        )


def _span(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:g} s"


# -- the port ------------------------------------------------------------------------


class Venue(Protocol):
    """One trading account at one venue. Every method may raise a `VenueError`."""

    name: str
    capabilities: Capabilities

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def balance(self) -> Balance: ...

    async def positions(self) -> list[VenuePosition]: ...

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]: ...

    async def order(self, client_order_id: str, symbol: str) -> VenueOrder:
        """The order with this client order id, open or closed; `NotFound` if none."""
        ...

    async def fills(self, since: datetime | None = None, cursor: str | None = None) -> FillPage:
        """Executions after `cursor` (or since `since`), oldest first. `since` is a time
        of the bot's clock (when it sent its first order): the host's for a real venue,
        which finds its fills whatever its own clock says; the paper exchange's own when
        the bot runs on it."""
        ...

    async def read_clock(self) -> ClockReading:
        """The venue's clock against the host's, read now: from the venue where it tells
        its time (the paper exchange: its own clock), else the host's."""
        ...

    async def submit(self, request: OrderRequest) -> VenueOrder:
        """Send an order. Never retried inside: `Ambiguous` goes back to the caller."""
        ...

    async def submit_oco(self, stop: OrderRequest, take_profit: OrderRequest) -> list[VenueOrder]:
        """The stop and the take-profit of one position as one-cancels-other pair, both
        under the client ids given (the take-profit's is `pair_take_profit_id` of the
        stop's), on a venue whose capabilities say `oco`; the two orders as the venue
        took them, the stop first."""
        ...

    async def replace(
        self, old: OrderRequest, new: OrderRequest, venue_order_id: str | None = None
    ) -> VenueOrder:
        """Cancel the resting order `old` (as it was sent; the venue's `venue_order_id`
        for it, if known, saves a look-up) and place `new` in its place, in one request,
        on a venue whose capabilities say `replaces` (Alpaca's replace, Binance spot's
        cancel-replace); the new order as the venue took it. `Rejected` if the venue
        refused it: the old one may rest still, or be gone (Binance cancels first, then
        may refuse the new one; it may have filled): the caller looks. An order the
        venue cannot replace is canceled and the new one placed, by the adapter, which
        says where it does; `Retryable` if that cancel is not confirmed (nothing sent)."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder: ...

    async def last_price(self, symbol: str) -> Decimal: ...

    async def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        """The last price of each symbol, in one call where the venue allows it (a bot
        holding many positions must not cost one call each)."""
        ...

    async def bars(self, symbol: str, timeframe: str, limit: int) -> Sequence[Bar]: ...

    async def history(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> Sequence[Bar]:
        """Every completed bar of `timeframe` that opens in [start, end), oldest first,
        in as many pages as it takes: a backtest's bars, from the venue's own history."""
        ...

    async def market(self, symbol: str) -> MarketRules:
        """The symbol's trading rules; `NotFound` for an unknown symbol."""
        ...
