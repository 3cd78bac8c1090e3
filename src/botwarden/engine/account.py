"""The account as the venue sees it, beside what the bot believes, and where they differ
(`botwarden account`). Read only: nothing is sent, nothing is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from botwarden.domain.models import Position
from botwarden.domain.orders import IntentStatus, OrderIntent
from botwarden.engine.ids import ClientIds
from botwarden.state.records import BotState
from botwarden.venues.base import Balance, Venue, VenueOrder, VenuePosition

LIVE = (IntentStatus.ACCEPTED, IntentStatus.PARTIALLY_FILLED)


@dataclass
class PositionRow:
    symbol: str
    venue: str | None
    """`long 10 @ 445.20` as the venue holds it; None: it holds nothing there."""
    bot: str | None
    """What the bot's state holds; None: nothing."""
    stop: str | None
    """The bot's stop for it: its price and whether it rests on the venue."""
    difference: str | None = None


@dataclass
class OrderRow:
    client_order_id: str
    symbol: str
    order: str
    """`sell 10 stop @ 436.57`."""
    venue: str | None
    """`open` if the venue lists it open; None if it does not."""
    bot: str | None
    """The bot's intent: its purpose and status; None: the bot has none."""
    difference: str | None = None


@dataclass
class AccountView:
    bot_id: str
    venue: str
    balance: Balance | None
    positions: list[PositionRow] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        rows = [*self.positions, *self.orders]
        return sum(row.difference is not None for row in rows)


async def look_at_account(
    venue: Venue, state: BotState, bot_id: str, symbols: tuple[str, ...]
) -> AccountView:
    """Ask the venue for the balance, the positions and the open orders, and set the
    bot's state beside them. `symbols`: the bot's markets (empty: all are)."""
    view = AccountView(bot_id, venue.name, await venue.balance())
    held = {p.symbol: p for p in await venue.positions()}
    open_orders = {o.client_order_id: o for o in await venue.open_orders()}
    ours = {p.symbol: p for p in state.positions.values()}
    for symbol in sorted(held.keys() | ours.keys()):
        view.positions.append(
            _position_row(symbol, held.get(symbol), ours.get(symbol), open_orders, symbols)
        )
    pending = {cid for cid, intent in state.intents.items() if not intent.status.is_terminal}
    owned = ClientIds(bot_id, 0)
    for cid in sorted(open_orders.keys() | pending):
        order, intent = open_orders.get(cid), state.intents.get(cid)
        if intent is None:  # on the venue only
            assert order is not None
            mine = owned.owns(cid)
            difference = "the bot's id, but the bot has no intent" if mine else None
            view.orders.append(
                OrderRow(
                    cid,
                    order.symbol,
                    _order_text(order),
                    "open",
                    None if mine else "not the bot's",
                    difference,
                )
            )
            continue
        difference = None
        if order is None:
            difference = (
                "the bot thinks it open; the venue does not list it"
                if intent.status in LIVE
                else f"unresolved at the bot ({intent.status}): its next check looks it up"
            )
        shown = _order_text(order) if order is not None else _intent_text(intent)
        view.orders.append(
            OrderRow(
                cid,
                intent.symbol,
                shown,
                "open" if order else None,
                f"{intent.purpose} {intent.status}",
                difference,
            )
        )
    return view


def _position_row(
    symbol: str,
    there: VenuePosition | None,
    mine: Position | None,
    open_orders: dict[str, VenueOrder],
    symbols: tuple[str, ...],
) -> PositionRow:
    row = PositionRow(symbol, None, None, None)
    if there is not None:
        entry = f" @ {there.avg_entry_price}" if there.avg_entry_price else ""
        row.venue = f"{there.side} {there.qty}{entry}"
    if mine is None:
        if not symbols or symbol in symbols:  # another market's: someone else's
            row.difference = "held on the venue, not by the bot (an orphan)"
        return row
    row.bot = f"{mine.side} {mine.size} @ {mine.entry_price}"
    resting = (mine.stop_client_order_id or "") in open_orders
    row.stop = f"{mine.stop_price or '-'} ({'on the venue' if resting else 'NOT on the venue'})"
    if there is None:
        row.difference = "held by the bot, not on the venue (a phantom)"
    elif there.side is not mine.side or there.qty != mine.size:
        row.difference = (
            f"sizes differ: the venue {there.side} {there.qty}, the bot {mine.side} {mine.size}"
        )
    elif not resting:
        row.difference = "NO STOP on the venue"
    return row


def _order_text(order: VenueOrder) -> str:
    price = order.stop_price or order.limit_price
    return f"{order.side} {order.qty} {order.type}" + (f" @ {price}" if price else "")


def _intent_text(intent: OrderIntent) -> str:
    price = intent.stop_price or intent.limit_price
    return f"{intent.side} {intent.qty} {intent.type}" + (f" @ {price}" if price else "")
