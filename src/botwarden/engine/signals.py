"""Acting on a signal: what each kind asks for, checked, sized, written ahead and sent.

    enter / add:  refused (and skipped, saying why) while the balance cannot be read, the
                  bot needs attention, its strategy fails, an order in the symbol is
                  unresolved, the symbol cools down or a guard says no; sized against
                  the market's rules and the account (`domain/sizing.py`), never sent
                  smaller; its plan (own stop, take-profit, custom state, a limit's
                  expiry) written ahead with it; then its fill read and protected
    exit:         all of it, or a part (rounded down to the lot step; all when the rest
                  would be dust); the rest protected before the fills are read
    update:       no order: the position's stop rule, take-profit or custom state

The runner decides when (`Permit`: what it knows of the balance and the strategy this
pass); this module decides how. Every answer is a write: the processed signal goes in
the same write as the order's intent, or with the skipped event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from botwarden.domain import risk as rules
from botwarden.domain.markets import OrderRefused, TimeInForce, fit_price
from botwarden.domain.models import BotStatus, Position, Side, Topic
from botwarden.domain.orders import EntryPlan, IntentStatus, OrderIntent, OrderType, Purpose
from botwarden.domain.sizing import Size, entry_qty, exit_qty
from botwarden.engine.orders import WAITING, Context, OrderDesk
from botwarden.engine.protection import TAKE_PROFIT_REFUSED, Protector
from botwarden.state.manager import Transaction
from botwarden.strategies.base import Action, Signal
from botwarden.venues.base import Balance, Venue, VenueOrder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permit:
    """What the runner knows this pass that decides whether entries may be taken."""

    balance: Balance | None
    """The account as read this pass; None: it could not be read (protecting only)."""
    failing: str | None = None
    """The strategy's failure, while it keeps failing: no entries."""


class Why(StrEnum):
    """What kind of reason kept a signal from being acted on (the library raises an
    exception of its own for each: `botwarden.bot`)."""

    NOT_READY = "not_ready"
    """The balance cannot be read, the bot needs attention, or its strategy fails."""
    BUSY = "busy"
    """The symbol is taken: a position held already (an entry), its stop not resting
    yet (an add), an order in it open or unresolved, or an exit already on its way."""
    GUARD = "guard"
    """A risk guard: a limit of the config's, or the symbol cooling down."""
    BREAKER = "breaker"
    """The circuit breaker is on."""
    CANNOT_MEET = "cannot_meet"
    """What it asks cannot be had: a size, a short, a stop or a take-profit."""
    NOT_HELD = "not_held"
    """Nothing is held to add to, exit or update."""


@dataclass(frozen=True)
class Skipped:
    """A signal not acted on, and why (written as an event: `signal ... skipped`)."""

    why: Why
    reason: str | rules.Refusal

    def __str__(self) -> str:
        return str(self.reason)


