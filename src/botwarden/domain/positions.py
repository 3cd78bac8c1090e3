"""What a fill does to a position, and where a position's stop belongs. Pure rules.

A bot holds at most one position per symbol. A fill in the position's direction adds
to it (the entry price becomes the average); a fill against it closes that much, and
the closed part is a `Trade` with its realised profit, net of its fees (the closing
fill's, and its share of the fees paid to open it). A fill larger than the position
closes it and opens the rest the other way, as a venue nets it, its fee shared
between the two by quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from botwarden.domain.models import (
    Amount,
    DomainModel,
    Fill,
    OrderSide,
    Position,
    Price,
    Qty,
    Side,
    UtcDatetime,
)


class Trade(DomainModel):
    """A closed (part of a) position: what it made or lost."""

    position_id: str
    symbol: str
    side: Side
    qty: Qty
    entry_price: Price
    exit_price: Price
    pnl: Amount
    """(exit - entry) x qty for a long, the reverse for a short, less its `fees`."""
    fees: Amount = Decimal(0)
    """What it paid: the closing fill's fee (its part of it) and its share of the
    entry's fees."""
    entry_time: UtcDatetime
    exit_time: UtcDatetime
    closed_by: str
    """The client order id whose fill closed it (a stop, an exit)."""
    exit_fill: str = ""
    """The venue's trade id of that fill: one fill closes one trade at most."""
    position_pnl: Amount | None = None
    """When it closed what was left of the position: what the whole position made, its
    earlier parts with it (what the losing streak and the cooldown count); None for a
    part."""


@dataclass(frozen=True)
class FillOutcome:
    position: Position | None
    """The position after the fill; None when it left the bot flat."""
    trade: Trade | None
    """The part the fill closed, if it closed any."""


def _signed(side: Side, size: Decimal) -> Decimal:
    return size if side is Side.LONG else -size


def apply_fill(
    position: Position | None, fill: Fill, *, bot_id: str, new_position_id: str
) -> FillOutcome:
    """`position` (the bot's in `fill.symbol`, or None) after `fill`."""
    delta = fill.qty if fill.side is OrderSide.BUY else -fill.qty
    if position is None or position.size == 0:
        return FillOutcome(_opened(fill, delta, bot_id, new_position_id), None)
    held = _signed(position.side, position.size)
    if (held > 0) == (delta > 0):  # adds to it
        size = abs(held + delta)
        entry = (position.entry_price * position.size + fill.price * fill.qty) / size
        fees = position.entry_fees + fill.fee
        return FillOutcome(position.evolve(size=size, entry_price=entry, entry_fees=fees), None)
    closed = min(abs(delta), position.size)
    direction = 1 if position.side is Side.LONG else -1
    exit_fee = fill.fee if closed == fill.qty else fill.fee * closed / fill.qty
    entry_share = position.entry_fees * closed / position.size
    fees = exit_fee + entry_share
    pnl = (fill.price - position.entry_price) * closed * direction - fees
    trade = Trade(
        position_id=position.id,
        symbol=position.symbol,
        side=position.side,
        qty=closed,
        entry_price=position.entry_price,
        exit_price=fill.price,
        pnl=pnl,
        fees=fees,
        entry_time=position.entry_time,
        exit_time=fill.time,
        closed_by=fill.client_order_id,
        exit_fill=fill.trade_id,
    )
    rest = held + delta
    if rest != 0 and (rest > 0) == (held > 0):  # reduced
        reduced = position.evolve(
            size=abs(rest),
            realized_pnl=position.realized_pnl + pnl,
            entry_fees=position.entry_fees - entry_share,
        )
        return FillOutcome(reduced, trade)
    trade = trade.evolve(position_pnl=position.realized_pnl + pnl)  # closed, all of it
    if rest == 0:
        return FillOutcome(None, trade)
    # Closed, and the rest opened the other way with the rest of the fill's fee.
    flipped = fill.model_copy(update={"qty": abs(rest), "fee": fill.fee - exit_fee})
    return FillOutcome(_opened(flipped, rest, bot_id, new_position_id), trade)


def _opened(fill: Fill, delta: Decimal, bot_id: str, position_id: str) -> Position:
    return Position(
        id=position_id,
        bot_id=bot_id,
        symbol=fill.symbol,
        side=Side.LONG if delta > 0 else Side.SHORT,
        size=abs(delta),
        entry_price=fill.price,
        entry_time=fill.time,
        best_price=fill.price,
        entry_fees=fill.fee,
    )


class StopKind(StrEnum):
    PERCENT = "percent"
    """`distance` percent away from the entry (or the best price, when trailing)."""
    ABSOLUTE = "absolute"
    """`distance` in price units away."""


class StopPolicy(DomainModel):
    kind: StopKind = StopKind.PERCENT
    distance: Decimal = Field(default=Decimal(2), gt=0)
    trailing: bool = False
    """Follow the best price since entry: the stop only ever tightens."""
    max_underwater_pct: Decimal = Field(default=Decimal(5), ge=0)
    """A position already this far past its stop gets no stop (it would fire at once
    into slippage): the bot says so and waits for an operator."""

    def price_from(self, reference: Decimal, side: Side) -> Decimal:
        """The stop for a position of `side` whose reference price is `reference`."""
        gap = reference * self.distance / 100 if self.kind is StopKind.PERCENT else self.distance
        return reference - gap if side is Side.LONG else reference + gap

    def stop_for(self, position: Position) -> Decimal:
        """Where `position`'s stop belongs now, by its own stop rule if its strategy
        gave one, else by this policy: from its entry, or from its best price when
        trailing, never looser than the stop it has."""
        rule = position.stop_rule
        trailing = rule.trailing if rule is not None else self.trailing
        reference = (
            position.best_price
            if trailing and position.best_price is not None
            else position.entry_price
        )
        if rule is not None:
            wanted = rule.price_from(reference, position.side)
        else:
            wanted = self.price_from(reference, position.side)
        if position.stop_price is None:
            return wanted
        tighter = max if position.side is Side.LONG else min
        return tighter(wanted, position.stop_price)

    def underwater(self, position: Position, stop: Decimal, price: Decimal) -> Decimal | None:
        """How far (percent of the stop) `price` is already at or past `stop`: 0 at
        it, where no venue takes the stop (it would fire at once); None if not there."""
        past = stop - price if position.side is Side.LONG else price - stop
        return past / stop * 100 if past >= 0 else None


def best_price(position: Position, price: Decimal) -> Decimal:
    """The best price seen since entry, with `price` seen now."""
    best = position.best_price or position.entry_price
    return max(best, price) if position.side is Side.LONG else min(best, price)
