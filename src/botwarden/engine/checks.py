"""The six promises, checked against the paper exchange's own records.

`check_promises` compares what the bot stored with what the exchange did (its book
holds every order, fill and position, whatever the bot believed) and returns each
violation with its evidence: the intents, venue orders, fills and positions involved.
One function, used by the demo, the crash tests and the torture simulator.

Some promises hold at every instant (I1, I4, I5, I6); two are partly about what the
bot catches up with: I2 (a stop within a bounded time of a fill) and I3 (the ledger,
once the bot has read the venue's fills). Checked with `catching_up=True` (right after
a recovery, when the venue may have filled something since the bot last looked), a
position is owed its stop once every fill in its market is in the bot's ledger and
no order in it is of unknown fate (a stop being resolved may already rest on the
venue: a second one could double the exit), and the ledger may lag the venue but
never hold a fill the venue does not. Without it, both are owed in full.

A bot whose history is kept for a while only (`state.history.keep`) is checked with
`kept_since`, no later than now less that while, and `held_once`, the trade ids and
client order ids its history was seen to hold (by the harness, outside the bot): an
order or a fill that ended before `kept_since` and was once held may be gone from the
history, and is then counted as the venue has it. One never held is a violation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from botwarden.domain.models import Fill, OrderSide, Position, Side
from botwarden.domain.orders import IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.engine.ids import ClientIds
from botwarden.engine.orders import WAITING
from botwarden.state.history import WholeState
from botwarden.venues.base import OrderState, VenueOrder, VenuePosition
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
    evidence: tuple[str, ...] = ()
    """The records involved, one line each: what a reader needs to see why."""

    def __str__(self) -> str:
        return f"{self.promise} {PROMISES[self.promise]}: {self.message}"

    def explain(self) -> str:
        return "\n".join([str(self), *(f"    {line}" for line in self.evidence)])


def describe(record: VenueOrder | OrderIntent | Fill | Position | VenuePosition) -> str:
    """One line for a record in a violation's evidence."""
    if isinstance(record, VenueOrder):
        at = f" stop {record.stop_price}" if record.stop_price is not None else ""
        return (
            f"venue order {record.client_order_id} ({record.venue_order_id}): {record.state}"
            f" {record.type} {record.side} {record.filled_qty}/{record.qty}"
            f" {record.symbol}{at}, created {record.created_at:%Y-%m-%d %H:%M:%S}"
        )
    if isinstance(record, OrderIntent):
        return (
            f"intent {record.client_order_id}: {record.status} {record.purpose}"
            f" {record.side} {record.filled_qty}/{record.qty} {record.symbol}"
        )
    if isinstance(record, Fill):
        return (
            f"fill {record.trade_id}: {record.side} {record.qty} {record.symbol} at"
            f" {record.price} for {record.client_order_id}"
        )
    if isinstance(record, Position):
        stop = f", stop {record.stop_price} ({record.stop_client_order_id})"
        return f"bot's position {record.symbol}: {record.side} {record.size}{stop}"
    return f"venue position {record.symbol}: {record.side} {record.qty}"


def check_promises(
    state: WholeState,
    book: PaperBook,
    ids: ClientIds,
    promises: Collection[str] = tuple(PROMISES),
    catching_up: bool = False,
    book_trade_id: Callable[[str], str] = str,
    state_lost_at: datetime | None = None,
    kept_since: datetime | None = None,
    held_once: Collection[str] = (),
) -> list[Violation]:
    """Every violation of `promises` visible in `state` and `book` now. I4 is checked
    from the venue's side: no order of an instance reached the venue after a later
    instance had started (the lock and the fence are what keep that true).
    `book_trade_id`: the book's trade id for a ledger's, where the bot traded through
    an emulator that names fills its own way (Alpaca's activity ids). `state_lost_at`:
    when the bot's state was lost, if it was: an order sent before then that ended
    without a fill left nothing at the venue to find it by (neither resting nor
    filled), so a rebuilt state cannot know it, and it exposed nothing. `kept_since`
    and `held_once`: see the module's docstring."""
    forgettable = (kept_since, frozenset(held_once)) if kept_since is not None else None
    view = _View(state, book, ids, catching_up, book_trade_id, state_lost_at, forgettable)
    checks = {"I1": view.i1, "I2": view.i2, "I3": view.i3, "I4": view.i4, "I5": view.i5}
    checks["I6"] = view.i6
    return [v for promise in PROMISES if promise in promises for v in checks[promise]()]


