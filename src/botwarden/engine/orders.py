"""Orders, written ahead: every order is stored before it is sent, under a client order
id the venue will see, and every answer is stored as it comes (promises I1, I5).

    place:   intent stored (SUBMITTING) ─> sent ─> answer stored
                                             ├─ accepted / filled: ACCEPTED (fills follow)
                                             ├─ refused: REJECTED
                                             ├─ nothing reached the venue: CANCELED
                                             └─ no answer (timeout, 5xx): UNKNOWN
    resolve: an intent SUBMITTING (after a crash) or UNKNOWN is looked up by its client
             order id: the order, the open orders, the fills. Found: its state is
             applied. Absent everywhere for `unknown_order_grace`: a stop or exit is
             sent again under the SAME id while its position needs it; an entry is
             dropped (but on a venue whose lookups are exact, a backtest's, while
             its bars are the newest). Never a new id.
    fills:   the venue's fills are read from a durable cursor; each fill of the bot's
             orders is recorded once (by trade id) in the same atomic write as the
             intent and the position it changes, and the trade it closes.

Positions change only through fills, so the ledger and the positions can never tell
different stories.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from botwarden.domain import risk as rules
from botwarden.domain.markets import OrderRefused, TimeInForce
from botwarden.domain.models import Fill, OrderSide, Position, TakeProfit, Topic
from botwarden.domain.orders import EntryPlan, IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.domain.positions import StopPolicy, Trade, apply_fill
from botwarden.domain.risk import RiskLimits
from botwarden.domain.timeframes import last_completed_bar_open
from botwarden.engine.crash import CRASH
from botwarden.engine.ids import ClientIds
from botwarden.state.manager import StateManager, Transaction
from botwarden.venues.base import (
    Ambiguous,
    DuplicateOrder,
    FillPage,
    NotFound,
    OrderRequest,
    OrderState,
    Rejected,
    Retryable,
    Venue,
    VenueError,
    VenueOrder,
)

log = logging.getLogger(__name__)

BREAKER = {"notify": Topic.BREAKER}

FIRST_FILLS_MARGIN = timedelta(days=1)
"""How long before the bot's first order its first look for fills begins."""

READ_AHEAD_FILLS = 10_000
"""The most fills `OrderDesk.read_ahead` keeps."""

WAITING = frozenset({IntentStatus.SUBMITTING, IntentStatus.UNKNOWN})
"""Sent, or maybe sent, with no answer stored: only the venue can say what happened."""

Told = Callable[[Transaction, OrderIntent], None]
"""Writes made in the change that stores an order's answer, given the intent as stored
(a stop's "placed" event): one write where two were, and never one without the other."""


@dataclass
class Context:
    """What every part of the engine works with."""

    bot_id: str
    state: StateManager
    venue: Venue
    ids: ClientIds
    clock: Callable[[], datetime]
    stop: StopPolicy
    unknown_order_grace: timedelta
    symbols: tuple[str, ...] = ()
    """The markets the bot trades: positions elsewhere on the account are not its own
    (another bot's, the owner's). Empty: every market is."""
    limits: RiskLimits = field(default_factory=RiskLimits)
    take_profit: TakeProfit | None = None
    """The config's take-profit for every position without its own; None: none."""
    timeframe: str | None = None
    """The strategy's bars, where a strategy decides on a venue whose lookups are exact
    (a backtest's paper book): an entry it asked for that never reached the venue is
    sent again while they are the same bars (see `OrderDesk.resolve`). None, as on
    every real venue: such an entry is dropped (a lookup there may lag, and the moment
    may have passed)."""

    async def position_in(self, symbol: str) -> Position | None:
        for position in (await self.state.snapshot()).positions.values():
            if position.symbol == symbol:
                return position
        return None

    async def known_intents(self, open_orders: Mapping[str, object]) -> dict[str, OrderIntent]:
        """The intents of those of `open_orders` (by client order id) that are the bot's,
        live or in the history (an order whose intent ended may rest a while: a cancel
        not done yet). Others' orders are not looked up."""
        return await self.state.get_orders_by_id(cid for cid in open_orders if self.ids.owns(cid))

    async def intent(self, client_order_id: str) -> OrderIntent:
        """The intent under this id, live or (once terminal) in the history."""
        intent = await self.state.get_order(client_order_id)
        if intent is None:
            raise KeyError(client_order_id)
        return intent


