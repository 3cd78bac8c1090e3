"""The stop-loss guarantee (promise I2): every position has a stop resting on the venue,
covering its size, at the price the bot's stop policy gives.

Checked after every fill, at every tick and at every start, against the venue's own
list of open orders:
- the stop is there, with the right size and price: nothing to do;
- it is missing (never placed, canceled by hand, lost in a crash): placed again;
- its size is wrong (a partial fill, a manual change) or a trailing stop should move:
  where the venue honours reduce-only orders, a new stop is placed and then the old
  one canceled (never a moment unprotected, and both firing cannot flip the
  position); elsewhere (two stops firing would sell twice) the new one takes the old
  one's place in one request where the venue can replace an order, and otherwise the
  old one is canceled first and the new one placed only once the venue confirmed it;
- the price is already at or past where the stop belongs (no venue takes a stop
  that would fire at once): within `max_underwater_pct`,
  the position is closed at market (the stop would have fired); beyond it, nothing
  is placed (it would fire at once into slippage), and the bot says so, loudly, and
  waits for an operator.
A stop whose placement has no answer yet is left to resolution (`OrderDesk.resolve`):
placing a second one could double the exit.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from botwarden.domain.markets import MarketRules, fit_price
from botwarden.domain.models import Position, Side, Topic
from botwarden.domain.orders import IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.domain.positions import best_price
from botwarden.engine.orders import WAITING, Context, OrderDesk, Told, found_on_the_venue
from botwarden.state.manager import Transaction
from botwarden.venues.base import VenueOrder

log = logging.getLogger(__name__)

TAKE_PROFIT_REFUSED = "take_profit_refused"
"""In a position's metadata: the venue refused its take-profit beside its stop."""


def protects(order: VenueOrder, position: Position) -> bool:
    """Is `order` a stop that closes (part of) `position`?"""
    return (
        order.symbol == position.symbol
        and order.type is OrderType.STOP
        and order.side is position.side.exit_order_side
        and order.stop_price is not None
    )