class _View:
    """The bot's records and the exchange's, indexed once for the checks."""

    def __init__(
        self,
        state: WholeState,
        book: PaperBook,
        ids: ClientIds,
        catching_up: bool,
        book_trade_id: Callable[[str], str],
        state_lost_at: datetime | None = None,
        forgettable: tuple[datetime, frozenset[str]] | None = None,
    ) -> None:
        self.state = state
        self.state_lost_at = state_lost_at
        self.forgettable = forgettable
        self.ledger = {book_trade_id(tid): fill for tid, fill in state.fills.items()}
        self.ids = ids
        self.catching_up = catching_up
        self.reduce_only = book.settings.reduce_only
        self.orders = [o for o in book.all_orders() if ids.owns(o.client_order_id)]
        self.by_cid: dict[str, list[VenueOrder]] = defaultdict(list)
        for order in self.orders:
            self.by_cid[order.client_order_id].append(order)
        self.every_fill = [f for _, f in book.fills()]
        """The account's, whoever's orders: what the venue's position is made of."""
        self.fills = [f for f in self.every_fill if ids.owns(f.client_order_id)]
        self.forgotten = {
            f.trade_id: f
            for f in self.fills
            if f.trade_id not in self.ledger and self._may_be_forgotten(f.trade_id, f.time)
        }
        """The bot's venue fills that retention may have removed from its history."""
        self.held = {p.symbol: p for p in book.positions()}
        self.resting_stops: dict[str, list[VenueOrder]] = defaultdict(list)
        self.working_exits: dict[str, list[VenueOrder]] = defaultdict(list)
        for order in book.open_orders():
            if not ids.owns(order.client_order_id):
                continue
            if order.type is OrderType.STOP:
                self.resting_stops[order.symbol].append(order)
            elif order.type is OrderType.MARKET:  # the rest of a partly filled one
                self.working_exits[order.symbol].append(order)

    def _may_be_forgotten(self, held: str, ended: datetime) -> bool:
        """Retention may have removed it: the history held it once, and it ended before
        the history is kept from."""
        if self.forgettable is None:
            return False
        kept_since, held_once = self.forgettable
        return ended < kept_since and held in held_once

    def _bot_position(self, symbol: str) -> list[str]:
        return [describe(p) for p in self.state.positions.values() if p.symbol == symbol]

    def i1(self) -> Iterable[Violation]:
        """One venue order per intent (and an intent for every venue order); no
        position larger than one entry; no stops that, firing together or with nothing
        held, would open a position."""
        lost_before = self.state.ledger.lost_before_epoch
        for cid, same in self.by_cid.items():
            if cid not in self.state.intents and self.ids.epoch_of(cid) >= lost_before:
                if all(self._lost_unseen(order) for order in same):
                    continue
                if all(
                    o.state.is_final and self._may_be_forgotten(cid, o.updated_at) for o in same
                ):
                    continue  # (its intent ended long ago: retention may have removed it)
                yield Violation(
                    "I1",
                    f"venue order {cid} has no intent: it was sent without being written"
                    " ahead, and a restart cannot know it exists",
                    tuple(map(describe, same)),
                )
            if len(same) > 1:
                intent = self.state.intents.get(cid)
                yield Violation(
                    "I1",
                    f"{len(same)} venue orders carry client id {cid}",
                    tuple(map(describe, same)) + ((describe(intent),) if intent else ()),
                )
        entries = [i for i in self.state.intents.values() if i.purpose is Purpose.ENTRY]
        by_signal: dict[str, list[OrderIntent]] = defaultdict(list)
        for intent in entries:
            if intent.plan is not None and intent.plan.signal_id is not None:
                by_signal[intent.plan.signal_id].append(intent)
        for signal_id, same in by_signal.items():
            if len(same) > 1:
                yield Violation(
                    "I1",
                    f"signal {signal_id} was acted on {len(same)} times",
                    tuple(map(describe, same)),
                )
        for symbol, position in self.held.items():
            allowed = self._entries_allowed(symbol, entries)
            if allowed is not None and position.qty > allowed[0]:
                side = allowed[1]
                shown = [
                    describe(o)
                    for o in self.orders
                    if o.symbol == symbol and o.side is side and o.filled_qty
                ]
                yield Violation(
                    "I1",
                    f"{symbol}: the venue holds {position.qty}, more than the position's"
                    f" entries ({allowed[0]}): an entry was repeated",
                    (describe(position), *shown),
                )
        yield from self._no_flip_through_a_protective_order()
        yield from self._no_bracket_closing_twice()
        if self.reduce_only:
            return  # the venue lets no stop grow or flip a position, however many rest
        for symbol, stops in self.resting_stops.items():
            position = self.held.get(symbol)
            closing = [*stops]
            if position is not None:  # and a part out still filling, beside them
                closing += [
                    o
                    for o in self.working_exits.get(symbol, [])
                    if o.side is position.side.exit_order_side
                ]
            covered = sum((o.qty - o.filled_qty for o in closing), Decimal(0))
            if position is None:
                yield Violation(
                    "I1",
                    f"{len(stops)} stop(s) rest in {symbol}, where nothing is held: each"
                    " would open a position when it fires",
                    tuple(map(describe, stops)),
                )
            elif covered > position.qty:
                yield Violation(
                    "I1",
                    f"{symbol}: {position.qty} held, {covered} covered by resting stops:"
                    " firing together they would open a position the other way",
                    (describe(position), *map(describe, stops)),
                )

    def _protective(self, client_order_id: str) -> bool:
        """A stop, a take-profit or a guard of the bot's: an order that only closes."""
        intent = self.state.intents.get(client_order_id)
        if intent is not None:
            return intent.purpose.protects
        orders = self.by_cid.get(client_order_id, [])
        return self.ids.is_guard(client_order_id) or any(
            o.type is OrderType.STOP or o.oco_with is not None for o in orders
        )

    def _no_flip_through_a_protective_order(self) -> Iterable[Violation]:
        """The venue's position, fill by fill: no fill of a stop, a take-profit or a
        guard may take it through zero (it was there to close, not to open)."""
        held: dict[str, Decimal] = defaultdict(Decimal)
        for fill in self.every_fill:
            before = held[fill.symbol]
            held[fill.symbol] += fill.qty if fill.side is OrderSide.BUY else -fill.qty
            after = held[fill.symbol]
            if self._protective(fill.client_order_id) and (
                before == 0 or ((before > 0) != (after > 0) and after != 0)
            ):
                yield Violation(
                    "I1",
                    f"{fill.symbol}: protective order {fill.client_order_id} took the position"
                    f" from {before} to {after}: it opened one, where it should only close",
                    (describe(fill), *map(describe, self.by_cid.get(fill.client_order_id, []))),
                )

    def _no_bracket_closing_twice(self) -> Iterable[Violation]:
        """The two legs of a one-cancels-other pair together close no more than one of
        them was placed for."""
        seen: set[str] = set()
        for order in self.orders:
            if order.oco_with is None or order.client_order_id in seen:
                continue
            other = self.by_cid.get(order.oco_with, [])
            seen.update({order.client_order_id, order.oco_with})
            legs = [order, *other]
            filled = sum((leg.filled_qty for leg in legs), Decimal(0))
            placed = max(leg.qty for leg in legs)
            if filled > placed:
                yield Violation(
                    "I1",
                    f"{order.symbol}: both legs of a stop and take-profit pair filled: {filled}"
                    f" closed where {placed} was held",
                    tuple(map(describe, legs)),
                )

    def _lost_unseen(self, order: VenueOrder) -> bool:
        """Sent before the state was lost and ended without a fill: invisible to the
        rebuild (not resting, no fill), and no exposure."""
        return (
            self.state_lost_at is not None
            and order.created_at < self.state_lost_at
            and order.state.is_final
            and order.filled_qty == 0
        )

    def _entries_allowed(
        self, symbol: str, entries: list[OrderIntent]
    ) -> tuple[Decimal, OrderSide] | None:
        """The most the venue may hold in `symbol`, and on which side: what the entries
        of the bot's position there add up to (the one that opened it, and every one
        that added to it); with no such position, the largest one entry. None when it
        cannot be known: the position's opening entry is not in the state (a lost state
        rebuilt, a position adopted), so its entries are not all known."""
        mine = [i for i in entries if i.symbol == symbol]
        if not mine:
            return None
        position = next((p for p in self.state.positions.values() if p.symbol == symbol), None)
        if position is not None:
            opening = self.state.intents.get(position.id.removeprefix("pos-"))
            if opening is None or opening.purpose is not Purpose.ENTRY:
                return None
            adds = [i for i in mine if i.position_id == position.id]
            # (one ended, canceled or rejected, counts for what it filled, no more)
            most = [i.filled_qty if i.status.is_terminal else i.qty for i in [opening, *adds]]
            return sum(most, Decimal(0)), opening.side
        largest = max(mine, key=lambda i: i.qty)
        return largest.qty, largest.side

    def i2(self) -> Iterable[Violation]:
        """Every position held has resting stops covering it (or a market exit still
        filling: closing it is better than a stop), or a declared exception."""
        alerted = {
            p.symbol for p in self.state.positions.values() if p.metadata.get("underwater_alert")
        }
        unseen = {f.symbol for f in self.fills if f.trade_id not in self.ledger}
        unknown = {i.symbol for i in self.state.intents.values() if i.status in WAITING}
        for symbol, position in self.held.items():
            if self.catching_up and (symbol in unseen or symbol in unknown):
                continue  # not owed yet: the bot has not seen this position as it is
            exit_side = OrderSide.SELL if position.side is Side.LONG else OrderSide.BUY
            stops = [
                o
                for o in self.resting_stops.get(symbol, []) + self.working_exits.get(symbol, [])
                if o.side is exit_side
            ]
            covered = sum((o.qty - o.filled_qty for o in stops), Decimal(0))
            if covered < position.qty and symbol not in alerted:
                yield Violation(
                    "I2",
                    f"{symbol}: {position.qty} held, {covered} covered by resting stops",
                    (describe(position), *self._bot_position(symbol), *map(describe, stops)),
                )

    def i3(self) -> Iterable[Violation]:
        """The ledger is the venue's fills of the bot's orders, no more, no fewer (no
        fewer only once the bot has caught up)."""
        venue = {f.trade_id: f for f in self.fills}
        missing = (
            []
            if self.catching_up
            else sorted(venue.keys() - self.ledger.keys() - self.forgotten.keys())
        )
        for trade_id in missing:
            yield Violation(
                "I3",
                f"venue fill {trade_id} is not in the bot's ledger",
                (describe(venue[trade_id]),),
            )
        for extra in sorted(self.ledger.keys() - venue.keys()):
            yield Violation(
                "I3",
                f"ledger fill {extra} is not a venue fill of the bot's",
                (describe(self.ledger[extra]),),
            )

    def i4(self) -> Iterable[Violation]:
        """No order of an instance reached the venue after a later instance started
        (the instance that sent it is the intent's `sent_by`: an intent left unknown may
        be sent again, under its id, by a later instance)."""
        starts: dict[int, datetime] = {}
        for event in self.state.events.values():
            if "instance" in event.data:  # the runner's "starting as instance N"
                starts[int(event.data["instance"])] = event.time
        if (instance := self.state.bot.instance) is not None:
            starts[instance.epoch] = instance.started_at
        for order in self.orders:
            intent = self.state.intents.get(order.client_order_id)
            sent_by = intent.sent_by if intent is not None else None
            epoch = sent_by if sent_by is not None else self.ids.epoch_of(order.client_order_id)
            later = [at for e, at in starts.items() if e > epoch]
            if later and order.created_at > min(later):
                yield Violation(
                    "I4",
                    f"{order.client_order_id} (instance {epoch}) reached the venue after a"
                    f" later instance started ({min(later):%Y-%m-%d %H:%M:%S})",
                    (describe(order),),
                )

    def i5(self) -> Iterable[Violation]:
        """Nothing marked terminal without the venue's word for it."""
        for intent in self.state.intents.values():
            venue_orders = self.by_cid.get(intent.client_order_id, [])
            states = {o.state for o in venue_orders}
            evidence = (describe(intent), *map(describe, venue_orders))
            if intent.status is IntentStatus.FILLED and OrderState.FILLED not in states:
                yield Violation(
                    "I5",
                    f"{intent.client_order_id} marked filled; the venue: {_names(states)}",
                    evidence,
                )
            if (
                intent.status is IntentStatus.CANCELED
                and venue_orders
                and not (states & {OrderState.CANCELED, OrderState.EXPIRED})
            ):
                yield Violation(
                    "I5",
                    f"{intent.client_order_id} marked canceled; the venue: {_names(states)}",
                    evidence,
                )

    def i6(self) -> Iterable[Violation]:
        """The positions the state holds are what its own ledger adds up to."""
        net: dict[str, Decimal] = defaultdict(Decimal)
        for fill in [*self.state.fills.values(), *self.forgotten.values()]:
            net[fill.symbol] += fill.qty if fill.side is OrderSide.BUY else -fill.qty
        for position in self.state.positions.values():
            if position.metadata.get("adopted"):
                continue
            signed = position.size if position.side is Side.LONG else -position.size
            if net[position.symbol] != signed:
                fills = [f for f in self.state.fills.values() if f.symbol == position.symbol]
                yield Violation(
                    "I6",
                    f"{position.symbol}: position {signed}, its ledger adds up to"
                    f" {net[position.symbol]}",
                    (describe(position), *map(describe, fills)),
                )


def _names(states: set[OrderState]) -> str:
    return ", ".join(sorted(s.value for s in states)) or "no such order"