def found_on_the_venue(
    order: VenueOrder,
    now: datetime,
    position_id: str | None = None,
    purpose: Purpose | None = None,
) -> OrderIntent:
    """The intent of an order of the bot's found on the venue that its state does not
    know (lost with a state, or a guard sent while the store could not write):
    accepted, as the venue says, sent by the instance its client order id names. Its
    purpose, unless given, is what the order can be: a stop, an exit (reduce-only), or
    an entry."""
    if purpose is None:
        purpose = Purpose.STOP if order.type is OrderType.STOP else Purpose.ENTRY
        if order.reduce_only and purpose is Purpose.ENTRY:
            purpose = Purpose.EXIT
    return (
        OrderIntent(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            qty=order.qty,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            purpose=purpose,
            position_id=position_id,
            created_at=order.created_at,
            updated_at=now,
        )
        .submit(now, ClientIds.epoch_of(order.client_order_id))
        .accept(now, order.venue_order_id)
    )


@dataclass(frozen=True)
class Recorded:
    """A fill, durable: the position it left (None: flat) and the trade it closed."""

    fill: Fill
    position: Position | None
    trade: Trade | None


class OrderDesk:
    write_ahead = True
    """False only to break the engine on purpose: the torture simulator's own test
    proves its checker finds what this rule prevents (orders sent before stored)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sent_filling = 0
        """Orders sent so far that fill at once (at market, or a limit the venue filled
        as it took it): a pass that sent one reads its fills before it ends (a resting
        stop's fill can wait for the next)."""
        self.recorded: list[Recorded] = []
        """The fills recorded since the runner last took them (for the strategy's
        hooks); not the replay of a lost state's whole history."""
        self._read_ahead: dict[str | None, FillPage] = {}
        """Pages of fills read before a sync asked for them, by the cursor they follow
        (`read_ahead`)."""

    # -- placing ---------------------------------------------------------------------------
    async def place(
        self,
        *,
        symbol: str,
        side: OrderSide,
        qty: Decimal,
        purpose: Purpose,
        position_id: str | None = None,
        type: OrderType = OrderType.MARKET,
        stop_price: Decimal | None = None,
        limit_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        plan: EntryPlan | None = None,
        replaces: str | None = None,
        also: Callable[[Transaction, OrderIntent], None] | None = None,
        told: Told | None = None,
    ) -> OrderIntent:
        """Store the intent, then send it. `also` adds writes to the intent's change
        (a position learning its stop's id, say): they are durable together; `told`
        adds writes to the change that stores the venue's answer (see `Told`). `plan`:
        an entry's, what its fills give the position. `replaces`: a resting order this
        one takes the place of in one request (`Venue.replace`)."""
        ctx = self.ctx
        CRASH.reached(f"before_{purpose}_stored")
        now = ctx.clock()
        async with ctx.state.transaction() as tx:
            cid = ctx.ids.make(tx.next_order_seq())
            if cid in tx.state.intents:  # never two orders under one id: a bug, loudly
                raise RuntimeError(f"client order id {cid} is taken: epoch {ctx.ids.epoch} reused")
            intent = OrderIntent(
                client_order_id=cid,
                symbol=symbol,
                side=side,
                type=type,
                qty=qty,
                limit_price=limit_price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                purpose=purpose,
                position_id=position_id,
                plan=plan,
                replaces=replaces,
                created_at=now,
                updated_at=now,
            ).submit(now, ctx.ids.epoch)
            tx.save_order(intent)
            if also is not None:
                also(tx, intent)
            price = f" at {stop_price or limit_price}" if stop_price or limit_price else ""
            tx.add_event(
                now,
                "order",
                f"{purpose} {side} {qty} {symbol} {type}{price}: sending as {cid}",
                {"client_order_id": cid},
            )
            if not self.write_ahead:  # broken on purpose: sent before it is stored
                request = OrderRequest.from_intent(intent, reduce_only=purpose is not Purpose.ENTRY)
                answer = await ctx.venue.submit(request)
        if not self.write_ahead:
            return await self.apply_answer(intent, answer, told)
        CRASH.reached(f"{purpose}_stored_not_sent")
        return await self.send(intent, told)

    async def close(
        self,
        position: Position,
        also: Callable[[Transaction, OrderIntent], None] | None = None,
        qty: Decimal | None = None,
    ) -> OrderIntent:
        """Close `position` (or `qty` of it) at market (its fills will say when it is
        closed). Where the venue does not honour reduce-only orders, its stops are
        canceled first: a stop firing beside the exit would sell twice (what is left
        of a part gets its stop again once the exit filled). (A cancel with no answer
        raises: nothing is sent, and the caller tries again later.)"""
        if not self.ctx.venue.capabilities.reduce_only:
            await self._cancel_stops(position)
        return await self.place(
            symbol=position.symbol,
            side=position.side.exit_order_side,
            qty=qty or position.size,
            purpose=Purpose.EXIT,
            position_id=position.id,
            also=also,
        )

    async def place_legs(
        self,
        position: Position,
        stop_price: Decimal,
        take_profit: Decimal,
        qty: Decimal,
        also: Callable[[Transaction, OrderIntent, OrderIntent], None] | None = None,
        told: Told | None = None,
    ) -> tuple[OrderIntent, OrderIntent]:
        """A position's stop and take-profit, both intents written ahead in one change
        (with `also`'s writes), then sent at once: as two reduce-only orders where the
        venue honours them (either can rest beside the other), else as one
        one-cancels-other pair in one call. Either way a position waits one round trip
        for both. Resolved like any order if an answer is lost; a pair's take-profit
        never answered is dropped, never sent alone (beside a stop it could close
        twice). `told`: as `place`'s, for each leg's answer."""
        ctx = self.ctx
        side_by_side = ctx.venue.capabilities.reduce_only
        how = "" if side_by_side else " (one cancels the other)"
        stop, target = await self._write_legs(position, stop_price, take_profit, qty, also, how)
        if side_by_side:
            outcomes = await asyncio.gather(
                self.send(stop, told), self.send(target, told), return_exceptions=True
            )
            for outcome in outcomes:  # both ran to their end: what stopped one goes on up
                if isinstance(outcome, BaseException):
                    raise outcome
            return outcomes[0], outcomes[1]
        try:
            answers = await ctx.venue.submit_oco(
                OrderRequest.from_intent(stop, reduce_only=True),
                OrderRequest.from_intent(target, reduce_only=True),
            )
        except Ambiguous as error:
            for leg in (stop, target):
                unknown = leg.mark_unknown(ctx.clock(), str(error))
                await self._store(unknown, "unknown", error, told)
        except (Rejected, NotFound, OrderRefused) as error:
            for leg in (stop, target):
                await self._store(leg.reject(ctx.clock(), str(error)), "alert", error, told)
        except Retryable as error:
            for leg in (stop, target):
                canceled = leg.cancel(ctx.clock(), f"not sent: {error}")
                await self._store(canceled, "order", error, told)
        else:
            CRASH.reached("stop_sent_answer_not_stored")
            by_id = {order.client_order_id: order for order in answers}
            for leg in (stop, target):
                if leg.client_order_id in by_id:
                    await self.apply_answer(leg, by_id[leg.client_order_id], told)
            if any(order.filled_qty > 0 for order in answers):
                await self.sync_fills()  # a leg taken and filled at once: the position knows
        return await ctx.intent(stop.client_order_id), await ctx.intent(target.client_order_id)

    async def _write_legs(
        self,
        position: Position,
        stop_price: Decimal,
        take_profit: Decimal,
        qty: Decimal,
        also: Callable[[Transaction, OrderIntent, OrderIntent], None] | None,
        how: str,
    ) -> tuple[OrderIntent, OrderIntent]:
        """The intents of a position's stop and take-profit, written ahead in one change
        under a pair's ids (`ClientIds.make_pair`), with `also`'s writes."""
        ctx = self.ctx
        CRASH.reached("before_stop_stored")
        now = ctx.clock()
        side = position.side.exit_order_side
        async with ctx.state.transaction() as tx:
            legs = []
            ids = ctx.ids.make_pair(tx.next_order_seq())
            for cid, purpose, kind, prices in (
                (ids[0], Purpose.STOP, OrderType.STOP, {"stop_price": stop_price}),
                (ids[1], Purpose.TAKE_PROFIT, OrderType.LIMIT, {"limit_price": take_profit}),
            ):
                if cid in tx.state.intents:
                    raise RuntimeError(f"client order id {cid} is taken: epoch reused")
                leg = OrderIntent(
                    client_order_id=cid,
                    symbol=position.symbol,
                    side=side,
                    type=kind,
                    qty=qty,
                    purpose=purpose,
                    position_id=position.id,
                    created_at=now,
                    updated_at=now,
                    **prices,
                ).submit(now, ctx.ids.epoch)
                tx.save_order(leg)
                legs.append(leg)
            stop, target = legs
            if also is not None:
                also(tx, stop, target)
            tx.add_event(
                now,
                "order",
                f"stop at {stop_price} and take-profit at {take_profit} for {qty}"
                f" {position.symbol}: sending as {stop.client_order_id} /"
                f" {target.client_order_id}{how}",
                {"client_order_id": stop.client_order_id},
            )
        CRASH.reached("stop_stored_not_sent")
        return stop, target

    async def _cancel_stops(self, position: Position) -> None:
        """Every stop and take-profit of `position`, canceled: an exit is about to go
        where the venue cannot keep two exits from closing twice."""
        state = await self.ctx.state.snapshot()
        for intent in state.intents.values():
            if (
                intent.position_id == position.id
                and intent.purpose.protects
                and not intent.status.is_terminal
                and not await self.cancel(intent.client_order_id, intent.symbol)
            ):
                raise Ambiguous(
                    self.ctx.venue.name,
                    f"cancel of {intent.purpose} {intent.client_order_id} unconfirmed: no"
                    " exit beside it",
                )

    async def cancel(self, client_order_id: str, symbol: str, settle_pair: bool = True) -> bool:
        """Cancel one of the bot's orders; its intent learns the venue's answer. True
        once the order surely rests no more; False if it may still rest (the caller
        looks again later). The other leg of its pair went with it: its intent learns
        so too, unless `settle_pair` is False (the caller does, later)."""
        venue = self.ctx.venue
        try:
            answer = await venue.cancel(client_order_id, symbol)
        except (Rejected, NotFound):  # not resting (filled, canceled, never there): fills tell
            return True
        except Ambiguous:  # did it land? one look now, else at the next pass
            try:
                answer = await venue.order(client_order_id, symbol)
            except VenueError:
                return False
            if answer.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED):
                return False
        intent = (await self.ctx.state.snapshot()).intents.get(client_order_id)
        if intent is not None:
            await self.apply_answer(intent, answer)
        if answer.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED):
            return (
                False  # the venue took the cancel, the order still rests (Alpaca's pending_cancel)
            )
        if answer.oco_with is not None and settle_pair:  # its pair went with it
            await self.settle(answer.oco_with, symbol)
        return True

    async def settle(self, client_order_id: str, symbol: str) -> None:
        """The intent of one of the bot's orders learns the venue's word on it (one
        that went without the bot's doing: the other leg of a pair filled or was
        canceled)."""
        intent = (await self.ctx.state.snapshot()).intents.get(client_order_id)
        if intent is None or intent.status.is_terminal:
            return
        try:
            order = await self.ctx.venue.order(client_order_id, symbol)
        except NotFound:
            return  # (a lookup may lag: looked at again when it is missed next)
        await self.apply_answer(intent, order)

    async def closing(self, position: Position) -> bool:
        """Is an exit of `position` (of all of it, or a part) already on its way?"""
        return await self.exiting(position) > 0

    async def exiting(self, position: Position) -> Decimal:
        """How much of `position` its exits on their way may still close: what is left
        of each (all of it for one of unknown fate, which may have filled or not)."""
        intents = (await self.ctx.state.snapshot()).intents.values()
        return sum(
            (
                i.qty if i.status in WAITING else i.remaining_qty
                for i in intents
                if i.position_id == position.id
                and i.purpose is Purpose.EXIT
                and not i.status.is_terminal
            ),
            Decimal(0),
        )

    async def send(
        self, intent: OrderIntent, told: Told | None = None, again: bool = False
    ) -> OrderIntent:
        """Send a SUBMITTING intent and store what the venue answered (with `told`'s
        writes): in place of the order it `replaces`, while that one may still rest.
        `again`: it was sent before and not found since (a refusal of its id as a
        duplicate then proves the first request arrived)."""
        ctx = self.ctx
        request = OrderRequest.from_intent(intent, reduce_only=intent.purpose is not Purpose.ENTRY)
        self.sent_filling += intent.type is OrderType.MARKET
        old = (await ctx.state.snapshot()).intents.get(intent.replaces or "")
        if old is not None and old.status.is_terminal:
            old = None  # gone already: nothing to take the place of
        try:
            if old is None:
                answer = await ctx.venue.submit(request)
            else:
                resting = OrderRequest.from_intent(old, reduce_only=request.reduce_only)
                answer = await ctx.venue.replace(resting, request, old.venue_order_id)
        except Ambiguous as error:
            unknown = intent.mark_unknown(ctx.clock(), str(error))
            return await self._store(unknown, "unknown", error, told)
        except DuplicateOrder as error:
            if not again:  # (a first request: an id taken by another order, not proof)
                refused = intent.reject(ctx.clock(), str(error))
                return await self._store(refused, "alert", error, told)
            # Sent again: the venue holds the first one after all, whatever the lookups
            # said. It is looked up, never taken as refused.
            held = intent.mark_unknown(
                ctx.clock(), f"the venue holds an order under its id: {error}"
            )
            return await self._store(held, "unknown", error, told)
        except (Rejected, NotFound, OrderRefused) as error:
            return await self._store(intent.reject(ctx.clock(), str(error)), "alert", error, told)
        except Retryable as error:  # nothing reached the venue: it never existed there
            canceled = intent.cancel(ctx.clock(), f"not sent: {error}")
            return await self._store(canceled, "order", error, told)
        CRASH.reached(f"{intent.purpose}_sent_answer_not_stored")
        if old is not None:
            await self._replaced(old, intent)
        stored = await self.apply_answer(intent, answer, told)
        if answer.filled_qty > 0 and intent.purpose.protects:
            await self.sync_fills()  # it closed (some of) its position at once: known now
        return stored

    async def _replaced(self, old: OrderIntent, new: OrderIntent) -> None:
        """The venue took `new` in `old`'s place. `old`'s intent learns its end from the
        venue, when it is missed from the open orders: an answer to a replace is not
        its outcome everywhere (Alpaca may still reject the new order and leave the
        old one working)."""
        async with self.ctx.state.transaction() as tx:
            tx.add_event(
                self.ctx.clock(),
                "order",
                f"{new.client_order_id} sent in {old.client_order_id}'s place, in one request",
                {"client_order_id": new.client_order_id},
            )

    async def _store(
        self, intent: OrderIntent, kind: str, why: Exception, told: Told | None = None
    ) -> OrderIntent:
        async with self.ctx.state.transaction() as tx:
            tx.save_order(intent)
            if told is not None:
                told(tx, intent)
            tx.add_event(
                self.ctx.clock(),
                kind,
                f"{intent.client_order_id} ({intent.purpose} {intent.symbol}):"
                f" {intent.status}: {why}",
                {"client_order_id": intent.client_order_id},
                logged=True,
            )
        log.log(
            logging.WARNING if kind != "order" else logging.INFO,
            "%s: %s %s: %s",
            self.ctx.bot_id,
            intent.client_order_id,
            intent.status,
            why,
        )
        return intent

    async def apply_answer(
        self, intent: OrderIntent, order: VenueOrder, told: Told | None = None
    ) -> OrderIntent:
        """Store what the venue says of the order (with `told`'s writes). Quantities
        come only from fills (`sync_fills`); this moves the status: accepted, canceled,
        rejected."""
        if order.filled_qty > intent.filled_qty and intent.type is not OrderType.MARKET:
            self.sent_filling += 1  # (a limit taken and filled at once: its fill to read)
        moved = self._moved(intent, order)
        if moved == intent and told is None:
            return intent
        async with self.ctx.state.transaction() as tx:
            if moved != intent:
                tx.save_order(moved)
            if told is not None:
                told(tx, moved)
        return moved

    def _moved(self, intent: OrderIntent, order: VenueOrder) -> OrderIntent:
        now = self.ctx.clock()
        if intent.venue_order_id is None and order.venue_order_id:
            intent = intent.evolve(venue_order_id=order.venue_order_id)
        if order.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.FILLED):
            if intent.status in WAITING:
                return intent.accept(now, order.venue_order_id)
            return intent
        if order.filled_qty > intent.filled_qty:
            return intent  # closed at the venue, but fills still to read: they come first
        if intent.status.is_terminal:
            return intent
        if order.state is OrderState.REJECTED:
            if intent.status in WAITING or intent.status is IntentStatus.ACCEPTED:
                return intent.reject(now, order.reason or "rejected by the venue")
            return intent
        return intent.cancel(now, order.reason or f"{order.state} at the venue")

    # -- resolving -------------------------------------------------------------------------
    async def resolve(self, intent: OrderIntent, open_orders: dict[str, VenueOrder]) -> OrderIntent:
        """Find out what became of an intent sent with no answer stored. `open_orders`:
        the venue's open orders by client order id, listed once for every intent."""
        ctx = self.ctx
        cid = intent.client_order_id
        self.forget_read_ahead()  # what a lookup finds is judged by fills read after it
        try:
            found: VenueOrder | None = await ctx.venue.order(cid, intent.symbol)
        except NotFound:
            found = open_orders.get(cid)
        if found is not None:
            await self.sync_fills()
            return await self.apply_answer(await ctx.intent(cid), found)
        await self.sync_fills()
        current = await ctx.intent(cid)
        if current.filled_qty > 0 or current.status not in WAITING:
            return current  # its fills prove it reached the venue
        waited = ctx.clock() - current.updated_at
        if waited < ctx.unknown_order_grace:
            return current
        where = "by lookup, in the open orders and in the fills"
        beside = await self._stop_beside(current, open_orders)
        if beside or not await self._still_needed(current):
            dropped = current.cancel(
                ctx.clock(),
                f"never reached the venue: not found {where} for {waited}"
                + (f"; {beside} rests for its position (taken up as its stop)" if beside else ""),
            )
            return await self._store(dropped, "order", RuntimeError(f"{current.purpose} dropped"))
        # Still needed: the same id again, never a new one.
        if current.status is IntentStatus.SUBMITTING:  # stored; the process stopped there
            current = current.mark_unknown(ctx.clock(), "no answer stored")
        resent = current.submit(ctx.clock(), ctx.ids.epoch)
        async with ctx.state.transaction() as tx:
            tx.save_order(resent)
            tx.add_event(
                ctx.clock(),
                "order",
                f"{cid} not found {where} for {waited}: sent again under the same id",
                {"client_order_id": cid},
            )
        return await self.send(resent, again=True)

    async def _stop_beside(
        self, intent: OrderIntent, open_orders: dict[str, VenueOrder]
    ) -> str | None:
        """Another stop of the bot's resting for `intent`'s position where two cannot
        rest at once (no reduce-only): sent again beside it, both could fire and sell
        twice. (A guard sent while the store failed, say: protection takes it up.) The
        one it `replaces` does not count: sent again, it goes in that one's place."""
        if intent.purpose is not Purpose.STOP or self.ctx.venue.capabilities.reduce_only:
            return None
        # Terminal ones too: a stop the bot ended may rest a while (a cancel not done).
        intents = await self.ctx.known_intents(open_orders)
        for cid, order in open_orders.items():
            known = intents.get(cid)
            theirs = (known is not None and known.position_id == intent.position_id) or (
                known is None and self.ctx.ids.is_guard_stop(cid, intent.position_id or "")
            )
            if (
                cid not in (intent.client_order_id, intent.replaces)
                and theirs
                and order.type is OrderType.STOP
                and order.side is intent.side
                and order.symbol == intent.symbol
            ):
                return cid
        return None

    async def _still_needed(self, intent: OrderIntent) -> bool:
        """Is this order, which never reached the venue, still wanted? A pair's
        take-profit never alone. An entry while no bar of the strategy's has completed
        since it was written (the strategy, asked now, would decide on the same bars:
        the crash cost the entry nothing but the wait), and only where the venue never
        takes a client order id twice (had the first arrived after all, the second
        would be refused, not filled). A stop or an exit while its position is there,
        and a stop only while its position has not replaced it (sent now, it would
        rest beside the new one)."""
        if intent.purpose is Purpose.TAKE_PROFIT:
            return False
        if intent.purpose is Purpose.ENTRY:
            timeframe = self.ctx.timeframe
            return (
                timeframe is not None
                and self.ctx.venue.capabilities.client_ids == "unique"
                and last_completed_bar_open(timeframe, self.ctx.clock())
                == last_completed_bar_open(timeframe, intent.created_at)
            )
        position = (await self.ctx.state.snapshot()).positions.get(intent.position_id or "")
        if position is None:
            return False
        return intent.purpose is not Purpose.STOP or (
            position.stop_client_order_id == intent.client_order_id
        )

    # -- fills -------------------------------------------------------------------------------
    async def read_ahead(self, cursor: str | None) -> list[str]:
        """The client order ids of the venue's fills after `cursor` (every fill, without
        it), read now; the fills are kept for the next sync from the same cursor, which
        records them without asking the venue again: a start looks at the fills before
        recovery (for the epochs the venue has seen) and must not read them twice (on
        Binance, a request per market). Kept until `forget_read_ahead`, up to
        `READ_AHEAD_FILLS` (a lost state's long history is read again, not held)."""
        self._read_ahead.clear()
        client_ids: list[str] = []
        keeping = True
        while True:
            page = await self.ctx.venue.fills(cursor=cursor)
            # (Pages from the first on only: a sync reads on from the last one kept.)
            keeping = keeping and len(client_ids) + len(page.fills) <= READ_AHEAD_FILLS
            if keeping:
                self._read_ahead[cursor] = page
            client_ids += [f.client_order_id for f in page.fills]
            if not page.more:
                return client_ids
            cursor = page.cursor

    def forget_read_ahead(self) -> None:
        self._read_ahead.clear()

    async def sync_fills(self, everything: bool = False) -> int:
        """Record every new fill of the bot's orders; returns how many were new.
        `everything`: from the venue's first fill (a lost state rebuilt from its fills)."""
        ctx = self.ctx
        state = await ctx.state.snapshot()
        cursor = state.ledger.fills_cursor
        since = None
        if cursor is None and not everything:
            first = await self._first_order_at()
            if first is None:
                return 0  # no order sent yet: no fill can be the bot's
            # A margin before the first order: the venue's clock may have moved against
            # the bot's since it was sent (an NTP step, a skewed or fast venue), and
            # what comes twice the ledger keeps once.
            since = first - FIRST_FILLS_MARGIN
        new = 0
        while True:
            page = self._read_ahead.pop(cursor, None) if since is None else None
            if page is None:
                page = await ctx.venue.fills(since=since, cursor=cursor)
            mine = [fill for fill in page.fills if ctx.ids.owns(fill.client_order_id)]
            moved = page.cursor != cursor
            carried = False
            for number, fill in enumerate(mine):
                # The page's cursor goes in the write of its last fill: one write less,
                # and a crash before it only means the page is read (and deduplicated)
                # again.
                carry = page.cursor if moved and number == len(mine) - 1 else None
                recorded = await self._record(fill, cursor=carry, tell=not everything)
                new += recorded
                carried = bool(carry and recorded)
            if moved and not carried:
                async with ctx.state.transaction() as tx:
                    tx.set_fills_cursor(page.cursor)
            cursor = page.cursor
            if not page.more:
                return new

    async def _first_order_at(self) -> datetime | None:
        """When the bot's first order was written, kept in the ledger once known. Found
        once among every intent, the history's too (where a terminal intent may still
        have fills to come: FILLED by the order's status, its fills not listed yet)."""
        state = await self.ctx.state.snapshot()
        if state.ledger.first_order_at is not None:
            return state.ledger.first_order_at
        every = [*state.intents.values(), *await self.ctx.state.history.orders()]
        if not every:
            return None
        first = min(i.created_at for i in every)
        async with self.ctx.state.transaction() as tx:
            tx.set_first_order_at(first)
        return first

    def _counted_at(self, trade: Trade) -> datetime:
        """When a trade counts: at its exit by the bot's clock, never later (a venue's
        clock ahead of it must not move the trading day, which never goes back, into
        the venue's future)."""
        return min(trade.exit_time, self.ctx.clock())

    def _count(self, tx: Transaction, trade: Trade) -> None:
        """A closed trade in the risk counters, in the same write as the fill: its PnL
        in the day and the losing streak, the symbol's cooldown, and the breaker if a
        loss limit is reached."""
        limits = self.ctx.limits
        at = self._counted_at(trade)
        part = trade.position_pnl is None  # its position still held: no streak, no cooldown
        risk = rules.add_realized_pnl(
            tx.state.risk,
            trade.pnl,
            limits.trading_day(at),
            position_pnl=trade.position_pnl,
            part=part,
        )
        risk, reason = rules.trip_on_limits(risk, limits, at)
        if reason is not None:
            tx.add_event(at, "alert", f"circuit breaker tripped: {reason}", BREAKER, logged=True)
            log.warning("%s: circuit breaker tripped: %s", self.ctx.bot_id, reason)
        tx.save_risk_state(risk)
        if limits.cooldown_after_exit and not part:
            tx.set_cooldown(trade.symbol, at + limits.cooldown_after_exit)

    async def _found_by_its_fill(self, fill: Fill) -> OrderIntent | None:
        """The order of a guard's fill that the state does not know (sent while the
        store could not write, by an instance that died before writing it): as the
        venue shows it, so the state knows every order of the bot's."""
        venue, cid = self.ctx.venue, fill.client_order_id
        try:
            order = await venue.order(cid, fill.symbol)
        except NotFound:  # a lookup may lag: a working order is in the open ones
            working = [o for o in await venue.open_orders(fill.symbol) if o.client_order_id == cid]
            if not working:
                return None
            order = working[0]
        position = await self.ctx.position_in(fill.symbol)
        if position is None or fill.side is not position.side.exit_order_side:
            return found_on_the_venue(order, self.ctx.clock())
        purpose = Purpose.STOP if order.type is OrderType.STOP else Purpose.EXIT
        return found_on_the_venue(order, self.ctx.clock(), position.id, purpose)

    async def _record(self, fill: Fill, cursor: str | None = None, tell: bool = True) -> int:
        """One fill, its intent, its position and the trade it closed (and the fill
        cursor, if given): one write. `tell`: kept in `recorded` once written."""
        ctx = self.ctx
        if await ctx.state.has_fill(fill.trade_id):
            return 0
        CRASH.reached("fill_seen_not_recorded")
        intent = await ctx.state.get_order(fill.client_order_id)
        found_by_its_fill = intent is None and ctx.ids.is_guard(fill.client_order_id)
        if found_by_its_fill:
            intent = await self._found_by_its_fill(fill)
        position = await ctx.position_in(fill.symbol)
        outcome = apply_fill(
            position,
            fill,
            bot_id=ctx.bot_id,
            new_position_id=f"pos-{fill.client_order_id}",
        )
        trade = outcome.trade
        async with ctx.state.transaction() as tx:
            if not tx.record_fill(fill):
                return 0
            if trade is not None:  # (read under the transaction's lock: one writer)
                day = ctx.limits.trading_day(self._counted_at(trade))
                day_before = await ctx.state.day_pnl(day)
            if found_by_its_fill and intent is not None:
                tx.save_order(intent)  # found by its fill: written with it
            if cursor is not None:
                tx.set_fills_cursor(cursor)
            if intent is not None and not intent.status.is_terminal:
                if fill.qty > intent.remaining_qty:  # the venue rounded up: the fill stands
                    tx.add_event(
                        fill.time,
                        "alert",
                        f"{fill.client_order_id}: the venue filled {fill.qty}, more than the"
                        f" {intent.remaining_qty} left of the order; recorded as filled",
                        {
                            "trade_id": fill.trade_id,
                            "client_order_id": fill.client_order_id,
                            "notify": Topic.FILL,
                        },
                    )
                    intent = intent.evolve(qty=intent.filled_qty + fill.qty)
                tx.save_order(intent.fill(fill.time, fill.qty, fill.price, fill.venue_order_id))
            elif intent is not None:
                log.warning("%s: fill %s for closed intent", ctx.bot_id, fill.trade_id)
            if outcome.position is None and position is not None:
                tx.remove_position(position.id)
            after = None
            if outcome.position is not None:
                if outcome.position.id != getattr(position, "id", None) and position is not None:
                    tx.remove_position(position.id)
                after = _as_planned(outcome.position, intent, fill)
                tx.save_position(after)
            tx.add_event(
                fill.time,
                "fill",
                f"{fill.side} {fill.qty} {fill.symbol} at {fill.price} ({fill.client_order_id})",
                {
                    "trade_id": fill.trade_id,
                    "client_order_id": fill.client_order_id,
                    "notify": Topic.FILL,
                },
            )
            if trade is not None:
                tx.record_trade(trade, day, day_before)
                tx.add_event(
                    fill.time,
                    "trade",
                    f"closed {trade.qty} {trade.symbol} {trade.side}: {trade.entry_price} ->"
                    f" {trade.exit_price}, PnL {trade.pnl:.2f}",
                    trade.model_dump(mode="json"),
                )
                self._count(tx, trade)
        if tell:
            self.recorded.append(Recorded(fill, after, outcome.trade))
        CRASH.reached("fill_recorded")
        return 1


def _as_planned(position: Position, intent: OrderIntent | None, fill: Fill) -> Position:
    """`position` after an entry's first fill, with what its strategy asked for it: its
    own stop rule, take-profit and custom state (an entry's plan; a fill against the
    position, an exit, changes none of them)."""
    plan = intent.plan if intent is not None else None
    if plan is None or fill.side is not position.side.entry_order_side:
        return position
    if intent.filled_qty > 0:  # given at its first fill; what came since (an update) stays
        return position
    changes: dict = {"custom": {**position.custom, **plan.custom}}
    if plan.stop is not None:
        changes["stop_rule"] = plan.stop
    if plan.take_profit is not None and plan.take_profit != position.take_profit_rule:
        changes.update(take_profit_rule=plan.take_profit, take_profit=None)  # placed anew
    return position.evolve(**changes)
