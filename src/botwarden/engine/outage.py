"""Protection while the store cannot write: the stop guarantee (I2) does not wait for
the disk.

Orders are written ahead, and a stop is normally sent only once its intent is durable.
When the store fails (a full disk, a lost server) with an entry in flight, the entry's
fill cannot be recorded and its stop cannot be written ahead: the position would stay
bare for the whole outage. So while writes fail, each pass asks the venue what is held
in the bot's markets and, for every position the bot made (its state holds it, or an
entry of the bot's in that market explains it) that no resting order of the bot's
covers, sends a guard:
- a stop at the price the stop policy gives, under a client order id made from the
  position's id alone (`ClientIds.guard_stop_id`). Nothing needs writing to know that
  id: this pass and the next look it up before sending it (never a second one), the
  stop guarantee adopts it as the position's stop once the store writes again, and a
  later instance finds it among the orders its state does not know and keeps it;
- if the price is already past where the stop belongs, within `max_underwater_pct`,
  a position the state holds is closed at market under the same id; beyond it, or for
  a position only an entry in flight explains, nothing is sent and the operator is
  told. A guard never covers more than the bot's own quantity (its position, and what
  its entry in flight may have added): the rest of a shared account is not its own.
What a pass did is returned as lines for the log and the operator; the runner writes
them as events once the store works again, with the intent of every guard sent (as the
venue answered it: accepted, or unknown and then resolved like any other order).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from botwarden.domain.markets import fit_price
from botwarden.domain.models import Position
from botwarden.domain.orders import IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.engine.orders import Context
from botwarden.engine.protection import Protector
from botwarden.state.records import BotState
from botwarden.venues.base import Ambiguous, NotFound, OrderRequest, VenueOrder, VenuePosition


class OutageGuard:
    def __init__(self, ctx: Context, protector: Protector) -> None:
        self.ctx = ctx
        self.protector = protector
        self._sent_at: dict[str, datetime] = {}
        """When each guard was sent: one the venue does not show yet (no answer, or a
        lookup that lags) is waited for until the grace is over, never sent beside."""
        self.unwritten: dict[str, OrderIntent] = {}
        """The intents of the guards sent, to store once the store writes again."""
        self.left_bare: set[str] = set()
        """The markets the last pass left without a stop by policy (too far past it)."""

    async def protect(self, known: BotState) -> list[str]:
        """One pass over the venue's positions; what it did (or could not do)."""
        ctx = self.ctx
        # The orders before the positions: a stop that fills between the two reads then
        # shows as resting (nothing is sent) rather than gone beside a position it has
        # already closed (a close sent at market would open one the other way).
        open_orders = [o for o in await ctx.venue.open_orders() if ctx.ids.owns(o.client_order_id)]
        held = [
            p for p in await ctx.venue.positions() if not ctx.symbols or p.symbol in ctx.symbols
        ]
        self.left_bare = set()
        if not held:
            return []
        prices = await ctx.venue.last_prices(sorted({p.symbol for p in held}))  # one call
        done = []
        for there in held:
            price = prices[there.symbol]
            position = _the_bots(known, there, price)
            if position is None:
                continue  # not the bot's (an orphan): recovery decides, later
            exit_side = position.side.exit_order_side
            covered = sum(
                (o.qty - o.filled_qty for o in open_orders if _closes(o, position)), Decimal(0)
            )
            if covered >= position.size:
                continue
            cid = await self._next_guard(position.id, there.symbol)
            if cid is None:
                continue  # one was sent and has not answered yet
            rules = await self.protector.market(there.symbol)
            stop = fit_price(ctx.stop.stop_for(position), rules, exit_side)
            underwater = ctx.stop.underwater(position, stop, price) if stop > 0 else Decimal(100)
            bare = position.size - covered
            what = f"{bare} {there.symbol} held without a stop, the store failing"
            recorded = position.id in known.positions
            if underwater is not None and (
                underwater > ctx.stop.max_underwater_pct or not recorded
            ):  # (never a market order for a position only an entry explains)
                self.left_bare.add(there.symbol)
                done.append(
                    f"{what}: price {price} is {underwater:.2f}% past the stop {stop}; nothing"
                    " placed (it would fire at once): an operator must decide"
                )
                continue
            kind = OrderType.STOP if underwater is None else OrderType.MARKET
            now = ctx.clock()
            intent = OrderIntent(
                client_order_id=cid,
                symbol=there.symbol,
                side=exit_side,
                type=kind,
                qty=bare,
                stop_price=stop if kind is OrderType.STOP else None,
                purpose=Purpose.STOP if kind is OrderType.STOP else Purpose.EXIT,
                position_id=position.id,
                created_at=now,
                updated_at=now,
            ).submit(now, ctx.ids.epoch)
            self._sent_at[cid] = now
            try:
                answer = await ctx.venue.submit(OrderRequest.from_intent(intent, reduce_only=True))
                self.unwritten[cid] = intent.accept(now, answer.venue_order_id)
            except Ambiguous as error:
                self.unwritten[cid] = intent.mark_unknown(now, str(error))
            sent = f"guard stop at {stop}" if kind is OrderType.STOP else "closed at market"
            done.append(f"{what}: {sent} as {cid}")
        return done

    async def _next_guard(self, position_id: str, symbol: str) -> str | None:
        """The id of the next guard for the position: the first the venue has never
        seen (resting, filled or canceled). None while a guard sent and not seen yet
        is within its grace: it may yet show, and a second one could double the exit."""
        ctx = self.ctx
        for number in range(36):
            cid = ctx.ids.guard_stop_id(position_id, number)
            try:
                await ctx.venue.order(cid, symbol)
                continue  # seen: the next one
            except NotFound:
                sent_at = self._sent_at.get(cid)
                if sent_at is not None and ctx.clock() - sent_at < ctx.unknown_order_grace:
                    return None
                return cid
        return None


