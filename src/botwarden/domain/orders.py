"""Order intents and the one table of their legal moves.

An `OrderIntent` is written to the store before its order is sent (write-ahead), and
every answer from the venue moves it through `TRANSITIONS`. A move that is not in the
table raises `IllegalTransition`: a stale or duplicated venue report can never drag a
filled order back to "accepted", and nothing leaves a terminal state.

UNKNOWN is the honest answer to an ambiguous submission (timeout, 5xx, reset): the
order may or may not exist at the venue. Only venue evidence moves it on (promise I5),
and `RESUBMIT` sends it again under the SAME client order id once the venue has said
it has no such order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from botwarden.domain.markets import TimeInForce
from botwarden.domain.models import (
    Amount,
    DomainModel,
    OrderSide,
    Price,
    Qty,
    Stop,
    TakeProfit,
    UtcDatetime,
)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Purpose(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    STOP = "stop"
    TAKE_PROFIT = "take_profit"

    @property
    def protects(self) -> bool:
        """A stop or a take-profit: resting beside a position, closing it if reached."""
        return self in (Purpose.STOP, Purpose.TAKE_PROFIT)


class IntentStatus(StrEnum):
    NEW = "new"
    """Stored, not sent. A crash here means the venue never saw it."""
    SUBMITTING = "submitting"
    """Stored as about to be sent: after a crash its fate must be looked up."""
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    """The venue may or may not have it; blocks new entries on the symbol."""

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({IntentStatus.FILLED, IntentStatus.CANCELED, IntentStatus.REJECTED})


class IntentEvent(StrEnum):
    SUBMIT = "submit"
    """About to send (or send again, with the same id) to the venue."""
    ACCEPT = "accept"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    """Canceled at the venue, or abandoned while still NEW (never sent)."""
    REJECT = "reject"
    AMBIGUOUS = "ambiguous"
    """The venue's answer was lost: the order may exist."""


_S, _E = IntentStatus, IntentEvent

TRANSITIONS: dict[tuple[IntentStatus, IntentEvent], IntentStatus] = {
    (_S.NEW, _E.SUBMIT): _S.SUBMITTING,
    (_S.NEW, _E.CANCEL): _S.CANCELED,
    (_S.SUBMITTING, _E.ACCEPT): _S.ACCEPTED,
    (_S.SUBMITTING, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.SUBMITTING, _E.FILL): _S.FILLED,
    (_S.SUBMITTING, _E.CANCEL): _S.CANCELED,
    (_S.SUBMITTING, _E.REJECT): _S.REJECTED,
    (_S.SUBMITTING, _E.AMBIGUOUS): _S.UNKNOWN,
    (_S.ACCEPTED, _E.ACCEPT): _S.ACCEPTED,
    (_S.ACCEPTED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.ACCEPTED, _E.FILL): _S.FILLED,
    (_S.ACCEPTED, _E.CANCEL): _S.CANCELED,
    # Some venues accept first and reject asynchronously (Alpaca: accepted -> rejected).
    (_S.ACCEPTED, _E.REJECT): _S.REJECTED,
    (_S.PARTIALLY_FILLED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _E.CANCEL): _S.CANCELED,
    (_S.UNKNOWN, _E.ACCEPT): _S.ACCEPTED,
    (_S.UNKNOWN, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.UNKNOWN, _E.FILL): _S.FILLED,
    (_S.UNKNOWN, _E.CANCEL): _S.CANCELED,
    (_S.UNKNOWN, _E.REJECT): _S.REJECTED,
    (_S.UNKNOWN, _E.AMBIGUOUS): _S.UNKNOWN,
    (_S.UNKNOWN, _E.SUBMIT): _S.SUBMITTING,
}


class IllegalTransition(ValueError):
    """A venue report or a caller tried a move the intent's state machine forbids."""

    def __init__(self, client_order_id: str, status: IntentStatus, event: IntentEvent) -> None:
        super().__init__(
            f"order intent {client_order_id}: cannot {event.value} from {status.value}"
        )
        self.client_order_id = client_order_id
        self.status = status
        self.event = event


