"""The six promises, checked against the paper exchange's own records.

`check_promises` compares what the bot stored with what the exchange did (its book
holds every order, fill and position, whatever the bot believed) and returns each
violation with its evidence. Used by the demo, the crash tests and the simulator.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from botwarden.domain.models import OrderSide, Side
from botwarden.domain.orders import IntentStatus, OrderType, Purpose
from botwarden.engine.ids import ClientIds
from botwarden.state.records import BotState
from botwarden.venues.base import OrderState
from botwarden.venues.paper.book import PaperBook

PROMISES = {
    "I1": "no duplicate exposure",
    "I2": "always protected",
    "I3": "no lost fills",
    "I4": "one live instance",
    "I5": "no guessing",
    "I6": "atomic state",
}


@dataclass(frozen=True)
class Violation:
    promise: str
    message: str

    def __str__(self) -> str:
        return f"{self.promise} {PROMISES[self.promise]}: {self.message}"


def check_promises(state: BotState, book: PaperBook, ids: ClientIds) -> list[Violation]:
    """Every violation of I1, I2, I3, I5 and I6 visible in `state` and `book` now.
    (I4 is the lock's and the fence's: checked where instances are started.)"""
    found: list[Violation] = []
    orders = [o for o in book.all_orders() if ids.owns(o.client_order_id)]
    by_cid: dict[str, list] = defaultdict(list)
    for order in orders:
        by_cid[order.client_order_id].append(order)
    fills = [f for _, f in book.fills() if ids.owns(f.client_order_id)]

    # I1: one venue order per intent, and no position larger than one entry.
    for cid, same in by_cid.items():
        if len(same) > 1:
            found.append(Violation("I1", f"{len(same)} venue orders carry client id {cid}"))
    largest_entry: dict[str, Decimal] = defaultdict(Decimal)
    for intent in state.intents.values():
        if intent.purpose is Purpose.ENTRY:
            largest_entry[intent.symbol] = max(largest_entry[intent.symbol], intent.qty)
    held = {p.symbol: p for p in book.positions()}
    for symbol, position in held.items():
        if symbol in largest_entry and position.qty > largest_entry[symbol]:
            found.append(
                Violation(
                    "I1",
                    f"{symbol}: the venue holds {position.qty}, more than any one entry"
                    f" ({largest_entry[symbol]}): an entry was repeated",
                )
            )

    # I2: every position held has resting stops covering it, or a declared exception.
    alerted = {p.symbol for p in state.positions.values() if p.metadata.get("underwater_alert")}
    for symbol, position in held.items():
        exit_side = OrderSide.SELL if position.side is Side.LONG else OrderSide.BUY
        covered = sum(
            (
                o.qty - o.filled_qty
                for o in book.open_orders(symbol)
                if o.type is OrderType.STOP and o.side is exit_side and ids.owns(o.client_order_id)
            ),
            Decimal(0),
        )
        if covered < position.qty and symbol not in alerted:
            found.append(
                Violation(
                    "I2", f"{symbol}: {position.qty} held, {covered} covered by resting stops"
                )
            )
        if covered > position.qty:  # both firing would open a position the other way
            found.append(
                Violation(
                    "I1", f"{symbol}: {position.qty} held, {covered} covered by resting stops"
                )
            )

    # ...and no stop resting without a position: it would open one when it fires.
    for order in book.open_orders():
        mine = order.type is OrderType.STOP and ids.owns(order.client_order_id)
        if mine and order.symbol not in held:
            found.append(
                Violation(
                    "I1",
                    f"stop {order.client_order_id} rests in {order.symbol}, where nothing is"
                    " held: it would open a position",
                )
            )

    # I3: the ledger is the venue's fills of the bot's orders, no more, no fewer.
    venue_trades = {f.trade_id for f in fills}
    ledger = set(state.fills)
    for missing in sorted(venue_trades - ledger):
        found.append(Violation("I3", f"venue fill {missing} is not in the bot's ledger"))
    for extra in sorted(ledger - venue_trades):
        found.append(Violation("I3", f"ledger fill {extra} is not a venue fill of the bot's"))

    # I5: nothing terminal without the venue's word for it.
    for intent in state.intents.values():
        venue_orders = by_cid.get(intent.client_order_id, [])
        states = {o.state for o in venue_orders}
        if intent.status is IntentStatus.FILLED and OrderState.FILLED not in states:
            found.append(
                Violation("I5", f"{intent.client_order_id} marked filled; the venue: {states}")
            )
        if (
            intent.status is IntentStatus.CANCELED
            and venue_orders
            and not (states & {OrderState.CANCELED, OrderState.EXPIRED})
        ):
            found.append(
                Violation("I5", f"{intent.client_order_id} marked canceled; the venue: {states}")
            )

    # I6: the positions the state holds are what its own ledger adds up to.
    net: dict[str, Decimal] = defaultdict(Decimal)
    for fill in state.fills.values():
        net[fill.symbol] += fill.qty if fill.side is OrderSide.BUY else -fill.qty
    for position in state.positions.values():
        if position.metadata.get("adopted"):
            continue
        signed = position.size if position.side is Side.LONG else -position.size
        if net[position.symbol] != signed:
            found.append(
                Violation(
                    "I6",
                    f"{position.symbol}: position {signed}, its ledger adds up to"
                    f" {net[position.symbol]}",
                )
            )
    return found