class Trader:
    def __init__(
        self, ctx: Context, desk: OrderDesk, protector: Protector, default_size: Size
    ) -> None:
        self.ctx = ctx
        self.desk = desk
        self.protector = protector
        self.default_size = default_size
        """The config's `order:`: an entry's size when its signal gives none."""
        self._permit = Permit(balance=None)

    async def act(self, signal: Signal, price: Decimal, permit: Permit) -> Skipped | None:
        """Do what `signal` asks, at about `price`, if `permit` allows it; why not, if
        it did not."""
        self._permit = permit
        if signal.action is Action.EXIT:
            return await self._exit(signal, price)
        if signal.action is Action.UPDATE:
            return await self._update(signal, price)
        return await self._enter(signal, price)

    async def _skip(self, signal: Signal, skipped: Skipped) -> Skipped:
        """A signal not acted on, with why; a trade-frequency limit that refused it is
        told to the operator too, once per window of that limit."""
        now, why = self.ctx.clock(), skipped.reason
        async with self.ctx.state.transaction() as tx:
            tx.mark_signal_processed(signal.id, now)
            what = f"{signal.action} {signal.symbol} skipped: {why}"
            tx.add_event(now, "signal", what, logged=True)
            if isinstance(why, rules.Refusal) and rules.limit_alert_due(tx.state.risk, why, now):
                tx.save_risk_state(rules.limit_alerted(tx.state.risk, why))
                tx.add_event(
                    now,
                    "alert",
                    f"{why.limit} refused an entry: {why}; no new entries until"
                    f" {why.until:%Y-%m-%d %H:%M} UTC",
                    {"notify": Topic.LIMIT, "limit": why.limit},
                )
        log.info("%s: %s %s skipped: %s", self.ctx.bot_id, signal.action, signal.symbol, why)
        return skipped

    async def _entry_refused(self, signal: Signal) -> Skipped | None:
        symbol, state = signal.symbol, await self.ctx.state.snapshot()
        permit = self._permit
        if permit.balance is None:
            return Skipped(Why.NOT_READY, "the balance cannot be read: protecting only")
        if state.bot.status is BotStatus.NEEDS_ATTENTION:
            return Skipped(Why.NOT_READY, "the bot needs attention")
        if permit.failing is not None:
            return Skipped(Why.NOT_READY, f"the strategy is failing ({permit.failing})")
        held = await self.ctx.position_in(symbol)
        if held is not None and signal.action is not Action.ADD:
            return Skipped(Why.BUSY, "a position is already held")
        if held is None and signal.action is Action.ADD:
            return Skipped(Why.NOT_HELD, "nothing is held to add to")
        if held is not None:
            stop = state.intents.get(held.stop_client_order_id or "")
            if stop is None or stop.status is not IntentStatus.ACCEPTED:
                return Skipped(
                    Why.BUSY, "the position's stop is not resting yet: nothing is added to it"
                )

        def blocks(intent: OrderIntent) -> bool:
            # The held position's own resting stop does not block adding to it.
            resting_stop = intent.purpose is Purpose.STOP and intent.status not in WAITING
            return not intent.status.is_terminal and not (held is not None and resting_stop)

        if any(i.symbol == symbol and blocks(i) for i in state.intents.values()):
            return Skipped(Why.BUSY, "an order in this symbol is still open or unresolved")
        if await self.ctx.state.is_on_cooldown(symbol):
            return Skipped(
                Why.GUARD, f"cooling down until {state.cooldowns[symbol]:%Y-%m-%d %H:%M}"
            )
        refusal = rules.entry_refused(state.risk, self.ctx.limits, self.ctx.clock())
        if refusal is None:
            return None
        return Skipped(Why.BREAKER if refusal.breaker else Why.GUARD, refusal)

    async def _enter(self, signal: Signal, price: Decimal) -> Skipped | None:
        """An entry, or more of the position held (`add`): sized, checked against the
        market's rules and the account, written ahead with what its fills give the
        position (its stop rule, its custom state, a limit entry's expiry), then sent;
        a size that cannot be met is a skipped signal with its reason."""
        refused = await self._entry_refused(signal)
        if refused is not None:
            return await self._skip(signal, refused)
        symbol = signal.symbol
        held = await self.ctx.position_in(symbol)
        side = held.side if held is not None else Side.LONG
        if held is None and signal.action is Action.ENTER_SHORT:
            side = Side.SHORT
        market = await self.protector.market(symbol)
        if side is Side.SHORT and held is None and not market.shortable:
            why = f"{symbol} cannot be sold short on {self.ctx.venue.name}"
            return await self._skip(signal, Skipped(Why.CANNOT_MEET, why))
        expected = signal.limit or price  # what the entry is sized and checked at
        stop_price = self._stop_at_entry(signal, held, side, expected)
        no_target = self._take_profit_refused(signal, side, expected, stop_price)
        if no_target is not None:
            return await self._skip(signal, Skipped(Why.CANNOT_MEET, f"{symbol}: {no_target}"))
        try:
            qty = entry_qty(
                signal.size or self.default_size,
                side=side,
                price=expected,
                equity=self._permit.balance.equity,
                buying_power=self._permit.balance.buying_power,
                rules=market,
                stop_price=stop_price,
            )
        except OrderRefused as error:
            return await self._skip(signal, Skipped(Why.CANNOT_MEET, str(error)))
        now = self.ctx.clock()
        limits = self.ctx.limits
        expires = now + signal.expires_after if signal.expires_after is not None else None
        plan = EntryPlan(
            signal_id=signal.id,
            stop=signal.stop,
            take_profit=signal.take_profit,
            custom=signal.state or {},
            expires_at=expires,
        )

        def taken(tx: Transaction, intent: OrderIntent) -> None:
            tx.mark_signal_processed(signal.id, now)
            tx.save_risk_state(rules.record_entry(tx.state.risk, now, limits.trading_day(now)))

        log.info("%s: %s %s: %s", self.ctx.bot_id, signal.action, symbol, signal.reason)
        order_side = side.entry_order_side
        limit = fit_price(signal.limit, market, order_side) if signal.limit else None
        await self.desk.place(
            symbol=symbol,
            side=order_side,
            qty=qty,
            purpose=Purpose.ENTRY,
            position_id=held.id if held is not None else None,
            type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
            limit_price=limit,
            time_in_force=signal.time_in_force or TimeInForce.GTC,
            plan=plan,
            also=taken,
        )
        await self.desk.sync_fills()
        opened = await self.ctx.position_in(symbol)
        if held is None and opened is not None:  # new: nothing of its own rests to look at
            await self.protector.protect_new(opened, price)
        elif held is not None:  # added to: its stop is resized to all of it
            await self.protector.protect_all(await _open(self.ctx), {symbol: price})
        return None

    def _stop_at_entry(
        self, signal: Signal, held: Position | None, side: Side, price: Decimal
    ) -> Decimal:
        """Where the stop would be for an entry at `price`: by the signal's own stop,
        else the held position's, else the config's policy (for sizing by risk, and to
        refuse a stop on the wrong side of the entry)."""
        if signal.stop is not None:
            return signal.stop.price_from(price, side)
        if held is not None and held.stop_price is not None:
            return held.stop_price
        if held is not None and held.stop_rule is not None:
            return held.stop_rule.price_from(price, side)
        return self.ctx.stop.price_from(price, side)

    def _take_profit_refused(
        self, signal: Signal, side: Side, price: Decimal, stop: Decimal
    ) -> str | None:
        """Why the signal's take-profit cannot be had, if it cannot: the venue holds no
        take-profit beside a stop, or it is not on the winning side of the entry."""
        rule = signal.take_profit
        if rule is None:
            return None
        if refused := take_profits_refused(self.ctx.venue):
            return refused
        target = rule.price_from(price, side, stop)
        beyond = target is not None and (target > price if side is Side.LONG else target < price)
        if not beyond:
            where = "above" if side is Side.LONG else "below"
            return (
                f"a {side}'s take-profit must be {where} the entry ({price}); TakeProfit"
                f" {rule} puts it at {target}"
            )
        return None

    async def cancel_stale_entries(self, open_orders: dict[str, VenueOrder]) -> bool:
        """Resting entries that may fill no more are canceled (what filled of them
        stays, protected): past their expiry; part filled, with the position they
        opened closed since (the rest would open another); in a symbol cooling down,
        or while the breaker is on. True if any was."""
        now = self.ctx.clock()
        state = await self.ctx.state.snapshot()
        breaker = state.risk.breaker_until is not None and state.risk.breaker_until > now

        def why_not(intent: OrderIntent) -> str | None:
            plan = intent.plan
            if plan is not None and plan.expires_at is not None and plan.expires_at <= now:
                return "expired"
            opened = intent.position_id or f"pos-{intent.client_order_id}"
            if intent.filled_qty > 0 and opened not in state.positions:
                return "its position closed"
            cooling = state.cooldowns.get(intent.symbol)
            if cooling is not None and cooling > now:
                return "the symbol cools down"
            return "the breaker is on" if breaker else None

        stale = [
            (intent, why)
            for intent in state.intents.values()
            if intent.purpose is Purpose.ENTRY
            and intent.client_order_id in open_orders
            and (why := why_not(intent)) is not None
        ]
        for intent, why in stale:
            if await self.desk.cancel(intent.client_order_id, intent.symbol):
                async with self.ctx.state.transaction() as tx:
                    tx.add_event(
                        now,
                        "order",
                        f"limit entry {intent.client_order_id} ({intent.side} {intent.qty}"
                        f" {intent.symbol} at {intent.limit_price}) canceled: {why}; filled"
                        f" {intent.filled_qty}",
                        {"client_order_id": intent.client_order_id},
                    )
        return bool(stale)

    async def _exit(self, signal: Signal, price: Decimal) -> Skipped | None:
        """All of the position, or a part of it (a `fraction` or a `qty`, rounded down to
        the lot step; all of it when what would be left is dust the venue would refuse
        to close later)."""
        position = await self.ctx.position_in(signal.symbol)
        if position is None:
            return await self._skip(signal, Skipped(Why.NOT_HELD, "nothing to exit"))
        exiting = await self.desk.exiting(position)
        whole = signal.fraction is None and signal.qty is None
        if exiting >= position.size or (exiting and not whole):
            return await self._skip(signal, Skipped(Why.BUSY, "already exiting"))
        qty = position.size - exiting if exiting else None  # all that no exit closes yet
        if not whole:
            try:
                part = exit_qty(
                    position.size,
                    fraction=signal.fraction,
                    qty=signal.qty,
                    rules=await self.protector.market(signal.symbol),
                    price=price,
                )
            except OrderRefused as error:
                return await self._skip(signal, Skipped(Why.CANNOT_MEET, str(error)))
            qty = None if part.full else part.qty
            if part.why:
                log.info("%s: %s", self.ctx.bot_id, part.why)
        if whole:  # all of it: no entry of this symbol may fill behind the exit
            await self._cancel_entries(signal.symbol)
        now = self.ctx.clock()
        log.info("%s: exit %s: %s", self.ctx.bot_id, signal.symbol, signal.reason)
        await self.desk.close(
            position, qty=qty, also=lambda tx, intent: tx.mark_signal_processed(signal.id, now)
        )
        if qty is not None:  # the rest keeps a stop even if the fills cannot be read now
            await self.protector.protect_all(await _open(self.ctx), {signal.symbol: price})
        await self.desk.sync_fills()
        await self.protector.protect_all(await _open(self.ctx), {signal.symbol: price})
        return None

    async def _cancel_entries(self, symbol: str) -> None:
        intents = (await self.ctx.state.snapshot()).intents.values()
        for intent in intents:
            mine = intent.symbol == symbol and intent.purpose is Purpose.ENTRY
            if mine and not intent.status.is_terminal and intent.status not in WAITING:
                await self.desk.cancel(intent.client_order_id, symbol)

    async def _update(self, signal: Signal, price: Decimal) -> Skipped | None:
        """The position's own stop rule and custom state, as its strategy asks (no
        order; the stop moves at once, and only ever tightens)."""
        position = await self.ctx.position_in(signal.symbol)
        if position is None:
            return await self._skip(signal, Skipped(Why.NOT_HELD, "nothing held to update"))
        now = self.ctx.clock()
        refused = take_profits_refused(self.ctx.venue) if signal.take_profit else None
        if refused:
            why = refused
            return await self._skip(signal, Skipped(Why.CANNOT_MEET, why))
        changes: dict = {"custom": {**position.custom, **(signal.state or {})}}
        if signal.stop is not None:
            changes["stop_rule"] = signal.stop
        if signal.take_profit is not None:  # placed anew from the rule, at once
            changes.update(take_profit_rule=signal.take_profit, take_profit=None)
            # (asked again: a pair the venue refused before is tried again)
            metadata = {k: v for k, v in position.metadata.items() if k != TAKE_PROFIT_REFUSED}
            changes["metadata"] = metadata
        changed = position.evolve(**changes)
        if signal.stop is not None:
            rules = await self.protector.market(signal.symbol)
            stop = fit_price(self.ctx.stop.stop_for(changed), rules, changed.side.exit_order_side)
            if stop <= 0 or self.ctx.stop.underwater(changed, stop, price) is not None:
                why = f"its stop {stop} is at or past the price {price}"
                return await self._skip(signal, Skipped(Why.CANNOT_MEET, why))
        async with self.ctx.state.transaction() as tx:
            tx.save_position(changed)
            tx.mark_signal_processed(signal.id, now)
            what = [f"stop {signal.stop}"] if signal.stop else []
            what += [f"take-profit {signal.take_profit}"] if signal.take_profit else []
            what += [f"state {sorted(signal.state)}"] if signal.state else []
            tx.add_event(
                now,
                "signal",
                f"update {signal.symbol}: {', '.join(what) or 'nothing'}"
                + (f": {signal.reason}" if signal.reason else ""),
                {"position_id": position.id},
            )
        if signal.stop is not None or signal.take_profit is not None:
            await self.protector.protect_all(await _open(self.ctx), {signal.symbol: price})
        return None


async def _open(ctx: Context) -> dict[str, VenueOrder]:
    return {o.client_order_id: o for o in await ctx.venue.open_orders()}


def take_profits_refused(venue: Venue) -> str | None:
    """Why `venue` cannot hold a take-profit beside a stop without both ever closing;
    None if it can."""
    capabilities = venue.capabilities
    if capabilities.reduce_only or capabilities.oco:
        return None
    because = capabilities.no_pairs_because or (
        "it has neither reduce-only orders nor one-cancels-other pairs"
    )
    return f"{venue.name} cannot hold a take-profit beside a stop here: {because}"
