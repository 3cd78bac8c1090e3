"""Recovery, on every start, before any entry: the venue is asked what happened while
the bot was away, and the bot's state is made to agree with it.

In order (each step a named crash point, so a crash during recovery is tested too):
1. staleness: a heartbeat older than `max_state_age` is reported (and, with
   `on_stale: manual`, stops here for an operator);
2. balance: if it cannot be read, the bot runs "protect only" (no new entries);
3. every order sent with no answer stored is resolved by its client order id, and
   every order thought open is checked against the venue's open orders;
4. the venue's fills since the last one seen are recorded (a stop that fired while the
   bot was down closes its position here, with its trade and PnL);
5. positions are reconciled by `mode`: `sync` (the venue says what is held; the bot's
   own knowledge of entry time, stop and best price is kept), `restore` (the bot's state
   stands; every mismatch is reported loudly), `close_all` (every order canceled, every
   position closed at market), `manual` (nothing touched: the bot waits for an
   operator with this report). A position held on the venue that the state does not
   know, but that the bot's own fills at the venue explain, is the bot's: restored.
   Others (orphans, in the markets it trades) are closed, adopted (and protected) or
   left for an operator, by `orphan_positions`; positions the bot thinks it holds and
   the venue does not (phantoms) are closed out;
6. orders of the bot's the state does not know (lost with a state file): a stop that
   protects a position held is kept as its stop, any other is canceled (only now,
   once every position's fate is decided);
7. every position's stop is verified (the stop guarantee), and only then does the bot
   run. Every decision is an event in the bot's log and a line of the report.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from botwarden.domain.models import Fill, OrderSide, Position, Side, Topic, format_duration
from botwarden.domain.numbers import money
from botwarden.domain.orders import IntentStatus, Purpose
from botwarden.engine.crash import CRASH
from botwarden.engine.orders import WAITING, Context, OrderDesk, found_on_the_venue
from botwarden.engine.protection import Protector, protects
from botwarden.state.settings import RecoverySettings
from botwarden.venues.base import NotFound, Venue, VenueError, VenueOrder, VenuePosition

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    lines: list[str] = field(default_factory=list)
    protect_only: bool = False
    """The balance could not be read: no new entries until it can."""
    needs_attention: bool = False
    """An operator must look (manual mode, a position left unprotected by policy...)."""

    def __str__(self) -> str:
        return "\n".join(self.lines)


class Recovery:
    def __init__(
        self,
        ctx: Context,
        desk: OrderDesk,
        protector: Protector,
        settings: RecoverySettings,
        rebuild: bool = False,
        acknowledged: bool = False,
    ) -> None:
        self.ctx, self.desk, self.protector, self.settings = ctx, desk, protector, settings
        self.rebuild = rebuild
        self.acknowledged = acknowledged
        """An operator resolved the last "needs attention": act instead of waiting."""
        """The state was lost: its fills, positions and trades are replayed from the
        venue's fills of the bot's orders first."""
        self.report = RecoveryReport()
        self._own_fills: list[Fill] | None = None

    async def note(self, message: str, *, attention: bool = False, kind: str = "recovery") -> None:
        self.report.lines.append(message)
        if attention:
            self.report.needs_attention = True
        loud = attention or kind == "alert"
        log.log(logging.WARNING if loud else logging.INFO, "%s: %s", self.ctx.bot_id, message)
        async with self.ctx.state.transaction() as tx:
            asks = {"attention": True, "notify": Topic.NEEDS_ATTENTION} if attention else None
            tx.add_event(self.ctx.clock(), kind, message, asks, logged=True)

    async def run(self) -> RecoveryReport:
        ctx = self.ctx
        CRASH.reached("recovery_loaded")
        if await ctx.state.check_stale(self.settings.max_state_age):
            beat = (await ctx.state.snapshot()).bot.heartbeat_at
            stale = self.settings.on_stale == "manual" and not self.acknowledged
            await self.note(
                f"state is stale: last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC, older than"
                f" {format_duration(self.settings.max_state_age)}"
                + ("; waiting for an operator" if stale else ""),
                attention=stale,
            )
            if stale:
                return self.report
        try:
            balance = await ctx.venue.balance()
            await self.note(f"balance: {money(balance.cash)} {balance.currency} cash")
        except VenueError as error:
            self.report.protect_only = True
            await self.note(f"balance unreadable ({error}): protecting only, no new entries")

        if self.rebuild:
            replayed = await self.desk.sync_fills(everything=True)
            await self.note(f"rebuilt from the venue: {replayed} fill(s) of the bot's replayed")
        open_orders = await self._open_orders()
        await self._resolve(open_orders)
        CRASH.reached("recovery_unknowns_resolved")
        new = await self.desk.sync_fills()
        if new:
            await self.note(f"{new} fill(s) recorded that came while the bot was away")
        if self.settings.mode == "manual" and not self.acknowledged:
            await self._describe_only()
            return self.report
        if self.settings.mode == "manual":
            await self.note("resolved by an operator: reconciling with the venue (as sync)")
        if self.settings.mode == "close_all":
            await self._close_all(await self._open_orders())
        else:
            # Positions first, then the orders nobody knows: a stray stop may be what
            # protects a position the venue holds, and is never canceled before that
            # position's fate is decided.
            await self._reconcile(await ctx.venue.positions())
            await self._strays(await self._open_orders())
        CRASH.reached("recovery_reconciled")
        exposed = await self.protector.protect_all(await self._open_orders(), {})
        for symbol in exposed:
            await self.note(f"{symbol}: left without a stop by policy", attention=True)
        CRASH.reached("recovery_protected")
        held = len((await ctx.state.snapshot()).positions)
        await self.note(f"recovered: {held} position(s), each checked against the venue")
        return self.report

    async def _open_orders(self) -> dict[str, VenueOrder]:
        return {o.client_order_id: o for o in await self.ctx.venue.open_orders()}

    async def _resolve(self, open_orders: dict[str, VenueOrder]) -> None:
        state = await self.ctx.state.snapshot()
        for intent in list(state.intents.values()):
            if intent.status.is_terminal:
                continue
            if intent.status in WAITING:
                resolved = await self.desk.resolve(intent, open_orders)
                await self.note(
                    f"{intent.client_order_id} ({intent.purpose} {intent.symbol}) was sent"
                    f" with no answer stored: {resolved.status}"
                )
            elif intent.client_order_id not in open_orders:
                try:  # thought open, not open now: filled or canceled while away
                    found = await self.ctx.venue.order(intent.client_order_id, intent.symbol)
                except NotFound:
                    continue  # resolved by its fills, or left for the next look
                await self.desk.sync_fills()
                current = await self.ctx.intent(intent.client_order_id)
                await self.desk.apply_answer(current, found)

    async def _strays(self, open_orders: dict[str, VenueOrder]) -> None:
        """Orders of the bot's (by their client id) whose intent the state lost, or
        stops whose position it lost. A stop on the exit side of a position held with
        no stop of its own is that position's: kept as its stop (the stop guarantee then
        moves it where the policy wants it). Any other unknown order is canceled: a
        stray stop beside the position's own would double the protection (both firing
        open a position the other way), and the engine places what it needs. (In
        restore mode, unless the state was lost, those are reported and left.)"""
        restore = self.settings.mode == "restore" and not self.rebuild
        state = await self.ctx.state.snapshot()
        known = await self.ctx.known_intents(open_orders)
        for cid, order in open_orders.items():
            if not self.ctx.ids.owns(cid):
                continue
            intent = known.get(cid)
            if intent is not None and (
                intent.purpose is not Purpose.STOP or intent.position_id in state.positions
            ):
                continue  # known, and still what it was for
            position = await self._unprotected(order.symbol)
            if position is not None and protects(order, position):
                await self.protector.adopt_stop(position, order, intent)
                await self.note(
                    f"{cid} (stop {order.side} {order.qty} {order.symbol} at"
                    f" {order.stop_price}) is the bot's, its position lost from its state,"
                    f" and protects the {position.size} {position.symbol} held: kept as its stop"
                )
                continue
            if intent is not None:
                continue  # a known stop of a closed position: the stop guarantee cancels it
            if restore and not self.ctx.ids.is_guard(cid):
                # The state stands: what it does not know is reported, not touched. (A
                # guard is the bot's own, sent while its store failed: handled always.)
                await self.note(
                    f"MISMATCH: {cid} ({order.type} {order.side} {order.qty} {order.symbol})"
                    " rests on the venue, unknown to the state; restore mode leaves it",
                    attention=True,
                )
                continue
            await self._write_down(order)
            if await self.desk.cancel(cid, order.symbol):
                await self.note(
                    f"{cid} ({order.type} {order.side} {order.qty} {order.symbol}) is the bot's"
                    " but unknown to its state: canceled"
                )
            else:
                await self.note(f"stray order {cid} could not be canceled yet", attention=True)

    async def _write_down(self, order: VenueOrder) -> None:
        """A guard of the bot's its state does not know (sent while the store could not
        write, by an instance that died before writing it), stored as the venue shows
        it before anything is done with it. (Any other order of the bot's unknown to
        its state was lost with a state, or is a bug the checker must see: it is not
        written as if it had been written ahead.)"""
        if self.ctx.ids.is_guard(order.client_order_id):
            await self.ctx.state.save_order(found_on_the_venue(order, self.ctx.clock()))

    async def _unprotected(self, symbol: str) -> Position | None:
        """The position held in `symbol` if no stop of its own rests on the venue yet."""
        state = await self.ctx.state.snapshot()
        for position in state.positions.values():
            if position.symbol != symbol:
                continue
            own = state.intents.get(position.stop_client_order_id or "")
            return position if own is None or own.status.is_terminal else None
        return None

    def _ours(self, symbol: str) -> bool:
        return not self.ctx.symbols or symbol in self.ctx.symbols

    async def _reconcile(self, held: list[VenuePosition], orphans: str | None = None) -> None:
        ctx = self.ctx
        on_venue = {p.symbol: p for p in held}
        local = {p.symbol: p for p in (await ctx.state.snapshot()).positions.values()}
        if self._differ(local, on_venue) and await self.desk.sync_fills():
            # A fill came after the fills were read and before these positions (the
            # rest of a partial fill, a stop): recorded first, or the position it
            # closed would be closed out as a phantom, and the fill then open another.
            local = {p.symbol: p for p in (await ctx.state.snapshot()).positions.values()}
        restore = self.settings.mode == "restore"
        for symbol, position in local.items():
            there = on_venue.get(symbol)
            if there is not None and there.side is position.side and there.qty == position.size:
                continue
            if restore:
                await self.note(
                    f"MISMATCH {symbol}: the bot holds {position.side} {position.size}, the"
                    f" venue {_held(there)}; restore mode keeps the bot's state",
                    attention=True,
                )
                continue
            if there is not None and there.side is position.side:
                await self._resize(position, there)
            else:
                await self._phantom(position, there)
        for symbol, there in on_venue.items():
            if symbol in local or not self._ours(symbol):
                continue
            if restore:
                await self.note(
                    f"MISMATCH {symbol}: the venue holds {_held(there)}", attention=True
                )
                continue
            await self._orphan(there, orphans or self.settings.orphan_positions)

    def _differ(self, local: dict[str, Position], on_venue: dict[str, VenuePosition]) -> bool:
        """Does the venue hold, in the bot's markets, other than what the state holds?"""
        mine = {symbol: (p.side, p.size) for symbol, p in local.items()}
        theirs = {
            symbol: (p.side, p.qty)
            for symbol, p in on_venue.items()
            if symbol in local or self._ours(symbol)
        }
        return mine != theirs

    async def _resize(self, position: Position, there: VenuePosition) -> None:
        await self.ctx.state.save_position(position.evolve(size=there.qty))
        await self.note(
            f"{position.symbol}: the venue holds {there.qty}, the bot thought {position.size}:"
            " size taken from the venue (entry, stop and best price kept)"
        )

    async def _phantom(self, position: Position, there: VenuePosition | None) -> None:
        """Held in the bot's state, not on the venue, and no fill explains it (closed by
        hand, or by fills the bot cannot see): closed out, at the last price."""
        price = await self.ctx.venue.last_price(position.symbol)
        async with self.ctx.state.transaction() as tx:
            tx.remove_position(position.id)
            tx.add_event(
                self.ctx.clock(),
                "trade",
                f"closed out {position.size} {position.symbol}: gone from the venue with no"
                f" fill of the bot's; valued at the last price {price}",
                {"position_id": position.id, "exit_price": str(price), "phantom": True},
            )
        await self.note(f"{position.symbol}: phantom position closed out (not on the venue)")
        if there is not None:
            await self._orphan(there, self.settings.orphan_positions)

    async def _orphan(self, there: VenuePosition, policy: str) -> None:
        what = f"{there.symbol}: the venue holds {_held(there)} the bot did not know of"
        if await self._made_by_the_bot(there):
            await self._adopt(there, "restored")
            await self.note(
                f"{what}, but its own fills at the venue explain it: the bot's, restored and"
                " protected (the orphan policy is for positions the bot did not make)"
            )
            return
        if policy == "manual":
            await self.note(f"{what}: left for an operator", attention=True)
            return
        adopted = await self._adopt(there)
        if policy == "adopt":
            await self.note(f"{what}: adopted, and protected like any other")
            return
        exit_order = await self.desk.close(adopted)
        await self.desk.sync_fills()
        done = await self.ctx.intent(exit_order.client_order_id)
        if done.status is IntentStatus.FILLED:
            await self.note(f"{what}: closed at market")
        elif done.status in (IntentStatus.REJECTED, IntentStatus.CANCELED):
            # Refused (the coins held by another bot's stop), or never sent (an outage):
            # not the bot's, and left as the manual policy leaves it, for an operator
            # (found again, and told again, at every start until one acts).
            await self.ctx.state.remove_position(adopted.id)
            await self.note(
                f"{what}: its close at market was {done.status} ({done.reason}): left for"
                " an operator",
                attention=True,
            )
        else:  # (taken, not filled yet: a market closed; or its answer lost)
            await self.note(
                f"{what}: its close at market is {done.status}; sent as {done.client_order_id}"
            )

    async def _made_by_the_bot(self, there: VenuePosition) -> bool:
        """Do the bot's own fills at the venue (by their client ids) add up to what the
        venue holds in this market? Then the position is the bot's, whatever its state
        lost. (Read only when an unknown position turns up: every fill of the venue's.)"""
        if self._own_fills is None:
            self._own_fills = [
                f async for f in venue_fills(self.ctx.venue) if self.ctx.ids.owns(f.client_order_id)
            ]
        net = sum(
            (f.qty if f.side is OrderSide.BUY else -f.qty)
            for f in self._own_fills
            if f.symbol == there.symbol
        )
        held = there.qty if there.side is Side.LONG else -there.qty
        return net != 0 and net == held

    async def _adopt(self, there: VenuePosition, how: str = "adopted") -> Position:
        ctx = self.ctx
        entry = there.avg_entry_price or await ctx.venue.last_price(there.symbol)
        now = ctx.clock()
        position = Position(
            id=f"{how}-{there.symbol}-{int(now.timestamp())}",
            bot_id=ctx.bot_id,
            symbol=there.symbol,
            side=there.side,
            size=there.qty,
            entry_price=entry,
            entry_time=now,
            best_price=entry,
            metadata={how: True},
        )
        await ctx.state.save_position(position)
        return position

    async def _close_all(self, open_orders: dict[str, VenueOrder]) -> None:
        ctx = self.ctx
        known = await ctx.known_intents(open_orders)
        for cid, order in open_orders.items():
            if not ctx.ids.owns(cid):
                continue
            if cid not in known:
                await self._write_down(order)
            answer = await ctx.venue.cancel(cid, order.symbol)
            intent = (await ctx.state.snapshot()).intents.get(cid)
            if intent is not None:
                await self.desk.apply_answer(intent, answer)
        # The state agrees with the venue first, orphans included: all of it goes.
        await self._reconcile(await ctx.venue.positions(), orphans="adopt")
        for position in list((await ctx.state.snapshot()).positions.values()):
            await self.desk.close(position)
        await self.desk.sync_fills()
        await self.note("close_all: every order canceled, every position closed at market")

    async def _describe_only(self) -> None:
        held = {p.symbol: p for p in await self.ctx.venue.positions()}
        local = {p.symbol: p for p in (await self.ctx.state.snapshot()).positions.values()}
        for symbol in sorted(set(held) | set(local)):
            mine = local.get(symbol)
            mine_text = f"{mine.side} {mine.size}" if mine else "nothing"
            await self.note(
                f"{symbol}: the bot holds {mine_text}, the venue {_held(held.get(symbol))}"
            )
        await self.note("manual mode: nothing changed; waiting for an operator", attention=True)


async def venue_fills(
    venue: Venue, since: datetime | None = None, cursor: str | None = None
) -> AsyncIterator[Fill]:
    """The fills the venue keeps (after `cursor`, or since `since`: every one, without
    either), oldest first, page by page."""
    while True:
        page = await venue.fills(since=since, cursor=cursor)
        for fill in page.fills:
            yield fill
        cursor = page.cursor
        if not page.more:
            return


def _held(position: VenuePosition | None) -> str:
    if position is None:
        return "nothing"
    return f"{position.side} {position.qty}" + (
        f" at {position.avg_entry_price}" if position.avg_entry_price else ""
    )