def next_status(
    status: IntentStatus, event: IntentEvent, client_order_id: str = "?"
) -> IntentStatus:
    """The status after `event`, or `IllegalTransition` if the table has no such move."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(client_order_id, status, event) from None


class OrderShape(DomainModel):
    """What makes an order an order: id, symbol, side, type, quantity, its prices."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    qty: Qty
    limit_price: Price | None = None
    stop_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC

    @model_validator(mode="after")
    def _prices_match_type(self) -> Self:
        if self.type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs limit_price")
        if self.type is OrderType.STOP and self.stop_price is None:
            raise ValueError("a stop order needs stop_price")
        return self


class EntryPlan(DomainModel):
    """What an entry's fills give the position they open or add to, as its strategy
    asked: written ahead with the entry, so that a crash between a fill and the stop
    loses none of it."""

    signal_id: str | None = None
    """The signal it acts on: one entry per signal, ever (what the checker holds it to)."""
    stop: Stop | None = None
    """The position's own stop rule (None: the config's policy)."""
    take_profit: TakeProfit | None = None
    """The position's take-profit (None: the config's, if it has one)."""
    custom: dict[str, Any] = Field(default_factory=dict)
    """Merged into the position's custom state."""
    expires_at: UtcDatetime | None = None
    """A limit entry not filled by then is canceled (what filled stays)."""


class OrderIntent(OrderShape):
    """An order the bot means to have at the venue, recorded before it is sent."""

    purpose: Purpose
    position_id: str | None = None
    """The position this order opens, closes or protects."""
    status: IntentStatus = IntentStatus.NEW
    venue_order_id: str | None = None
    filled_qty: Amount = Field(default=Decimal(0), ge=0)
    avg_price: Price | None = None
    reason: str | None = None
    """Why it ended as it did (the venue's reject message, a cancel reason)."""
    sent_by: int | None = None
    """The lease epoch of the instance that last sent it (a later instance may send it
    again, under the same client order id, when the first one's fate stayed unknown)."""
    plan: EntryPlan | None = None
    """An entry's: what its fills give the position."""
    replaces: str | None = None
    """The client order id of the resting order this one is sent to take the place of,
    in one request (`Venue.replace`): a stop moved where two cannot rest at once."""
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @model_validator(mode="after")
    def _filled_within_qty(self) -> Self:
        if self.filled_qty > self.qty:
            raise ValueError(f"filled_qty {self.filled_qty} exceeds qty {self.qty}")
        return self

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    def _move(self, event: IntentEvent, now: datetime, **changes: object) -> OrderIntent:
        status = next_status(self.status, event, self.client_order_id)
        data = self.model_dump()
        data.update(changes, status=status, updated_at=now)
        return OrderIntent.model_validate(data)

    def submit(self, now: datetime, epoch: int) -> OrderIntent:
        """About to be sent by the instance holding `epoch`."""
        return self._move(IntentEvent.SUBMIT, now, sent_by=epoch)

    def accept(self, now: datetime, venue_order_id: str | None = None) -> OrderIntent:
        return self._move(
            IntentEvent.ACCEPT, now, venue_order_id=venue_order_id or self.venue_order_id
        )

    def mark_unknown(self, now: datetime, reason: str | None = None) -> OrderIntent:
        return self._move(IntentEvent.AMBIGUOUS, now, reason=reason)

    def reject(self, now: datetime, reason: str) -> OrderIntent:
        return self._move(IntentEvent.REJECT, now, reason=reason)

    def cancel(self, now: datetime, reason: str | None = None) -> OrderIntent:
        return self._move(IntentEvent.CANCEL, now, reason=reason)

    def fill(
        self, now: datetime, qty: Decimal, price: Decimal, venue_order_id: str | None = None
    ) -> OrderIntent:
        """Apply one execution of `qty` at `price`; FILLED once nothing remains."""
        if qty <= 0:
            raise ValueError(f"order intent {self.client_order_id}: fill qty must be > 0")
        filled = self.filled_qty + qty
        if filled > self.qty:
            raise ValueError(
                f"order intent {self.client_order_id}: fill of {qty} would exceed qty {self.qty}"
                f" (already filled {self.filled_qty})"
            )
        avg = (self.filled_qty * (self.avg_price or 0) + qty * price) / filled
        event = IntentEvent.FILL if filled == self.qty else IntentEvent.PARTIAL_FILL
        return self._move(
            event,
            now,
            filled_qty=filled,
            avg_price=avg,
            venue_order_id=venue_order_id or self.venue_order_id,
        )