class Protector:
    def __init__(self, ctx: Context, desk: OrderDesk) -> None:
        self.ctx = ctx
        self.desk = desk
        self._markets: dict[str, MarketRules] = {}
        self._stops_by_position: dict[str, list[str]] = {}
        """The stops resting on the venue, by position: built once per `protect_all`."""
        self._gone: set[str] = set()
        """Stops listed as resting at the start of this `protect_all` that the venue has
        since confirmed gone (replaced, canceled): the listing is not asked again."""

    async def market(self, symbol: str) -> MarketRules:
        if symbol not in self._markets:
            self._markets[symbol] = await self.ctx.venue.market(symbol)
        return self._markets[symbol]

    async def protect_all(
        self, open_orders: dict[str, VenueOrder], prices: dict[str, Decimal]
    ) -> list[str]:
        """Check every position's stop; returns the symbols left unprotected by policy
        (too far underwater), which need an operator."""
        await self._cancel_stops_without_positions(open_orders)
        positions = list((await self.ctx.state.snapshot()).positions.values())
        unpriced = sorted({p.symbol for p in positions} - prices.keys())
        if unpriced:  # one call for all of them
            prices = {**prices, **await self.ctx.venue.last_prices(unpriced)}
        positions = await self._track_best(positions, prices)
        # Every resting order's intent, terminal ones too (a stop whose cancel is not
        # done yet still rests, and counts as one of its position's stops).
        intents = await self.ctx.known_intents(open_orders)
        self._stops_by_position: dict[str, list[str]] = {}
        self._gone = set()
        for cid in open_orders:  # one pass, not one per position
            intent = intents.get(cid)
            if intent is not None and intent.purpose is Purpose.STOP and intent.position_id:
                self._stops_by_position.setdefault(intent.position_id, []).append(cid)
        exposed = []
        for position in positions:
            price = prices[position.symbol]
            if not await self.protect(position, open_orders, price):
                exposed.append(position.symbol)
        return exposed

    async def protect_new(self, position: Position, price: Decimal) -> bool:
        """Protect a position opened this moment, which has nothing of its own resting
        yet: its protection goes at once, with no listing of the open orders first (a
        round trip the position would wait bare). The other positions were checked
        against the venue at the start of the pass, and are again at the next."""
        self._stops_by_position, self._gone = {}, set()
        [position] = await self._track_best([position], {position.symbol: price})
        return await self.protect(position, {}, price)

    async def protect(
        self, position: Position, open_orders: dict[str, VenueOrder], price: Decimal
    ) -> bool:
        """Make sure `position` has its stop, for all of it that no exit on its way is
        closing (a part out still filling leaves the rest to a stop); False if policy
        leaves it without one."""
        ctx = self.ctx
        position = await self._after_a_leg_vanished(position, open_orders)
        if position is None:
            return True  # it closed: a leg had filled
        cover = await self._cover(position)
        if cover <= 0:
            return True  # being closed already
        state = await ctx.state.snapshot()
        stop_intent = state.intents.get(position.stop_client_order_id or "")
        if stop_intent is not None and stop_intent.status in WAITING:
            return True  # its fate is being resolved; a second stop could double the exit
        rules = await self.market(position.symbol)
        exit_side = position.side.exit_order_side
        wanted = fit_price(ctx.stop.stop_for(position), rules, exit_side)
        if wanted <= 0:  # (a long's stop rule too far: no venue takes it)
            return await self._past_its_stop(position, wanted, price, Decimal(100), cover)
        live = open_orders.get(position.stop_client_order_id or "")
        resting = [c for c in self._stops_by_position.get(position.id, ()) if c in open_orders]
        if live is None and resting:  # its last stop refused or lost: an earlier one rests
            known = await ctx.intent(resting[-1])
            position = await self.adopt_stop(position, open_orders[resting[-1]], known)
            live = open_orders[resting[-1]]
        guard = None
        if live is None:  # a guard stop placed while the store could not write?
            guards = (
                o
                for c, o in open_orders.items()
                if ctx.ids.is_guard_stop(c, position.id) and o.symbol == position.symbol
            )
            guard = next(guards, None)
        if guard is not None and protects(guard, position):
            position, live = await self.adopt_stop(position, guard), guard
            log.warning(
                "%s: %s: guard stop %s adopted", ctx.bot_id, position.symbol, guard.client_order_id
            )
        target = self._take_profit_for(position, wanted, rules)
        if target is not None and not ctx.venue.capabilities.reduce_only:
            return await self._protect_as_pair(position, open_orders, price, wanted, target, cover)
        if live is None and target is not None and await self._bare(position, open_orders):
            underwater = ctx.stop.underwater(position, wanted, price)
            if underwater is not None:
                return await self._past_its_stop(position, wanted, price, underwater, cover)
            await self._place_legs(position, wanted, target, cover)
            return True
        if live is None or live.qty != cover or live.stop_price != wanted:
            underwater = ctx.stop.underwater(position, wanted, price)
            if underwater is not None:
                return await self._past_its_stop(position, wanted, price, underwater, cover)
            keep = {live.client_order_id} if live is not None else set()
            if not ctx.venue.capabilities.reduce_only and not await self._cancel_other_stops(
                position, open_orders, keep
            ):
                return True  # a guard or a stray beside the new size could sell twice
            await self._replace(position, live, wanted, cover)
        await self._sweep(position, open_orders)
        await self._keep_take_profit(position, open_orders, target, cover)
        return True

    async def _after_a_leg_vanished(
        self, position: Position, open_orders: dict[str, VenueOrder]
    ) -> Position | None:
        """`position` as it is once the fills are read, if its stop or take-profit no
        longer rests: it may have filled since the fills were last read, and a new one
        placed for a position already closed would open one. None: it is closed."""
        intents = (await self.ctx.state.snapshot()).intents
        legs = (position.stop_client_order_id, position.take_profit_client_order_id)
        vanished = any(
            cid is not None
            and cid not in open_orders
            and cid in intents
            and intents[cid].status is IntentStatus.ACCEPTED
            for cid in legs
        )
        if not vanished:
            return position
        await self.desk.sync_fills()
        return (await self.ctx.state.snapshot()).positions.get(position.id)

    # -- the take-profit beside the stop ---------------------------------------------------
    def _take_profit_for(
        self, position: Position, stop: Decimal, rules: MarketRules
    ) -> Decimal | None:
        """Where `position`'s take-profit belongs: the price it was placed at (fixed
        once placed, from the entry and the stop then: a trailing stop does not drag a
        2R target along), or from its rule (its own, else the config's); None: none."""
        rule = position.take_profit_rule or self.ctx.take_profit
        if rule is None or TAKE_PROFIT_REFUSED in position.metadata:
            return None
        if position.take_profit is not None:
            return position.take_profit
        wanted = rule.price_from(position.entry_price, position.side, stop)
        beyond = wanted is not None and (
            wanted > position.entry_price
            if position.side is Side.LONG
            else 0 < wanted < position.entry_price
        )
        if not beyond:
            return None  # (a price on the losing side of this entry: it would close it at once)
        return fit_price(wanted, rules, position.side.exit_order_side)

    async def _keep_take_profit(
        self,
        position: Position,
        open_orders: dict[str, VenueOrder],
        target: Decimal | None,
        cover: Decimal,
    ) -> None:
        """Where the venue honours reduce-only orders: the take-profit is a reduce-only
        limit of its own beside the stop (whichever fills first, the other finds less
        or nothing to reduce, and is resized or canceled at the next look). A new one
        is placed before the old one goes: there is always one resting."""
        state = await self.ctx.state.snapshot()
        position = state.positions.get(position.id, position)
        current = position.take_profit_client_order_id or ""
        known = state.intents.get(current)
        if known is not None and known.status in WAITING:
            return  # its fate is being resolved first
        live = open_orders.get(current)
        if target is None:
            if live is not None:  # no take-profit wanted any more
                await self.desk.cancel(current, position.symbol)
            return
        if live is not None and live.qty == cover and live.limit_price == target:
            return

        def remember(tx: Transaction, intent: OrderIntent) -> None:
            tx.save_position(
                position.evolve(
                    take_profit=target, take_profit_client_order_id=intent.client_order_id
                )
            )

        placed = await self.desk.place(
            symbol=position.symbol,
            side=position.side.exit_order_side,
            qty=cover,
            purpose=Purpose.TAKE_PROFIT,
            position_id=position.id,
            type=OrderType.LIMIT,
            limit_price=target,
            also=remember,
            told=self._telling(position, f"take-profit for {cover} {position.symbol} at {target}"),
        )
        if live is not None and placed.status is not IntentStatus.REJECTED:
            await self.desk.cancel(current, position.symbol)

    async def _cover(self, position: Position) -> Decimal:
        """How much of `position` its stop must cover: all of it that no exit on its
        way is closing (0 or less: it is being closed already)."""
        return position.size - await self.desk.exiting(position)

    async def _ended_meanwhile(self, canceled: list[str]) -> bool:
        """Did a leg listed open at the pass's start end otherwise than by its cancel
        (its intent still live: the venue said it rests no more, a take-profit filled,
        say)? Then its fills are read first: where the venue does not honour
        reduce-only orders, a new pair for the position it closed would open another."""
        live = (await self.ctx.state.snapshot()).intents
        if not any(cid in live for cid in canceled):
            return False
        await self.desk.sync_fills()
        return True

    async def _bare(self, position: Position, open_orders: dict[str, VenueOrder]) -> bool:
        """Does nothing of `position`'s protect it: no take-profit rests, and none has
        its fate still to be resolved (the stop is known missing already)?"""
        target = position.take_profit_client_order_id or ""
        known = (await self.ctx.state.snapshot()).intents.get(target)
        return target not in open_orders and (known is None or known.status not in WAITING)

    async def _place_legs(
        self, position: Position, stop: Decimal, target: Decimal, cover: Decimal
    ) -> OrderIntent:
        """A position's stop and take-profit, sent at once (`OrderDesk.place_legs`);
        returns the stop's intent."""

        def remember(tx: Transaction, stop_leg: OrderIntent, target_leg: OrderIntent) -> None:
            tx.save_position(
                position.evolve(
                    stop_price=stop,
                    stop_client_order_id=stop_leg.client_order_id,
                    take_profit=target,
                    take_profit_client_order_id=target_leg.client_order_id,
                )
            )

        if self.ctx.venue.capabilities.reduce_only:  # two orders: each told of
            what = {
                Purpose.STOP: f"stop for {cover} {position.symbol} at {stop}",
                Purpose.TAKE_PROFIT: f"take-profit for {cover} {position.symbol} at {target}",
            }
        else:  # one pair: told of once, with its stop
            pair = f"stop at {stop} and take-profit at {target} for {cover} {position.symbol}"
            what = {Purpose.STOP: pair}

        def told(tx: Transaction, leg: OrderIntent) -> None:
            if leg.purpose in what:
                self._telling(position, what[leg.purpose])(tx, leg)

        stop_leg, _ = await self.desk.place_legs(
            position, stop, target, cover, also=remember, told=told
        )
        return stop_leg

    async def _protect_as_pair(
        self,
        position: Position,
        open_orders: dict[str, VenueOrder],
        price: Decimal,
        stop: Decimal,
        target: Decimal,
        cover: Decimal,
    ) -> bool:
        """Where the venue does not honour reduce-only orders, a stop and a take-profit
        rest as one one-cancels-other pair, or not at all: both resting alone could sell
        twice. A pair not as wanted (moved, resized, a leg gone) is canceled (one
        cancel takes both) and placed again; a venue that refuses the pair gets the
        stop alone: never a position left bare for its take-profit."""
        ctx = self.ctx
        state = await ctx.state.snapshot()
        legs = [position.stop_client_order_id or "", position.take_profit_client_order_id or ""]
        if any(state.intents.get(cid) and state.intents[cid].status in WAITING for cid in legs):
            return True  # a leg's fate is being resolved first
        live_stop, live_target = open_orders.get(legs[0]), open_orders.get(legs[1])
        paired = (
            live_stop is not None
            and live_target is not None
            and live_stop.oco_with == live_target.client_order_id
        )
        if (
            paired
            and live_stop.qty == cover
            and live_target.qty == cover
            and live_stop.stop_price == stop
            and live_target.limit_price == target
        ):
            await self._sweep(position, open_orders)
            return True
        underwater = ctx.stop.underwater(position, stop, price)
        if underwater is not None:
            return await self._past_its_stop(position, stop, price, underwater, cover)
        went_with: str | None = None  # the leg a pair's one cancel takes with it
        if paired:  # one cancel takes both: the take-profit's (Alpaca finds it by its id)
            went_with, live_stop = live_stop.client_order_id, None
        canceled = [live.client_order_id for live in (live_stop, live_target) if live]
        for cid in canceled:
            if not await self.desk.cancel(cid, position.symbol, settle_pair=False):
                return True  # maybe still resting: looked at again at the next pass
        if await self._ended_meanwhile(canceled):  # its position is what the fills say now
            left = (await ctx.state.snapshot()).positions.get(position.id)
            cover = Decimal(0) if left is None else await self._cover(left)
            if left is None or cover <= 0:
                return True  # closed, or closing
            gone = {*canceled, went_with}  # (what is left is protected now, not a pass later)
            still = {cid: o for cid, o in open_orders.items() if cid not in gone}
            protected = await self._protect_as_pair(left, still, price, stop, target, cover)
            if went_with is not None:
                await self.desk.settle(went_with, position.symbol)
            return protected
        legs = {cid for cid in legs if cid}
        if not await self._cancel_other_stops(position, open_orders, legs):
            return True  # a guard or a stray beside the new pair could sell twice

        stop_leg = await self._place_legs(position, stop, target, cover)
        if went_with is not None:  # (learnt once the new pair is sent: no round trip bare)
            await self.desk.settle(went_with, position.symbol)
        if stop_leg.status is IntentStatus.REJECTED:  # the stop alone, for good
            await self._without_take_profit(await self._fresh(position), stop_leg.reason)
            await self._place(await self._fresh(position), stop, cover)
        return True

    async def _without_take_profit(self, position: Position, why: str | None) -> None:
        """The venue refused the pair (a fractional quantity, say): this position keeps
        a stop alone from now on, rather than trading its stop for a pair refused
        again at every pass."""
        now = self.ctx.clock()
        refused = {**position.metadata, TAKE_PROFIT_REFUSED: why or "refused"}
        async with self.ctx.state.transaction() as tx:
            tx.save_position(position.evolve(metadata=refused, take_profit=None))
            tx.add_event(
                now,
                "alert",
                f"{position.symbol}: {self.ctx.venue.name} refused its stop and take-profit"
                f" as a pair ({why}): it keeps a stop alone, with no take-profit",
                {"position_id": position.id},
            )

    async def adopt_stop(
        self, position: Position, order: VenueOrder, known: OrderIntent | None = None
    ) -> Position:
        """Take a stop of the bot's resting on the venue as `position`'s own (its intent
        lost with a state, or never written: a guard stop placed while the store could
        not write). Returns the position as it is now."""
        now = self.ctx.clock()
        intent = (
            known.evolve(position_id=position.id)
            if known is not None
            else found_on_the_venue(order, now, position.id, Purpose.STOP)
        )
        async with self.ctx.state.transaction() as tx:
            tx.save_order(intent)
            tx.save_position(
                position.evolve(
                    stop_price=order.stop_price, stop_client_order_id=order.client_order_id
                )
            )
        self._stops_by_position.setdefault(position.id, []).append(order.client_order_id)
        return (await self.ctx.state.snapshot()).positions[position.id]

    async def _cancel_stops_without_positions(self, open_orders: dict[str, VenueOrder]) -> None:
        """A stop left resting after its position closed (by an exit, or by a crash
        between the two) would open a new position when it fires: it goes."""
        state = await self.ctx.state.snapshot()
        known = await self.ctx.known_intents(open_orders)
        for cid, order in open_orders.items():
            intent = known.get(cid)
            if (
                intent is not None
                and intent.purpose.protects
                and intent.position_id not in state.positions
            ):
                await self.desk.cancel(cid, order.symbol)
        # A protective order the state thinks rests, gone from the venue without the
        # bot's doing (the other leg of its pair filled, an operator canceled it): its
        # intent learns what became of it, or it would block the symbol's entries.
        for intent in list(state.intents.values()):
            gone = intent.client_order_id not in open_orders
            if gone and intent.purpose.protects and intent.status is IntentStatus.ACCEPTED:
                await self.desk.settle(intent.client_order_id, intent.symbol)

    async def _track_best(
        self, positions: list[Position], prices: dict[str, Decimal]
    ) -> list[Position]:
        """Every position with the best price seen since entry (what a trailing stop
        follows), all moved ones saved in one write."""
        tracked, moved = [], []
        for position in positions:
            best = best_price(position, prices[position.symbol])
            if best != position.best_price:
                position = position.evolve(best_price=best)
                moved.append(position)
            tracked.append(position)
        if moved:
            async with self.ctx.state.transaction() as tx:
                for position in moved:
                    tx.save_position(position)
        return tracked

    async def _replace(
        self, position: Position, live: VenueOrder | None, wanted: Decimal, cover: Decimal
    ) -> None:
        """Place the stop `position` needs. Where the venue honours reduce-only orders,
        the one it had is canceled afterwards by the sweep, once the new one is
        confirmed (or first, when the venue refused the new one while the old one
        stood). Elsewhere the new one takes the old one's place in one request where
        the venue can do that (never a moment without a stop), or the old one is
        canceled first and nothing is placed until the venue confirmed that cancel."""
        capabilities = self.ctx.venue.capabilities
        if live is not None and not capabilities.reduce_only and capabilities.replaces:
            placed = await self._place(position, wanted, cover, replaces=live.client_order_id)
            if placed.status is IntentStatus.ACCEPTED:  # (its end is the venue's to tell)
                self._gone.add(live.client_order_id)
            elif placed.status is IntentStatus.REJECTED:
                await self._after_a_refused_replace(position, live, placed, cover)
            return
        if live is not None and not capabilities.reduce_only:
            if not await self.desk.cancel(live.client_order_id, live.symbol):
                return  # maybe still resting: looked at again at the next pass
            self._gone.add(live.client_order_id)
            live = None
        placed = await self._place(position, wanted, cover)
        if placed.status is IntentStatus.REJECTED and live is not None:
            await self.desk.cancel(live.client_order_id, live.symbol)
            await self._place(await self._fresh(position), wanted, cover)

    async def _after_a_refused_replace(
        self, position: Position, live: VenueOrder, refused: OrderIntent, cover: Decimal
    ) -> None:
        """The venue refused a new stop in `live`'s place. `live` may rest still (it is
        moved again at the next pass), or be gone: Binance cancels first and may then
        refuse the new one, and it may have filled. One look says; a position left
        bare gets its stop now, not a pass later."""
        ctx = self.ctx
        await self.desk.settle(live.client_order_id, live.symbol)
        old = await ctx.state.get_order(live.client_order_id)
        if old is None or not old.status.is_terminal:
            await self.adopt_stop(await self._fresh(position), live, old)  # as before
            async with ctx.state.transaction() as tx:
                tx.add_event(
                    ctx.clock(),
                    "alert",
                    f"{position.symbol}: {ctx.venue.name} refused to move its stop to"
                    f" {refused.stop_price} ({refused.reason}): the stop at {live.stop_price}"
                    f" ({live.client_order_id}) still rests; moved again at the next pass",
                    {"client_order_id": refused.client_order_id, "position_id": position.id},
                )
            return
        self._gone.add(live.client_order_id)
        await self.desk.sync_fills()  # (it may have filled: then the position knows)
        held = (await ctx.state.snapshot()).positions.get(position.id)
        if held is not None:
            await self._place(held, refused.stop_price, min(cover, held.size))

    async def _fresh(self, position: Position) -> Position:
        return (await self.ctx.state.snapshot()).positions.get(position.id, position)

    async def _sweep(self, position: Position, open_orders: dict[str, VenueOrder]) -> None:
        """Cancel the position's other stops on the venue (replaced, or left by a crash
        between placing a new stop and canceling the old), once its own is confirmed."""
        state = await self.ctx.state.snapshot()
        current = state.positions.get(position.id)
        if current is None or current.stop_client_order_id is None:
            return
        own = state.intents.get(current.stop_client_order_id)
        if own is None or own.status is not IntentStatus.ACCEPTED:
            return  # not confirmed yet: the old stop still protects
        await self._cancel_other_stops(position, open_orders, {current.stop_client_order_id})

    async def _cancel_other_stops(
        self, position: Position, open_orders: dict[str, VenueOrder], keep: set[str]
    ) -> bool:
        """Cancel the stops of `position` resting on the venue but those in `keep`:
        replaced ones, one left by a crash between a new stop and the old one's
        cancel, guards sent while the store failed. True once none rests any more."""
        ids = self.ctx.ids
        others = [
            cid
            for cid in open_orders
            if cid not in keep
            and cid not in self._gone
            and (
                cid in self._stops_by_position.get(position.id, ())
                or (  # sent while the store failed (the market first: it costs no hash)
                    open_orders[cid].symbol == position.symbol
                    and ids.is_guard_stop(cid, position.id)
                )
            )
        ]
        gone = True
        known = await self.ctx.state.get_orders_by_id(others)
        for cid in others:
            if cid not in known:  # a guard never written: the state knows it first
                found = found_on_the_venue(open_orders[cid], self.ctx.clock(), position.id)
                await self.ctx.state.save_order(found)
            gone = await self.desk.cancel(cid, position.symbol) and gone
        return gone

    async def _place(
        self, position: Position, stop_price: Decimal, qty: Decimal, replaces: str | None = None
    ) -> OrderIntent:
        def remember(tx: Transaction, intent: OrderIntent) -> None:
            tx.save_position(
                position.evolve(stop_price=stop_price, stop_client_order_id=intent.client_order_id)
            )

        tell = self._telling(position, f"stop for {qty} {position.symbol} at {stop_price}")

        def told(tx: Transaction, placed: OrderIntent) -> None:
            if replaces is None or placed.status is not IntentStatus.REJECTED:
                tell(tx, placed)

        return await self.desk.place(
            symbol=position.symbol,
            side=position.side.exit_order_side,
            qty=qty,
            purpose=Purpose.STOP,
            position_id=position.id,
            type=OrderType.STOP,
            stop_price=stop_price,
            replaces=replaces,
            also=remember,
            told=told,
        )

    def _telling(self, position: Position, what: str) -> Told:
        """The event of a protective order placed (an alert, if the venue refused it),
        written with the order's answer."""

        def told(tx: Transaction, placed: OrderIntent) -> None:
            refused = placed.status is IntentStatus.REJECTED
            tx.add_event(
                self.ctx.clock(),
                "alert" if refused else "stop_placed",
                f"{what}: {placed.status} ({placed.client_order_id})",
                {
                    "client_order_id": placed.client_order_id,
                    "position_id": position.id,
                    **({"notify": Topic.UNPROTECTED} if refused else {}),
                },
            )

        return told

    async def _past_its_stop(
        self, position: Position, stop: Decimal, price: Decimal, underwater: Decimal, cover: Decimal
    ) -> bool:
        """`cover`: what no exit on its way closes already, closed now at market."""
        ctx = self.ctx
        if underwater <= ctx.stop.max_underwater_pct:
            part = cover if cover < position.size else None
            await self.desk.close(position, qty=part)  # its answer, whatever it is, is stored
            return True
        if not position.metadata.get("underwater_alert"):
            message = (
                f"{position.symbol}: price {price} is {underwater:.2f}% past the stop {stop}"
                f" (limit {ctx.stop.max_underwater_pct}%): no stop placed, it would fire at"
                " once; an operator must decide"
            )
            if stop <= 0:
                message = (
                    f"{position.symbol}: its stop rule puts the stop at {stop}, where no venue"
                    " takes one: no stop placed; an operator must decide (its strategy's Stop"
                    " too far away?)"
                )
            log.error("%s: %s", ctx.bot_id, message)
            async with ctx.state.transaction() as tx:
                flagged = {**position.metadata, "underwater_alert": str(ctx.clock())}
                tx.save_position(position.evolve(metadata=flagged))
                data = {"position_id": position.id, "attention": True, "notify": Topic.UNPROTECTED}
                tx.add_event(ctx.clock(), "alert", message, data, logged=True)
        return False