def _the_bots(state: BotState, there: VenuePosition, price: Decimal) -> Position | None:
    """What of the venue's position is the bot's own: the position its state holds in
    the market (grown by its entry still filling, if any), or the one its entry there,
    sent and not yet known to have filled, opened; None if the bot made none there.
    Never more than the bot's own quantity: the rest is someone else's."""
    entries = [
        i
        for i in state.intents.values()
        if i.symbol == there.symbol
        and i.purpose is Purpose.ENTRY
        and i.side is there.side.entry_order_side
        and i.status in _MAY_BE_FILLING
    ]
    filling = sum((i.qty - i.filled_qty for i in entries), Decimal(0))
    for position in state.positions.values():
        if position.symbol == there.symbol and position.side is there.side:
            return position.evolve(size=min(there.qty, position.size + filling))
    if not entries:
        return None
    entry = max(entries, key=lambda i: i.created_at)
    at = there.avg_entry_price or entry.limit_price or price
    return Position(
        id=f"pos-{entry.client_order_id}",  # the id its first fill will give it
        bot_id=state.bot.bot_id,
        symbol=there.symbol,
        side=there.side,
        size=min(there.qty, filling),
        entry_price=at,
        entry_time=entry.created_at,
        best_price=at,
        stop_rule=entry.plan.stop if entry.plan is not None else None,
    )


_MAY_BE_FILLING = frozenset(
    {
        IntentStatus.SUBMITTING,
        IntentStatus.UNKNOWN,
        IntentStatus.ACCEPTED,
        IntentStatus.PARTIALLY_FILLED,
    }
)
"""An entry in these may have fills the state has not recorded (sent, not final)."""


def _closes(order: VenueOrder, position: Position) -> bool:
    """Does this resting order of the bot's close (part of) `position`: its stop, or an
    exit at market still working?"""
    return (
        order.symbol == position.symbol
        and order.side is position.side.exit_order_side
        and order.type in (OrderType.STOP, OrderType.MARKET)
    )
